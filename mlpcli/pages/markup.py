"""HTML from Python values, escaped by construction.

Text from a run folder (column names, class labels, config values, error messages) is the
user's data, and a page must show it as text whatever it holds. So every builder here returns
`Safe`, markup already escaped, and escapes every other `str` it is given: composing builders
never escapes twice, and a string that skipped `esc` is escaped anyway. Attribute names come
from a fixed list and `src` only from `image()`, so no file can put a link, a handler or a
script on the page. The page's Content-Security-Policy is the second wall: even a mistake here
cannot make the browser load anything.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from ..runs.reading import PNG_SIGNATURE
from ..version import __version__
from .style import CSS


class Safe(str):
    """Markup, escaped already; `tag` and `esc` pass it through as it is."""

    __slots__ = ()


# C0 controls other than tab and newline are not allowed in HTML or XML text, and a lone
# surrogate (valid in JSON's \ud800) cannot be written as UTF-8: both shown as U+FFFD.
_UNWRITABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
ATTRIBUTES = frozenset(
    {
        "id",
        "class",
        "href",
        "src",
        "alt",
        "title",
        "width",
        "height",
        "colspan",
        "rowspan",
        "scope",
        "lang",
        "charset",
        "name",
        "content",
        "http-equiv",
        "role",
        "aria-label",
        "open",
        "datetime",
    }
)


def clean(text: str) -> str:
    """Text that HTML, XML and UTF-8 all accept: controls and lone surrogates as U+FFFD."""
    return _UNWRITABLE.sub("\ufffd", text)


def esc(value: object) -> Safe:
    """A value as HTML text: `Safe` as it is, None as empty, anything else escaped."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    return Safe(html.escape(clean(str(value)), quote=True))


def join(parts: Iterable[object], sep: str = "") -> Safe:
    """Children side by side, each escaped unless `Safe`."""
    return Safe(esc(sep).join(esc(part) for part in parts))


def tag(name: str, attrs: dict[str, object] | None = None, *children: object) -> Safe:
    """`<name attrs>children</name>`; attribute values and str children escaped. A value of
    None or False leaves the attribute out, True writes it bare (`open`)."""
    if not re.fullmatch(r"[a-z][a-z0-9]*", name):
        raise ValueError(f"not an element name: {name!r}")
    parts = [name]
    for key, value in (attrs or {}).items():
        if key not in ATTRIBUTES:
            raise ValueError(f"attribute {key!r} is not one a page may use")
        if key == "href" and not str(value).startswith("#"):
            raise ValueError(f"a page links only within itself, got href={value!r}")
        if key == "src" and not isinstance(value, _DataUri):
            raise ValueError("src comes only from image()")
        if value is None or value is False:
            continue
        parts.append(key if value is True else f'{key}="{esc(value)}"')
    if name in VOID:
        return Safe(f"<{' '.join(parts)}>")
    return Safe(f"<{' '.join(parts)}>{join(children)}</{name}>")


VOID = frozenset({"meta", "img", "br", "hr", "col", "wbr"})


class _DataUri(Safe):
    """A data URI built by `image()` from bytes it checked."""

    __slots__ = ()


def image(
    data: bytes,
    kind: Literal["png", "svg"],
    alt: str,
    width: int | None = None,
    height: int | None = None,
) -> Safe:
    """An `<img>` whose source is the bytes themselves (a data URI). A PNG must carry the PNG
    signature; an SVG must be one `pages.svg` drew (it starts with `<svg`)."""
    if kind == "png":
        if not data.startswith(PNG_SIGNATURE):
            raise ValueError("not a PNG file")
        mime = "image/png"
    elif kind == "svg":
        if not data.lstrip().startswith(b"<svg"):
            raise ValueError("not an SVG drawing")
        mime = "image/svg+xml"
    else:
        raise ValueError(f"image kind {kind!r}: png or svg")
    uri = _DataUri(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}")
    return tag("img", {"src": uri, "alt": alt, "width": width, "height": height})


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None when it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def anchor_id(prefix: str, name: str, index: int) -> str:
    """An element id for a named thing: lowercase letters, digits and dashes from the name, and
    its index, so two names that differ only in other characters never share an id."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]
    return f"{prefix}-{index}-{slug}" if slug else f"{prefix}-{index}"


def table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    caption: object = None,
    classes: str | None = None,
    numeric: Sequence[bool] | None = None,
) -> Safe:
    """A table in a horizontally scrolling box (wide tables stay readable on a phone). `numeric`
    marks the columns set right-aligned in tabular figures."""
    align = list(numeric or [False] * len(header))

    def cell(kind: str, value: object, column: int) -> Safe:
        right = column < len(align) and align[column]
        attrs: dict[str, object] = {"class": "num" if right else None}
        if kind == "th":
            attrs["scope"] = "col"
        return tag(kind, attrs, value)

    head = tag("thead", None, tag("tr", None, *(cell("th", h, i) for i, h in enumerate(header))))
    body = tag(
        "tbody",
        None,
        *(tag("tr", None, *(cell("td", v, i) for i, v in enumerate(row))) for row in rows),
    )
    inner = [tag("caption", None, caption)] if caption is not None else []
    return tag("div", {"class": "scroll"}, tag("table", {"class": classes}, *inner, head, body))


def section(id_: str, title: object, *children: object) -> Safe:
    """A titled section the page's navigation links to."""
    return tag("section", {"id": id_}, tag("h2", None, title), *children)


def note(text: object) -> Safe:
    """A remark about what the page could not show, and why."""
    return tag("p", {"class": "note"}, text)


def facts(pairs: Iterable[tuple[object, object]]) -> Safe:
    """Labelled values, label beside value (one above the other on a phone)."""
    items = [
        part for key, value in pairs for part in (tag("dt", None, key), tag("dd", None, value))
    ]
    return tag("dl", {"class": "facts"}, *items)


# The statuses summary.json and results.csv use, each with its colour class in style.CSS.
STATUSES = ("completed", "stopped", "failed", "running", "pruned")


def status_word(status: object, words: object = None) -> Safe:
    """A status as a coloured word (`words` in its place when given); an unknown status keeps
    the neutral colour, a missing one reads "status unknown"."""
    if not isinstance(status, str) or not status:
        return tag("span", {"class": "status"}, words or "status unknown")
    kind = f"status {status}" if status in STATUSES else "status"
    return tag("span", {"class": kind}, words or status)


CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def page(
    title: object,
    heading: object,
    nav: Sequence[tuple[str, object]],
    body: Iterable[object],
    folder: Path | str,
    files_read: Sequence[str],
) -> str:
    """The whole document: the CSS inline, the navigation (id, label), the sections, and a
    footer saying which version wrote it, from which folder, when, and the files it read."""
    written = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    footer = join(
        [
            f"written by mlpcli {__version__} from {folder} at {written}; files read: ",
            ", ".join(files_read) or "none",
        ]
    )
    links = tag(
        "ul", None, *(tag("li", None, tag("a", {"href": f"#{i}"}, label)) for i, label in nav)
    )
    head = join(
        [
            tag("meta", {"charset": "utf-8"}),
            tag("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
            tag("meta", {"http-equiv": "Content-Security-Policy", "content": CSP}),
            tag("title", None, title),
            Safe(f"<style>{CSS}</style>"),
        ]
    )
    document = tag(
        "html",
        {"lang": "en"},
        tag("head", None, head),
        tag(
            "body",
            None,
            tag("header", None, tag("h1", None, heading)),
            tag("nav", {"aria-label": "sections"}, links),
            tag("main", None, *body),
            tag("footer", None, footer),
        ),
    )
    return f"<!doctype html>\n{document}\n"
