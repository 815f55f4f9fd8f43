"""Atomic file writes: a reader or a crash sees the old file or the new one, never a part."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import WriteError

TMP_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary name in the same folder, sync, then rename over the final name.

    A reader (or a crash, a kill -9, a full disk) sees the old complete file or the new complete
    file, never a part. A failed write leaves the old file untouched and raises WriteError.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
    try:
        sync_folder(path.parent)
    except OSError as exc:
        raise WriteError(
            f"{path}: written, but its folder could not be synced ({exc.strerror}); "
            f"a power cut now could lose the new version"
        ) from None


def make_folder(path: Path) -> None:
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None


def temporary_name(path: Path) -> Path:
    """Hidden, per process, and recognisable, so leftovers of a killed process can be swept."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def sync_folder(folder: Path) -> None:
    """Make a rename durable: the folder's entry, not only the file's bytes, reaches the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, line: str) -> None:
    """Append in one write() to an O_APPEND file, so a kill leaves whole lines only; a write
    cut short (a full disk can do that without an error) is undone and reported.
    """
    data = line.encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if os.write(fd, data) != len(data):
                os.ftruncate(fd, size)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        finally:
            os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None


def sweep_temporaries(folder: Path) -> None:
    """Remove the temporary files a killed process left behind (never a final name)."""
    for leftover in Path(folder).rglob(f".*{TMP_SUFFIX}"):
        if re.fullmatch(rf"\..+\.\d+{re.escape(TMP_SUFFIX)}", leftover.name):
            leftover.unlink(missing_ok=True)


def write_error(path: Path, exc: OSError) -> WriteError:
    reason = exc.strerror or exc.__class__.__name__
    hints = {
        errno.ENOSPC: "the disk is full; free some space",
        errno.EDQUOT: "the disk quota is used up; free some space",
        errno.EROFS: "the file system is read-only; choose a writable folder",
        errno.EACCES: "no permission to write there; choose a writable folder",
        errno.EPERM: "no permission to write there; choose a writable folder",
        errno.EFBIG: "the file is larger than this system allows",
    }
    hint = hints.get(exc.errno, "check the folder")
    return WriteError(f"{path}: cannot write ({reason}); {hint} (any earlier version is untouched)")


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
