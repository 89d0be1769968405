# -*- coding: utf-8 -*-
# Private to restorable.backup: the JSON Schema half of policy validation.
# A compiled validator (fastjsonschema) answers "valid?" quickly for the common case of a clean
# fleet; only an invalid document goes through jsonschema, which lists every error with its path.
from __future__ import annotations

import copy
import datetime
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
        guarded = _guard_discriminators(self.schema)
        self._is_valid_fast = fastjsonschema.compile(
            _fast_schema(guarded), use_formats=False, detailed_exceptions=False
        )
        self._detailed = jsonschema.Draft202012Validator(guarded)
        self._valid_values: set = set()

    def problems(self, host: str, document: dict) -> list:
        invalid = [name for name, value in document.items() if not self._is_valid_variable(name, value)]
        if not invalid:
            return []
        problems: set = set()
        for name in invalid:  # one variable at a time: one that cannot be checked hides none of the others
            problems.update(self._variable_problems(host, name, document[name]))
        return sorted(problems, key=lambda p: (tuple(str(x) for x in p.path), p.message))

    def _variable_problems(self, host: str, name: str, value: object) -> set:
        problems: set = set()
        try:
            for error in _leaf_errors(self._detailed.iter_errors({name: value})):
                path = tuple(error.absolute_path)
                if error.validator == "additionalProperties":
                    # One line per unknown key, at the key itself: that is where the typo is.
                    message = _message(error)
                    problems.update(Problem(host, path + (key,), message) for key in _unknown_keys(error))
                else:
                    problems.add(Problem(host, path, _message(error)))
        except RecursionError:  # jsonschema walks (and repr()s) values recursively
            return {Problem(host, (name,), "nested too deeply")}
        if not problems:  # the fast validator refused what the detailed one accepts: never let it through
            problems.add(Problem(host, (name,), "does not match the policy schema"))
        return problems

    def _is_valid_variable(self, name: str, value: object) -> bool:
        """Hosts of one group share their group_vars values: a value seen valid once stays valid."""
        try:
            key = (name, marshal.dumps(value))  # the cheapest exact key for plain data
        except ValueError:
            key = None  # not plain data (a vaulted string, a date), or nested too deeply: checked every time
        if key in self._valid_values:
            return True
        try:
            self._is_valid_fast({name: value})
        except fastjsonschema.JsonSchemaException:
            return False
        except (RecursionError, TypeError, ValueError):
            return False  # what the compiled code cannot handle, the detailed validator reports
        if key is not None:
            self._valid_values.add(key)
        return True


def _guard_discriminators(schema: dict) -> dict:
    """A copy where each if/then keyed on a field the object requires (type, tier, choice, mode,
    driver) also requires it in its if. An absent field otherwise passes every if (properties
    only tests present keys), and every branch reports its fields on top of the one missing line.
    Which documents are valid does not change: the object itself requires the field."""
    guarded = copy.deepcopy(schema)

    def walk(node) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        required = node.get("required", [])
        for branch in node.get("allOf", []):
            condition = branch.get("if") if isinstance(branch, dict) else None
            tested = list((condition or {}).get("properties", {}))
            if len(tested) == 1 and tested[0] in required and "required" not in condition:
                condition["required"] = tested
        for key, value in node.items():
            if key not in ("examples", "enum", "const", "required"):
                walk(value)

    walk(guarded)
    return guarded


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
        shaped = {}
        for key, value in node.items():
            if key in ("examples", "description"):
                continue
            if key in ("properties", "$defs"):  # names to schemas: a field may well be called description
                shaped[key] = {name: inline(child) for name, child in value.items()}
            else:
                shaped[key] = value if key in ("enum", "const", "required") else inline(value)
        node = shaped
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
    """Report the innermost errors, except that "one of these" (anyOf, oneOf) stays one error:
    its branches are alternatives, not each required."""
    leaves = []
    for error in errors:
        if error.context and error.validator not in ("anyOf", "oneOf"):
            leaves.extend(_leaf_errors(error.context))
        else:
            leaves.append(error)
    return leaves


def _unknown_keys(error) -> list:
    allowed = set((error.schema.get("properties") or {}).keys())
    return sorted((key for key in error.instance if key not in allowed), key=str)


# Types as YAML writers know them, for both the value found and the type expected.
_TYPE_NAMES = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "a boolean", "null": "null",
}


def _is_secret(error) -> bool:
    return isinstance(error.schema, dict) and bool(error.schema.get("x-secret"))


def _is_container(value) -> bool:
    return isinstance(value, (dict, list, tuple, set, frozenset))


def _shown(error) -> str:
    """The value as the operator wrote it, or what stands for it: containers are never printed
    (they can hold secrets, and can be huge), nor are secrets."""
    value = error.instance
    if _is_container(value):
        return _type_name(value)
    if value is None:
        return "the value"
    if _is_secret(error):
        return "the value (hidden, it is a secret)"
    return _scalar(value)


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return _SHORT.repr(value)


def _subject(error) -> str:
    """'<value> is <type>', 'a list', 'the value is null': the start of a type message."""
    value = error.instance
    if _is_container(value):
        return _type_name(value)
    return "%s is %s" % (_shown(error), _type_name(value))


def _expected_type(expected) -> str:
    if isinstance(expected, list):
        return " or ".join(_TYPE_NAMES.get(kind, kind) for kind in expected)
    return _TYPE_NAMES.get(expected, expected)


def _describe(error) -> str:
    description = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
    description = description.strip().rstrip(".")
    return description[:1].lower() + description[1:]


def _count(count: int, one: str, many: str) -> str:
    return "%d %s" % (count, one if count == 1 else many)


def _message(error) -> str:
    """Operator-facing text: what is wrong and what is allowed, never a wall of schema."""
    kind, expected, value = error.validator, error.validator_value, error.instance
    shown = _shown(error)
    is_key = "propertyNames" in error.relative_schema_path
    if kind == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        what = "variable" if not error.absolute_path else "field"
        return "unknown %s (allowed: %s)" % (what, ", ".join(allowed)) if allowed else "unknown %s" % what
    if kind == "required":
        missing = [name for name in expected if name not in value]
        return "missing required field%s %s" % ("s" if len(missing) > 1 else "", ", ".join(missing))
    if kind == "type":
        return "%s%s, expected %s" % ("the key " if is_key else "", _subject(error), _expected_type(expected))
    if kind in ("enum", "const"):
        choices = ", ".join(choice if isinstance(choice, str) else _scalar(choice) for choice in (expected if kind == "enum" else [expected]))
        if _is_container(value) or value is None:
            return "%s, expected one of %s" % (_subject(error), choices)
        return "%s is not one of %s" % (shown, choices)
    if kind == "minimum":
        return "%s is less than %s" % (shown, expected)
    if kind == "maximum":
        return "%s is greater than %s" % (shown, expected)
    if kind == "exclusiveMinimum":
        return "%s must be greater than %s" % (shown, expected)
    if kind == "pattern":
        description = _describe(error)
        return "%s is not valid%s" % (shown, ": " + description if description else "")
    if kind == "minLength":
        if not value:
            return "the text is empty"
        return "%s is too short (at least %s)" % (shown, _count(expected, "character", "characters"))
    if kind == "maxLength":
        return "%s is too long (at most %s)" % (shown, _count(expected, "character", "characters"))
    if kind in ("minItems", "minProperties"):
        what = "list" if kind == "minItems" else "mapping"
        if not value:
            return "the %s is empty (at least %s)" % (what, _count(expected, "entry", "entries"))
        return "the %s has %s, at least %d" % (what, _count(len(value), "entry", "entries"), expected)
    if kind in ("maxItems", "maxProperties"):
        what = "list" if kind == "maxItems" else "mapping"
        return "the %s is too long (%d entries, at most %d)" % (what, len(value), expected)
    if kind == "uniqueItems":
        repeated = _first_repeated(value)
        return "%s is listed more than once" % _scalar(repeated) if repeated is not None else "the list has duplicate entries"
    if kind in ("anyOf", "oneOf"):
        options = [", ".join(sub.get("required", [])) for sub in expected if sub.get("required")]
        if options and len(options) == len(expected):
            return "needs %sone of: %s" % ("exactly " if kind == "oneOf" else "", ", ".join(options))
    # Anything else: never jsonschema's own text, which prints the whole value.
    return "%s is not valid" % ("the value" if _is_container(value) else shown)


def _first_repeated(items):
    """The first entry seen twice, when entries are plain values (names)."""
    seen = []
    for item in items:
        if _is_container(item):
            return None
        if (type(item), item) in seen:  # true is not 1
            return item
        seen.append((type(item), item))
    return None


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.datetime):
        return "a date and time"
    if isinstance(value, datetime.date):
        return "a date"
    return "a %s" % type(value).__name__
