"""The policy reference is generated from the canonical schema and kept in step with it.

docs/policy.md and docs/policy.schema.json come from plugins/plugin_utils/policy/schema.yml
through scripts/gendocs.py (make docs); these tests regenerate them in memory and compare.
"""

import copy
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "plugins/plugin_utils/policy/schema.yml"
GENERATED = ("docs/policy.md", "docs/policy.schema.json")
# Keywords the schema may use; anything else is most likely a YAML slip (see the test below).
KEYWORDS = {
    "$schema", "$id", "$ref", "$defs", "title", "description", "examples", "type", "enum", "const",
    "properties", "additionalProperties", "propertyNames", "required", "minProperties", "maxProperties",
    "items", "minItems", "maxItems", "uniqueItems", "pattern", "minLength", "maxLength",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "allOf", "anyOf", "oneOf", "not",
    "if", "then", "else", "x-secret",
}
# Values, not schemas: never walked for keywords or properties.
VALUE_KEYWORDS = {"examples", "enum", "const", "required"}


@pytest.fixture(scope="module")
def gendocs():
    spec = importlib.util.spec_from_file_location("gendocs", REPO / "scripts/gendocs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def schema():
    with open(SCHEMA, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def rendered(gendocs, schema):
    return gendocs.render(copy.deepcopy(schema))


@pytest.mark.parametrize("path", GENERATED)
def test_generated_file_matches_schema(rendered, path):
    target = REPO / path
    assert target.is_file(), f"{path} is missing: run `make docs`"
    assert target.read_text(encoding="utf-8") == rendered[path], (
        f"{path} is stale: it does not match {SCHEMA.relative_to(REPO)}; run `make docs` and commit it"
    )


def test_render_is_deterministic_and_leaves_schema_alone(gendocs, schema, rendered):
    before = copy.deepcopy(schema)
    assert gendocs.render(schema) == rendered
    assert schema == before
    assert set(rendered) == set(GENERATED)
    assert all(text.endswith("\n") and not text.endswith("\n\n") for text in rendered.values())


def test_check_mode_names_the_stale_file_and_writes_nothing(gendocs, tmp_path, capsys):
    (tmp_path / SCHEMA.relative_to(REPO)).parent.mkdir(parents=True)
    shutil.copy(SCHEMA, tmp_path / SCHEMA.relative_to(REPO))

    assert gendocs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert all(f"{path} is stale" in err for path in GENERATED)
    assert not (tmp_path / "docs").exists()

    assert gendocs.main(["--root", str(tmp_path)]) == 0
    assert gendocs.main(["--check", "--root", str(tmp_path)]) == 0

    (tmp_path / "docs/policy.md").write_text("edited by hand\n", encoding="utf-8")
    assert gendocs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/policy.md is stale" in err and "policy.schema.json" not in err


def test_editor_schema_is_the_canonical_schema(schema, rendered):
    """Only the documented editor additions differ from the source: a $comment, and variables
    that are not restorable_* (ansible_host, vault_...) allowed next to the policy."""
    editor = json.loads(rendered["docs/policy.schema.json"])
    assert list(editor)[:3] == ["$schema", "$id", "$comment"]
    assert editor.pop("patternProperties") == {"^(?!restorable_)": True}
    editor.pop("$comment")
    assert editor == schema


def test_every_property_has_a_description_and_examples(schema):
    missing = []
    for where, node in _properties_and_definitions(schema):
        for key in ("description", "examples"):
            if _effective(schema, node, key) in (None, "", []):
                missing.append(f"{where}: no {key}")
    assert not missing, "\n".join(missing)


def test_schema_uses_only_known_keywords(schema):
    unknown = [f"{where}: {key!r}" for where, key in _keywords(schema, "#") if key not in KEYWORDS]
    assert not unknown, "\n".join(unknown)


def _properties_and_definitions(schema):
    """(where, node) for every $defs entry and every node under any properties mapping, leaving
    out the conditions of if/then (they test a field, they do not declare one)."""
    for name, node in schema.get("$defs", {}).items():
        yield f"#/$defs/{name}", node
    for where, node in _schema_nodes(schema, "#", skip=("if",)):
        for name, child in (node.get("properties") or {}).items():
            yield f"{where}/properties/{name}", child


def _schema_nodes(node, where, skip=()):
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _schema_nodes(item, f"{where}/{index}", skip)
        return
    if not isinstance(node, dict):
        return
    yield where, node
    for key, value in node.items():
        if key in VALUE_KEYWORDS or key in skip:
            continue
        if key in ("properties", "$defs", "patternProperties") and isinstance(value, dict):
            for name, child in value.items():
                yield from _schema_nodes(child, f"{where}/{key}/{name}", skip)
        else:
            yield from _schema_nodes(value, f"{where}/{key}", skip)


def _keywords(schema, where):
    for node_where, node in _schema_nodes(schema, where):
        for key in node:
            yield node_where, key


def _effective(schema, node, key):
    """A node's own value for key, or the one of the definition its $ref points to."""
    seen = set()
    while isinstance(node, dict):
        if key in node:
            return node[key]
        ref = node.get("$ref")
        if not ref or ref in seen or not ref.startswith("#/"):
            return None
        seen.add(ref)
        node = schema
        for part in ref[2:].split("/"):
            node = node[part]
    return None
