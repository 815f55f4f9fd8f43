"""How values from a user's file appear in messages: quoted, cut short, and counted."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .registry import shown

__all__ = ["cut", "listed", "rows", "shown"]

MAX_SHOWN_CHARS = 80
MAX_SHOWN_VALUES = 5


def cut(text: str) -> str:
    """Text cut to about 80 characters: a 20 MB cell is not a 20 MB message."""
    if len(text) > MAX_SHOWN_CHARS:
        return f"{text[: MAX_SHOWN_CHARS - 3]}... ({len(text):,} characters)"
    return text


def listed(values: Iterable[Any], limit: int = MAX_SHOWN_VALUES, quote: bool = True) -> str:
    """The first few values, then how many more: 'a', 'b' and 3 more."""
    values = list(values)
    show = shown if quote else (lambda v: cut(str(v)))
    head = ", ".join(show(v) for v in values[:limit])
    rest = len(values) - limit
    return f"{head} and {rest} more" if rest > 0 else head


def rows(n: int) -> str:
    """'1 row', '3 rows'."""
    return f"{n} row" if n == 1 else f"{n} rows"
