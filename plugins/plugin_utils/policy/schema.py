# -*- coding: utf-8 -*-
# Private to restorable.backup: the JSON Schema half of policy validation.
# A compiled validator (fastjsonschema) answers "valid?" quickly for the common case of a clean
# fleet; only an invalid document goes through jsonschema, which lists every error with its path.
from __future__ import annotations

import functools
import marshal
import os
import reprlib

from .problems import Problem

try:
    import yaml
    import jsonschema
    import fastjsonschema
    HAS_DEPENDENCIES = True
    IMPORT_ERROR = None
except ImportError as exc:  # reported by the caller with missing_required_lib-style text
    HAS_DEPENDENCIES = False
    IMPORT_ERROR = exc

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema.yml")
_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlist = 4
_SHORT.maxdict = 4


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def secret_paths(schema: dict | None = None) -> frozenset:
    """Names of the $defs that are secrets, so messages never echo their values."""
    schema = schema or load_schema()
    return frozenset(name for name, sub in schema["$defs"].items() if sub.get("x-secret"))


class SchemaValidator:
    """Validates one host's restorable_* variables against the canonical schema."""

    def __init__(self, schema: dict | None = None) -> None:
        self.schema = schema or load_schema()
        self._is_valid_fast = fastjsonschema.compile(
            _fast_schema(self.schema), use_formats=False, detailed_exceptions=False
        )
        self._detailed = jsonschema.Draft202012Validator(self.schema)
        self._valid_values: set = set()

    def problems(self, host: str, document: dict) -> list:
        if all(self._is_valid_variable(name, value) for name, value in document.items()):
            return []
        problems = set()
        for error in _leaf_errors(self._detailed.iter_errors(document)):
            path = tuple(error.absolute_path)
            if error.validator == "additionalProperties":
                # One line per unknown key, at the key itself: that is where the typo is.
                message = _message(error)
                problems.update(Problem(host, path + (key,), message) for key in _unknown_keys(error))
            else:
                problems.add(Problem(host, path, _message(error)))
        return sorted(problems, key=lambda p: (tuple(str(x) for x in p.path), p.message))

    def _is_valid_variable(self, name: str, value: object) -> bool:
        """Hosts of one group share their group_vars values: a value seen valid once stays valid."""
        try:
            key = (name, marshal.dumps(value))  # the cheapest exact key for plain data
        except ValueError:
            return False  # not plain data: the detailed validator names the odd value
        if key in self._valid_values:
            return True
        try:
            self._is_valid_fast({name: value})
        except fastjsonschema.JsonSchemaException:
            return False
        self._valid_values.add(key)
        return True


def _fast_schema(schema: dict) -> dict:
    """The same rules, shaped for fastjsonschema: it knows draft-07 (everything used here means
    the same there), and each $ref costs a call per value, so shared field definitions are inlined."""
    definitions = schema["$defs"]

    def resolve(ref: str) -> dict:
        node = {"$defs": definitions}
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def inline(node):
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: inline(value) for key, value in node.items() if key not in ("examples", "description")}
        if "const" in node:  # fastjsonschema cannot build const checks without detailed exceptions
            node["enum"] = [node.pop("const")]
        ref = node.get("$ref")
        if ref:
            target = resolve(ref)
            if "/properties/" in ref or not any(k in target for k in ("properties", "additionalProperties", "allOf")):
                merged = inline(target)
                merged.update((k, v) for k, v in node.items() if k != "$ref")
                return merged
        return node

    fast = inline(schema)
    fast["$schema"] = "http://json-schema.org/draft-07/schema#"
    return fast


def _leaf_errors(errors) -> list:
    """if/then and $ref wrap the useful errors; report the innermost ones."""
    leaves = []
    for error in errors:
        if error.context:
            leaves.extend(_leaf_errors(error.context))
        else:
            leaves.append(error)
    return leaves


def _unknown_keys(error) -> list:
    allowed = set((error.schema.get("properties") or {}).keys())
    return sorted((key for key in error.instance if key not in allowed), key=str)


def _shown(error) -> str:
    if isinstance(error.schema, dict) and error.schema.get("x-secret"):
        return "the value (hidden, it is a secret)"
    return _SHORT.repr(error.instance)


def _message(error) -> str:
    """Operator-facing text: what is wrong and what is allowed, never a wall of schema."""
    kind, expected = error.validator, error.validator_value
    shown = _shown(error)
    if kind == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        what = "variable" if not error.absolute_path else "field"
        return "unknown %s (allowed: %s)" % (what, ", ".join(allowed)) if allowed else "unknown %s" % what
    if kind == "required":
        missing = [name for name in expected if name not in error.instance]
        return "missing required field%s %s" % ("s" if len(missing) > 1 else "", ", ".join(missing))
    if kind == "type":
        return "%s is %s, expected %s" % (shown, _type_name(error.instance), expected)
    if kind in ("enum", "const"):
        choices = expected if kind == "enum" else [expected]
        return "%s is not one of %s" % (shown, ", ".join(map(str, choices)))
    if kind == "minimum":
        return "%s is less than %s" % (shown, expected)
    if kind == "maximum":
        return "%s is greater than %s" % (shown, expected)
    if kind == "exclusiveMinimum":
        return "%s must be greater than %s" % (shown, expected)
    if kind == "pattern":
        description = error.schema.get("description", "")
        return "%s is not valid%s" % (shown, ": " + description.rstrip(".").lower() if description else "")
    if kind == "propertyNames":
        return "%s is not a valid name" % shown
    if kind in ("minItems", "minProperties", "minLength"):
        return "%s is too short or empty (at least %s)" % (shown, expected)
    if kind in ("maxItems", "maxProperties", "maxLength"):
        return "%s is too long (at most %s)" % (shown, expected)
    if kind == "uniqueItems":
        return "%s has duplicate entries" % shown
    if kind == "anyOf":
        options = [" or ".join(sub.get("required", [])) for sub in expected]
        return "needs one of: %s" % ", ".join(options)
    return error.message if "x-secret" not in str(error.schema) else "invalid value"


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a %s" % type(value).__name__
