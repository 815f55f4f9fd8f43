"""The config.yaml a run folder holds, flattened without a YAML library when it is exactly what
`Config.to_yaml()` writes (yaml.safe_dump's block style): `key: scalar` lines, nested mappings
by indentation, `- scalar` lists and `- - scalar` lists of lists (a sweep's grid), `{}` and `[]`.

`mlp runs` lists a hundred runs in about the time `mlp --help` takes only this way: importing
PyYAML and building its nodes costs more than the rest of the listing together. Any line
outside that form (a flow collection, an anchor, a tag, a double-quoted or folded scalar, a
number in a YAML 1.1 form other than the ones safe_dump writes) returns None, and the caller
parses the text with PyYAML instead; tests check both give the same on every shipped config.
"""

from __future__ import annotations

import json
import re

Scalar = bool | int | float | str

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*|0|[1-9][0-9]*")
_NULL = {"null", "Null", "NULL", "~", ""}
# PyYAML's own resolver words: y and n are YAML 1.1 booleans in the spec, text to PyYAML.
_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}
_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}
_WORDS = {"null", "Null", "NULL", "~", "y", "Y", "n", "N"} | {
    w for c in ("true", "false", "yes", "no", "on", "off") for w in (c, c.title(), c.upper())
}
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
# PyYAML's float forms without underscores: a sign only before a digit (-.5 is text).
_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?|\.[0-9]+(?:[eE][-+][0-9]+)?")
_SPECIAL = {
    f"{sign}.{word}": float(f"{sign}inf")
    for sign in ("", "+", "-")
    for word in ("inf", "Inf", "INF")
} | {f".{word}": float("nan") for word in ("nan", "NaN", "NAN")}
# A number written with underscores (1_000, -.5_0): PyYAML's forms there are left to it.
_UNDERSCORED = re.compile(r"[-+]?\.?[0-9].*_")
# Plain text that YAML 1.1 would read as something else (octal, hex, sexagesimal, a date,
# a merge key, a value tag) or that needs more than one line or an indicator.
_OTHER = re.compile(
    r"^- |^-$|^[-+]?0[0-7xXbBoO_]|[0-9]:[0-9]|^[0-9]{4}-[0-9]|^(<<|=)$|^[\[{&*!|>%@`\"#,?]"
)


# Listing many runs reads the same keys and values again and again.
_SCALARS: dict[str, tuple[bool, object]] = {}
_KEYS: dict[str, bool] = {}
_CACHED = 4096


def _scalar_of(text: str) -> tuple[bool, object]:
    found = _SCALARS.get(text)
    if found is None:
        found = _scalar(text)
        if len(_SCALARS) < _CACHED:
            _SCALARS[text] = found
    return found


def _key_ok(key: str) -> bool:
    found = _KEYS.get(key)
    if found is None:
        found = bool(_KEY.fullmatch(key)) and key not in _WORDS
        if len(_KEYS) < _CACHED:
            _KEYS[key] = found
    return found


def _scalar(text: str) -> tuple[bool, object]:
    """(understood, value) of one plain or single-quoted scalar."""
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'") or "'" in text[1:-1].replace("''", ""):
            return False, None
        return True, text[1:-1].replace("''", "'")
    if " #" in text or text.endswith(":") or ": " in text:
        return False, None
    if text in _NULL:
        return True, None
    if text in _TRUE:
        return True, True
    if text in _FALSE:
        return True, False
    if text in _SPECIAL:
        return True, _SPECIAL[text]
    if _INT.fullmatch(text):
        return True, int(text)
    if _FLOAT.fullmatch(text):
        return True, float(text)
    if _OTHER.search(text) or text != text.strip() or _UNDERSCORED.match(text):
        return False, None
    return True, text


def flat_dumped(text: str) -> dict[str, Scalar] | None:
    """The flattened settings (as reading.flat_settings gives them), or None when the text is
    not in the form safe_dump writes."""
    flat: dict[str, Scalar] = {}
    path: list[list[int | str | None]] = []  # [indent, key, its children's indent] open
    open_list: tuple[str, int, list[object]] | None = None  # (key, indent, items)
    inner = False  # the last item opened a list of its own

    def close_list() -> None:
        nonlocal open_list
        if open_list is not None and open_list[2]:
            flat[open_list[0]] = json.dumps(open_list[2])
        open_list = None

    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        dash = stripped.startswith("- ")
        key: str | None = None
        value: str | None = None
        bare: str | None = None
        if dash:
            bare = stripped[2:]
        else:
            key, colon, rest = stripped.partition(":")
            if not colon or (rest and not rest.startswith(" ")):
                return None
            value = rest[1:] if rest else None
        if dash:  # an item of the list under the last key, at that key's indent
            if open_list is None or key is not None or bare is None:
                return None
            items = open_list[2]
            last = items[-1] if items else None
            if indent == open_list[1] + 2 and inner and isinstance(last, list):
                into = last  # "  - 3": the inner list the item before opened goes on
            elif indent == open_list[1]:
                inner = bare.startswith("- ")  # "- - 2": a list in the list (a sweep's grid)
                into = items
                if inner:
                    bare = bare[2:]
                    into = []
                    items.append(into)
            else:
                return None
            ok, item = _scalar_of(bare)
            if not ok or bare == "":
                return None
            into.append(item)
            continue
        if key is None or not _key_ok(key):
            return None
        close_list()
        while path and indent <= path[-1][0]:  # type: ignore[operator]
            path.pop()
        if path:
            children = path[-1][2]
            if children is None and indent > path[-1][0]:  # type: ignore[operator]
                path[-1][2] = children = indent
            if indent != children:
                return None
        elif indent != 0:
            return None
        dotted = ".".join([*(str(k) for _, k, _ in path), key])
        if dotted in flat:
            return None  # a repeated key: the loader decides
        if value is None:  # a mapping or a list follows, or nothing (null)
            flat[dotted] = "null"  # replaced by what follows
            path.append([indent, key, None])
            open_list = (dotted, indent, [])
            continue
        if value in ("{}", "[]"):
            flat[dotted] = value
            continue
        ok, scalar = _scalar_of(value)
        if not ok:
            return None
        flat[dotted] = json.dumps(scalar) if scalar is None else scalar  # type: ignore[assignment]
    close_list()
    return _tidy(flat)


def _tidy(flat: dict[str, Scalar]) -> dict[str, Scalar] | None:
    """A key that opened a block holds what the block held: its children's keys (the key
    itself dropped), a list's JSON text, or null when nothing followed."""
    keys = list(flat)
    for i, key in enumerate(keys):
        has_children = i + 1 < len(keys) and keys[i + 1].startswith(key + ".")
        if has_children:
            if flat[key] not in ("null", "[]"):
                return None  # a list and a mapping under one key
            del flat[key]
    return flat
