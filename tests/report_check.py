"""Checks that a page is one self-contained file (imported as `from report_check import ...`).

A page may show images only as data URIs it carries, link only to its own sections, and hold no
script, frame, form, handler or stylesheet reference, so that opening it makes no request and
runs nothing. Each inline SVG is decoded and held to the same rules.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

PNG_URI = "data:image/png;base64,"
SVG_URI = "data:image/svg+xml;base64,"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FORBIDDEN_TAGS = frozenset(
    {"script", "link", "iframe", "frame", "object", "embed", "base", "form", "foreignobject"}
)
FORBIDDEN_ATTRIBUTES = frozenset({"srcset", "xlink:href", "action", "formaction", "background"})


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag.lower(), {key.lower(): value for key, value in attrs}))
        self._in_style = tag.lower() == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag.lower(), {key.lower(): value for key, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag.lower() == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def _parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    parser.close()
    return parser


def ids(text: str) -> set[str]:
    """Every element id in the document."""
    return {attrs["id"] or "" for _, attrs in _parse(text).tags if "id" in attrs}


def images(text: str) -> list[tuple[str, bytes]]:
    """Each `<img>`'s (alt, decoded bytes), in document order; asserts each source is a data URI."""
    found = []
    for name, attrs in _parse(text).tags:
        if name != "img":
            continue
        src = attrs.get("src") or ""
        assert src.startswith((PNG_URI, SVG_URI)), f"image source is not inline: {src[:80]!r}"
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        found.append((attrs.get("alt") or "", data))
    return found


def _check_markup(text: str, *, svg: bool) -> None:
    parsed = _parse(text)
    known = {attrs["id"] for _, attrs in parsed.tags if attrs.get("id")}
    for name, attrs in parsed.tags:
        assert name not in FORBIDDEN_TAGS, f"<{name}> in the page"
        for key, value in attrs.items():
            assert not key.startswith("on"), f"handler attribute {key}= on <{name}>"
            assert key not in FORBIDDEN_ATTRIBUTES, f"attribute {key}= on <{name}>"
            if svg:
                assert key != "href", f"link in an SVG: <{name} href={value!r}>"
            reference = value and re.search(r"url\s*\(|@import|javascript:", value, re.I)
            assert not reference, f"reference in <{name} {key}={value!r}>"
        if "href" in attrs:
            href = attrs["href"] or ""
            assert href.startswith("#"), f"link leaves the page: {href!r}"
            assert href[1:] in known, f"link to a missing id: {href!r}"
        if "src" in attrs:
            src = attrs["src"] or ""
            assert name == "img", f"src on <{name}>"
            assert src.startswith((PNG_URI, SVG_URI)), f"image source is not inline: {src[:80]!r}"
            data = base64.b64decode(src.split(",", 1)[1], validate=True)
            if src.startswith(PNG_URI):
                assert data.startswith(PNG_SIGNATURE), "a PNG data URI without the PNG signature"
            else:
                assert_svg_self_contained(data)
    for css in parsed.styles:
        assert not re.search(r"url\s*\(|@import", css, re.IGNORECASE), "CSS loads something"


def assert_svg_self_contained(data: bytes) -> None:
    """An inline SVG: UTF-8 text starting `<svg`, no link, script, foreign object or reference."""
    text = data.decode("utf-8")
    assert text.lstrip().startswith("<svg"), text[:80]
    lowered = text.lower()
    assert "<script" not in lowered and "foreignobject" not in lowered, "script in an SVG"
    _check_markup(text, svg=True)


def assert_self_contained(text: str) -> None:
    """The whole page: images inline, links within the page, nothing that loads or runs."""
    assert "<script" not in text.lower(), "a script in the page"
    _check_markup(text, svg=False)
