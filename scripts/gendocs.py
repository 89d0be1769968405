#!/usr/bin/env python
"""Generate the policy reference from the canonical schema.

    python scripts/gendocs.py            # write docs/policy.md and docs/policy.schema.json
    python scripts/gendocs.py --check    # exit 1 naming each stale file, write nothing

Source: plugins/plugin_utils/policy/schema.yml (JSON Schema 2020-12 written as YAML). Output is
deterministic: it depends on the schema alone (no dates, no environment), so CI can compare it.
Needs only the standard library and PyYAML. Tests import render(schema) from this file.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_PATH = "plugins/plugin_utils/policy/schema.yml"
MARKDOWN_PATH = "docs/policy.md"
JSON_PATH = "docs/policy.schema.json"
REGENERATE = "make docs (or python scripts/gendocs.py)"
DEFS = "#/$defs/"
# Inventory variables files hold more than the policy (ansible_host, vault_*, ...). For editors,
# names that do not start with restorable_ are allowed; unknown restorable_* names stay errors.
OTHER_VARIABLES = "^(?!restorable_)"


def render(schema: dict) -> dict:
    """Every generated file, as {path relative to the repository: text}."""
    return {
        MARKDOWN_PATH: _Markdown(schema).render(),
        JSON_PATH: render_json(schema),
    }


def load_schema(root: str = REPO) -> dict:
    with open(os.path.join(root, SCHEMA_PATH), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# JSON Schema for editors ---------------------------------------------------------------------

def render_json(schema: dict) -> str:
    """The schema as JSON, in the source's key order, for yaml-language-server and VS Code."""
    data = copy.deepcopy(schema)
    if data.get("additionalProperties") is False:
        data = _insert_after(data, "additionalProperties", "patternProperties", {OTHER_VARIABLES: True})
    data = _insert_after(
        data,
        "$id",
        "$comment",
        "Generated from %s by scripts/gendocs.py; do not edit. Unlike the source, variables whose names "
        "do not start with restorable_ are allowed, so whole group_vars and host_vars files can be "
        "checked in an editor. Values are checked as written: a Jinja template where the schema wants "
        "a number or a pattern shows as an error in the editor, while validation templates first." % SCHEMA_PATH,
    )
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _insert_after(mapping: dict, anchor: str, key: str, value: object) -> dict:
    result: dict = {}
    for existing, existing_value in mapping.items():
        if existing != key:
            result[existing] = existing_value
        if existing == anchor:
            result[key] = value
    if key not in result:
        result[key] = value
    return result


# Markdown reference --------------------------------------------------------------------------

class _Markdown:
    """One section per top-level variable, then one per definition, in schema order."""

    def __init__(self, schema: dict) -> None:
        self.schema = schema
        self.defs = schema.get("$defs", {})
        self.used_by = self._references()

    # structure

    def render(self) -> str:
        out = [
            "# Policy reference",
            "",
            "<!-- Generated from %s by scripts/gendocs.py: do not edit, run `make docs`. -->" % SCHEMA_PATH,
            "",
            _text(self.schema.get("description", "")),
            "",
            "A host's backup policy is the set of its inventory variables whose names start with "
            "`restorable_`. Ansible merges them per host from `group_vars` and `host_vars` as usual: "
            "a variable defined at a more specific level replaces the whole value (dictionaries are "
            "not merged), so keep each variable of a host in one place. An unknown `restorable_` "
            "variable is an error. Validation runs on the controller "
            "(`ansible-playbook -i INVENTORY restorable.backup.validate`) on the templated values.",
            "",
            "How to read the tables:",
            "",
            "- **Field** is the path below the entry: `a.b` is field `b` of object `a`, `a[]` an item "
            "of list `a`, `a.<name>` an entry of mapping `a` under a key you choose.",
            "- **Required**: `yes` means the field must be present whenever its parent object is; "
            "conditions (\"when ...\") come from the rules listed under the table.",
            "- **Allowed** lists the constraints the schema enforces: choices, ranges, patterns, sizes.",
            "- Fields marked **secret** hold credentials: give them as a reference to an Ansible Vault "
            "variable or a lookup (`\"{{ vault_restic_password }}\"`), never as plain text. Plain text "
            "is a warning, or an error with `restorable_compliance.plaintext_secrets: error`.",
            "- Linked types (such as [duration](#duration)) are defined once under "
            "[Definitions](#definitions).",
            "",
            "Beyond the shape checked here, validation checks that every referenced target, schedule, "
            "consistency profile, pool, dataset, site and host exists; that a schedule with its window "
            "and jitter can meet the dataset's RPO; that windows fit their jitter and calendars fire "
            "inside them; that retention reaches back further than a drill's look-back; that a tape "
            "chain fits in its pool's retention; that a drill sandbox lies outside every protected "
            "path; and it scores each dataset against 3-2-1-1-0.",
            "",
            "For editors, [policy.schema.json](policy.schema.json) is the same schema as JSON, except "
            "that it allows variables not named `restorable_*` next to the policy. With the YAML "
            "extension of VS Code (yaml-language-server), put a modeline at the top of a `group_vars` "
            "or `host_vars` file, with the path relative to that file; for "
            "`inventories/prod/group_vars/all.yml` in a checkout of the collection:",
            "",
            "```yaml",
            "# yaml-language-server: $schema=../../../docs/policy.schema.json",
            "```",
            "",
            "The editor checks values as written, before templating: a Jinja expression where a number "
            "or a pattern is expected shows as an error there, although validation would accept what "
            "it renders to.",
            "",
            "## Contents",
            "",
            "Variables:",
            "",
        ]
        for name, node in self.schema.get("properties", {}).items():
            out.append("- [`%s`](#%s): %s" % (name, _anchor(name), _text(self._description(node))))
        out += ["", "[Definitions](#definitions):", ""]
        for name, node in self.defs.items():
            out.append("- [`%s`](#%s): %s" % (name, _anchor(name), _text(self._description(node))))
        out += ["", "## Variables", ""]
        for name, node in self.schema.get("properties", {}).items():
            out += self._variable_section(name, node)
        out += ["## Definitions", ""]
        for name, node in self.defs.items():
            out += self._definition_section(name, node)
        while out and out[-1] == "":
            out.pop()
        return "\n".join(out) + "\n"

    def _variable_section(self, name: str, node: dict) -> list:
        resolved = self._merged(node)
        out = ["### `%s`" % name, "", _text(self._description(node)), ""]
        out += self._summary(node)
        example = self._first_example(node)
        if example is not _MISSING:
            out += ["Example:", ""] + _yaml_block({name: example})
        return out

    def _definition_section(self, name: str, node: dict) -> list:
        out = ["### `%s`" % name, "", _text(node.get("description", "")), ""]
        if self.used_by.get(name):
            out += ["Used by: %s." % self.used_by[name], ""]
        if _is_object(node) and (node.get("properties") or node.get("allOf")):
            out += self._object_body(node)
        else:
            out += self._summary(node)
        examples = node.get("examples", [])
        if examples:
            out += ["Example:" if len(examples) == 1 else "Examples:", ""]
            for example in examples:
                out += _yaml_block(example)
        return out

    def _summary(self, node: dict) -> list:
        """Type and constraints of a node documented as a whole (scalars, mappings)."""
        rows = [("Type", self._type(node))]
        allowed = self._allowed(node)
        if allowed:
            rows.append(("Allowed", allowed))
        if _merged_flag(self, node, "x-secret"):
            rows.append(("Secret", "yes: give it with Ansible Vault or a lookup, never as plain text"))
        out = ["| | |", "|---|---|"]
        out += ["| %s | %s |" % (label, _cell(value)) for label, value in rows]
        return out + [""]

    def _object_body(self, node: dict) -> list:
        if node.get("additionalProperties") is False:
            closing = "Fields not listed here are errors."
        elif node.get("allOf"):
            closing = "Further fields depend on the rules below."
        else:
            closing = "These fields are shared: the definitions that use them list them too."
        out = ["Type: object. %s" % closing, ""]
        rows: list = []
        rules: list = []
        self._rows(node, "", rows, rules)
        if rows:
            out += [
                "| Field | Type | Required | Allowed | Description | Example |",
                "|---|---|---|---|---|---|",
            ]
            out += ["| %s |" % " | ".join(_cell(c) for c in row) for row in rows]
            out.append("")
        if rules:
            out += ["Rules:", ""] + ["- %s" % rule for rule in rules] + [""]
        return out

    def _rows(self, node: dict, prefix: str, rows: list, rules: list) -> None:
        """Table rows for the fields of an inline object, descending into inline sub-objects."""
        required = set(node.get("required", []))
        conditional = self._conditions(node, prefix, rules)
        for field, child in node.get("properties", {}).items():
            path = prefix + field
            if field in required:
                need = "yes"
            elif field in conditional:
                need = "when " + " or ".join(conditional[field])
            else:
                need = "no"
            rows.append((
                "`%s`" % path,
                self._type(child),
                need,
                self._allowed(child),
                self._field_description(child),
                self._example_cell(child),
            ))
            self._descend(child, path, rows, rules)

    def _descend(self, child: dict, path: str, rows: list, rules: list) -> None:
        if "/properties/" in child.get("$ref", ""):
            child = self._follow(child)
        if "$ref" in child:
            return  # a definition of its own, documented in its section
        if _is_object(child) and child.get("properties"):
            self._rows(child, path + ".", rows, rules)
        elif child.get("type") == "array" and isinstance(child.get("items"), dict):
            items = child["items"]
            if "$ref" not in items and _is_object(items) and items.get("properties"):
                self._rows(items, path + "[].", rows, rules)
        elif _is_object(child) and isinstance(child.get("additionalProperties"), dict):
            values = child["additionalProperties"]
            if "$ref" not in values and _is_object(values) and values.get("properties"):
                self._rows(values, path + ".<name>.", rows, rules)

    def _conditions(self, node: dict, prefix: str, rules: list) -> dict:
        """Explain allOf/if/then in words; returns {field: [conditions that require it]}."""
        required_when: dict = {}
        for branch in node.get("allOf", []):
            condition = _condition_text(branch.get("if", {}), prefix)
            then = branch.get("then", {})
            if condition is None:
                rules.append("A further rule applies: `%s`." % json.dumps(branch, sort_keys=True))
                continue
            if "$ref" in then:
                target = then["$ref"][len(DEFS):]
                closed = self.defs.get(target, {}).get("additionalProperties") is False
                rules.append(
                    "When %s, the fields of [%s](#%s) apply%s."
                    % (condition, target, _anchor(target), " (and no others)" if closed else "")
                )
            if then.get("required"):
                fields = ", ".join("`%s%s`" % (prefix, f) for f in then["required"])
                rules.append("When %s, %s %s required." % (condition, fields, "is" if len(then["required"]) == 1 else "are"))
                for field in then["required"]:
                    required_when.setdefault(field, []).append(condition)
            if then.get("anyOf"):
                options = [" and ".join("`%s%s`" % (prefix, f) for f in option.get("required", [])) for option in then["anyOf"]]
                rules.append("When %s, at least one of %s is required." % (condition, ", ".join(options)))
            unexplained = set(then) - {"$ref", "required", "anyOf"}
            if unexplained:
                rules.append("When %s, also: `%s`." % (condition, json.dumps({k: then[k] for k in sorted(unexplained)}, sort_keys=True)))
        return required_when

    # cells

    def _type(self, node: dict) -> str:
        ref = node.get("$ref")
        if ref and "/properties/" in ref:
            return self._type(self._follow(node))
        if ref:
            name = ref[len(DEFS):]
            target = self.defs.get(name, {})
            link = "[%s](#%s)" % (name, _anchor(name))
            kind = _scalar_type(target)
            secret = ", **secret**" if target.get("x-secret") or node.get("x-secret") else ""
            return "%s (%s%s)" % (kind, link, secret) if kind else link + secret
        node = self._merged(node)
        secret = ", **secret**" if node.get("x-secret") else ""
        kind = node.get("type")
        if kind == "array":
            items = node.get("items")
            return "list of %s" % (self._type(items) if isinstance(items, dict) else "anything")
        if _is_object(node) and isinstance(node.get("additionalProperties"), dict):
            keys = node.get("propertyNames", {})
            key = "[%s](#%s)" % ((keys["$ref"][len(DEFS):],) * 2) if "$ref" in keys else "string"
            return "mapping of %s to %s" % (key, self._type(node["additionalProperties"]))
        if kind:
            return kind + secret
        scalar = _scalar_type(node)
        return (scalar or "any") + secret

    def _allowed(self, node: dict, separator: str = "; ") -> str:
        ref = node.get("$ref", "")
        if "/properties/" in ref:
            return self._allowed(self._follow(node), separator)
        if ref and not _scalar_type(self._merged(node)):
            node = {k: v for k, v in node.items() if k != "$ref"}  # documented in its own section
        else:
            node = self._merged(node)
        parts = []
        if "const" in node:
            parts.append("exactly %s" % _code(node["const"]))
        if "enum" in node:
            parts.append("one of %s" % ", ".join(_code(v) for v in node["enum"]))
        parts += _range(node.get("minimum"), node.get("maximum"), node.get("exclusiveMinimum"), node.get("exclusiveMaximum"))
        if "pattern" in node:
            parts.append("pattern %s" % _literal(node["pattern"]))
        parts += _size(node, "minLength", "maxLength", "character", "characters")
        parts += _size(node, "minItems", "maxItems", "item", "items")
        if node.get("uniqueItems"):
            parts.append("no duplicates")
        parts += _size(node, "minProperties", "maxProperties", "entry", "entries")
        keys = node.get("propertyNames")
        if isinstance(keys, dict) and "$ref" not in keys:
            inner = self._allowed(keys, ", ")
            if inner:
                parts.append("keys: %s" % inner)
        items = node.get("items")
        if node.get("type") == "array" and isinstance(items, dict) and not _is_object(self._merged(items)):
            inner = self._allowed(items, ", ")
            if inner:
                parts.append("each item: %s" % inner)
        values = node.get("additionalProperties")
        if _is_object(node) and isinstance(values, dict) and "$ref" not in values and not _is_object(values):
            inner = self._allowed(values, ", ")
            if inner:
                parts.append("each value: %s" % inner)
        return separator.join(parts)

    def _field_description(self, node: dict) -> str:
        text = _text(self._description(node))
        if _merged_flag(self, node, "x-secret"):
            text += " **Secret**: use Ansible Vault or a lookup."
        return text

    def _example_cell(self, node: dict) -> str:
        example = self._first_example(node)
        return "" if example is _MISSING else _code(example)

    # schema helpers

    def _resolve(self, ref: str) -> dict:
        node = self.schema
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def _follow(self, node: dict) -> dict:
        """A reference to another definition's field, followed one step: local keys win."""
        result = dict(self._resolve(node["$ref"]))
        result.update((k, v) for k, v in node.items() if k != "$ref")
        return result

    def _merged(self, node: dict) -> dict:
        """The node with its $ref followed: local keys win over the referenced ones."""
        seen = set()
        result = dict(node)
        while "$ref" in result and result["$ref"] not in seen:
            ref = result.pop("$ref")
            seen.add(ref)
            merged = dict(self._resolve(ref))
            merged.update(result)
            result = merged
        result.pop("$ref", None)
        return result

    def _description(self, node: dict) -> str:
        return self._merged(node).get("description", "")

    def _first_example(self, node: dict):
        examples = self._merged(node).get("examples")
        return examples[0] if examples else _MISSING

    def _references(self) -> dict:
        """{definition: "[where](#where) (`field`, ...); ..."} for the Used by lines."""
        found: dict = {}

        def walk(node, section: str, path: str) -> None:
            if isinstance(node, list):
                for item in node:
                    walk(item, section, path)
                return
            if not isinstance(node, dict):
                return
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(DEFS):
                target = ref[len(DEFS):].split("/")[0]
                if target != section:
                    fields = found.setdefault(target, {}).setdefault(section, [])
                    if path and path not in fields:
                        fields.append(path)
            for key, value in node.items():
                if key in ("examples", "$defs", "if"):
                    continue
                if key == "properties" and isinstance(value, dict):
                    for field, child in value.items():
                        walk(child, section, path + ("." if path else "") + field)
                elif key == "items":
                    walk(value, section, path + "[]")
                elif key == "additionalProperties":
                    walk(value, section, path + ".<name>" if path else "")
                elif key == "propertyNames":
                    walk(value, section, path + " keys" if path else "keys")
                else:
                    walk(value, section, path)

        for name, node in self.schema.get("properties", {}).items():
            walk(node, name, "")
        for name, node in self.defs.items():
            walk(node, name, "")
        return {
            target: "; ".join(
                "[%s](#%s)%s" % (section, _anchor(section), " (%s)" % ", ".join("`%s`" % f for f in fields) if fields else "")
                for section, fields in sections.items()
            )
            for target, sections in found.items()
        }


_MISSING = object()


def _is_object(node: dict) -> bool:
    return node.get("type") == "object"


def _merged_flag(doc: _Markdown, node: dict, flag: str) -> bool:
    return bool(doc._merged(node).get(flag))


def _scalar_type(node: dict) -> str:
    if node.get("type") in ("string", "integer", "number", "boolean"):
        return node["type"]
    values = node.get("enum", [node["const"]] if "const" in node else [])
    kinds = sorted({_json_type(v) for v in values})
    return kinds[0] if len(kinds) == 1 else ""


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "any"


def _condition_text(condition: dict, prefix: str):
    """'`type` is `local`' for {properties: {type: {const: local}}}; None for anything else."""
    properties = condition.get("properties", {})
    if set(condition) != {"properties"} or len(properties) != 1:
        return None
    (field, test), = properties.items()
    if set(test) == {"const"}:
        return "`%s%s` is %s" % (prefix, field, _code(test["const"]))
    if set(test) == {"enum"}:
        return "`%s%s` is one of %s" % (prefix, field, ", ".join(_code(v) for v in test["enum"]))
    return None


def _range(low, high, exclusive_low, exclusive_high) -> list:
    parts = []
    if low is not None and high is not None:
        parts.append("%s to %s" % (_number(low), _number(high)))
    else:
        if low is not None:
            parts.append("at least %s" % _number(low))
        if high is not None:
            parts.append("at most %s" % _number(high))
    if exclusive_low is not None:
        parts.append("greater than %s" % _number(exclusive_low))
    if exclusive_high is not None:
        parts.append("less than %s" % _number(exclusive_high))
    return parts


def _size(node: dict, low_key: str, high_key: str, one: str, many: str) -> list:
    low, high = node.get(low_key), node.get(high_key)
    if low is not None and high is not None:
        return ["%d to %d %s" % (low, high, many)]
    if low is not None:
        return ["at least %d %s" % (low, one if low == 1 else many)]
    if high is not None:
        return ["at most %d %s" % (high, one if high == 1 else many)]
    return []


def _number(value) -> str:
    return "{:,}".format(value).replace(",", " ") if isinstance(value, int) and abs(value) >= 10000 else str(value)


class _Dumper(yaml.SafeDumper):
    """YAML as inventories are written: indented lists, double quotes where quotes are needed."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"' if _needs_quotes(data) else None)


_Dumper.add_representer(str, _represent_str)
_INDICATORS = set(":{}[],&*#?|<>=!%@`'\"")


def _needs_quotes(text: str) -> bool:
    if not text or text != text.strip() or _INDICATORS & set(text):
        return True
    try:
        return yaml.safe_load(text) != text  # would read back as a number, boolean, null or date
    except yaml.YAMLError:
        return True


def _dump(value, flow: bool) -> str:
    return yaml.dump(
        value, Dumper=_Dumper, default_flow_style=flow, sort_keys=False, allow_unicode=True,
        width=(1 << 30) if flow else 100,
    )


def _flow(value) -> str:
    """A value as one line of YAML flow style, the way it is written in an inventory."""
    text = _dump(value, flow=True)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[: -len("...")].rstrip()
    return text


def _code(value) -> str:
    return _literal(_flow(value))


def _literal(text: str) -> str:
    """Text as a code span, as it is (patterns keep their backslashes)."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return "%s%s%s%s%s" % (fence, pad, text, pad, fence)


def _cell(text: str) -> str:
    """A table cell: one line, pipes escaped (also inside code spans, as GFM tables require)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _text(text: str) -> str:
    return " ".join(str(text).split())


def _anchor(name: str) -> str:
    """The id GitHub gives a heading "### `name`"."""
    return "".join(c for c in name.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def _yaml_block(value) -> list:
    text = _dump(value, flow=False)
    if text.endswith("...\n"):
        text = text[: -len("...\n")]
    return ["```yaml"] + text.rstrip("\n").split("\n") + ["```", ""]


# command line --------------------------------------------------------------------------------

def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/policy.md and docs/policy.schema.json from the policy schema.")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated file is stale")
    parser.add_argument("--root", default=REPO, help="repository root (default: the checkout this script is in)")
    args = parser.parse_args(argv)

    outputs = render(load_schema(args.root))
    stale = []
    for relative, text in sorted(outputs.items()):
        path = os.path.join(args.root, relative)
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                current = handle.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        if args.check:
            stale.append(relative)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        print("wrote %s" % relative)
    for relative in stale:
        print("%s is stale: it does not match %s; run %s" % (relative, SCHEMA_PATH, REGENERATE), file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
