"""Memory a data file will take once read, estimated before reading it, against what is left.

Sizes come from what a file declares (its length on disk, Parquet's uncompressed sizes, the
shapes in an NPZ's array headers), so a small file that inflates to gigabytes is refused unread.
"""

from __future__ import annotations

from ..errors import DataError

# Peak bytes of memory per byte read. A CSV's text parses into columns, copies and a DataFrame:
# about 6.4 per byte for a file of empty fields, the worst seen, far less for plain numbers.
# Parquet and NPZ hold the decoded arrays and a DataFrame built from them.
CSV_FACTOR = 6
DECODED_FACTOR = 3
MARGIN = 0.8  # of the memory left: the model, the splits and the interpreter need some too


def available_memory() -> tuple[int, str] | None:
    """Bytes this process can still allocate, and what limits it (mlpcli.resources.memory says how it is
    measured); None when that is unknown."""
    from ..resources.memory import available_memory as least

    free, source = least()
    return None if source == "unknown" else (free, source)


def readable(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_fits(path: object, estimate: int, how: str, remedy: str = "") -> None:
    """Refuse to read a file whose estimated footprint exceeds the memory left; remedy ends the
    message (another way to read it)."""
    available = available_memory()
    if available is None:
        return
    limit = int(available[0] * MARGIN)
    if estimate > limit:
        raise DataError(
            f"{path}: reading it would take about {readable(estimate)} of memory ({how}), "
            f"more than the {readable(limit)} available ({available[1]}); use a smaller file "
            f"or a machine with more memory{remedy}"
        )
