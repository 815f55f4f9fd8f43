"""The JSON Schema of a config, for editors: built from the same pydantic models that validate a
config, so the two cannot drift.

Every key, its type, default, allowed names (the registries') and description (the docstring under
the key in schema.py). Each key takes the forms the loader takes, including what pydantic coerces
and what the `mode="before"` validators take in; the rules that tie keys together (a file source
needs data.path, one activation per hidden layer, ...) stay the loader's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from .schema import Config, Section

SCHEMA_FILE = "mlp-config.schema.json"
"""The name the schema file has next to the configs, as the editor comment points to it."""

SCHEMA_COMMENT = f"# yaml-language-server: $schema={SCHEMA_FILE}"
"""The first line of a config: editors with yaml-language-server validate against the file."""

TITLE = "mlpcli config"
"""The schema's title; `mlp config schema -o FILE` rewrites a FILE holding it, never another."""

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# A file over this size is no schema this command wrote (about 40 KB): never read it whole.
MAX_SCHEMA_BYTES = 4 * 1024 * 1024

# What pydantic turns into a number from a string (a quoted number, or 1e-3, which YAML 1.1
# reads as a string): digits with single underscores between them, a point, an exponent.
_DIGITS = r"[0-9]+(_[0-9]+)*"  # ASCII: Python's \d takes any script's digits
NUMBER_TEXT = rf"^\s*[+-]?({_DIGITS}(\.({_DIGITS})?)?|\.{_DIGITS})([eE][+-]?{_DIGITS})?\s*$"
# The words pydantic reads as a boolean, in any case. YAML 1.1 (the loader) reads yes / no /
# on / off as booleans already, YAML 1.2 (editors) as strings: both must pass.
BOOLEAN_WORDS = ("0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes")


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# (?![\s\S]) ends the text in every dialect; Python's $ also matches before a final newline.
BOOLEAN_TEXT = f"^({'|'.join(_any_case(w) for w in BOOLEAN_WORDS)})(?![\\s\\S])"


class _LoaderForms(GenerateJsonSchema):
    """pydantic's JSON Schema, widened to what the loader's lax validation coerces, with the
    defaults that default factories make (lists, mappings) shown too."""

    def float_schema(self, schema: core_schema.FloatSchema) -> JsonSchemaValue:
        # The bounds hold for numbers; a number written as a string is checked by the loader.
        return {"anyOf": [super().float_schema(schema), {"type": "string", "pattern": NUMBER_TEXT}]}

    def bool_schema(self, schema: core_schema.BoolSchema) -> JsonSchemaValue:
        if schema.get("strict"):  # a validator that takes true and false only (StrictBool)
            return super().bool_schema(schema)
        return {
            "anyOf": [
                {"type": "boolean"},
                {"enum": [0, 1]},
                {"type": "string", "pattern": BOOLEAN_TEXT},
            ]
        }

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data") or "default" in json_schema:
            return json_schema
        value = factory()  # type: ignore[call-arg]
        # A section's default is its keys' defaults, each shown at its key.
        if not isinstance(value, BaseModel):
            json_schema["default"] = self.encode_default(value)
        return json_schema


def config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a config file."""
    body = Config.model_json_schema(schema_generator=_LoaderForms)
    body.pop("title", None)
    _describe(Config, body)
    return {
        "$schema": DIALECT,
        "title": TITLE,
        "description": (
            "A config of mlpcli (mlp train CONFIG). Checks each key's name, type and allowed "
            "names; `mlp config show CONFIG` also checks the rules that tie keys together."
        ),
        **body,
    }


def _describe(model: type[BaseModel], body: dict[str, Any]) -> None:
    """Each key's description: the docstring under it. pydantic could read them for every model
    it builds (use_attribute_docstrings), but that parses the source of every section whenever
    the schema module is imported, which every command that reads a config does; so they are
    read here, for this command alone."""
    from pydantic._internal._docs_extraction import extract_docstrings_from_cls

    sections = [Section]
    for cls in sections:  # every section model, each once
        sections += [c for c in cls.__subclasses__() if c not in sections]
    definitions = body.get("$defs", {})
    for cls in sections:
        where = body if cls is model else definitions.get(cls.__name__, {})
        properties = where.get("properties", {})
        for key, text in extract_docstrings_from_cls(cls, use_inspect=True).items():
            if key in properties:
                properties[key].setdefault("description", text)


def schema_text(schema: dict[str, Any]) -> str:
    """The schema as `mlp config schema` prints and writes it."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def holds_schema(path: Path) -> bool:
    """Whether the file holds a schema this command wrote (its title), so -o may rewrite it:
    regenerating it is the point; any other file is left alone."""
    try:
        with path.open("rb") as file:
            head = file.read(MAX_SCHEMA_BYTES + 1)
        data = json.loads(head.decode("utf-8")) if len(head) <= MAX_SCHEMA_BYTES else None
    except (OSError, ValueError, RecursionError):  # deep nesting exhausts the parser
        data = None
    return isinstance(data, dict) and data.get("title") == TITLE
