# -*- coding: utf-8 -*-
"""Every malformed policy of corpus/ gives exactly the problem lines its file expects.

A corpus file is YAML with:

description  what is wrong, in words
hosts        inventory host -> its variables (restorable_* ones are validated)
expect       the exact lines FleetReport.lines() prints, in order
generate     (optional) values too big to keep in a file, built at load time; each entry has
             ``at`` (a path of keys starting with the host) and one of
             ``text`` + ``count`` (the text repeated), ``items`` + ``count`` (a list of
             ``items.format(i)``) or ``nest`` + ``depth`` + ``leaf`` (mappings nested that deep)
forbid       (optional) strings, secret values, that no line may contain
xfail        (optional) a known bug: ``reason``, plus ``raises: true`` when an exception escapes
             and ``leaks: true`` when a forbidden string is printed
"""
from __future__ import annotations

import os
import re

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
FILES = sorted(name for name in os.listdir(CORPUS) if name.endswith(".yml"))
MINIMUM_CORPUS_SIZE = 45


def _build(entry: dict):
    if "text" in entry:
        return entry["text"] * entry["count"]
    if "items" in entry:
        return [entry["items"].format(index) for index in range(entry["count"])]
    if "nest" in entry:
        value = entry.get("leaf")
        for _index in range(entry["depth"]):
            value = {entry["nest"]: value}
        return value
    raise ValueError("unknown generate entry %r" % entry)


def _apply_generate(hosts: dict, entries: list) -> None:
    for entry in entries:
        node = hosts
        for key in entry["at"][:-1]:
            node = node[key]
        node[entry["at"][-1]] = _build(entry)


def _read(name: str) -> dict:
    with open(os.path.join(CORPUS, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


_AS_WRITTEN = {name: _read(name) for name in FILES}


def load_case(name: str) -> dict:
    case = _read(name)
    _apply_generate(case["hosts"], case.get("generate", []))
    return case


def _params(kind: str) -> list:
    """One parameter per file; a file whose xfail covers this kind of test is marked strict."""
    params = []
    for name in FILES:
        if kind == "leaks" and not _AS_WRITTEN[name].get("forbid"):
            continue
        xfail = _AS_WRITTEN[name].get("xfail")
        applies = xfail and (kind == "lines" or (kind == "raises" and xfail.get("raises")) or (kind == "leaks" and xfail.get("leaks")))
        marks = [pytest.mark.xfail(strict=True, reason=xfail["reason"])] if applies else []
        params.append(pytest.param(name, marks=marks, id=name[:-4]))
    return params


@pytest.fixture(scope="module")
def validator():
    return FleetValidator()


def test_corpus_is_large_enough():
    assert len(FILES) >= MINIMUM_CORPUS_SIZE, FILES


@pytest.mark.parametrize("name", FILES, ids=[name[:-4] for name in FILES])
def test_corpus_file_is_well_formed(name):
    assert re.match(r"^[a-z0-9]+(-[a-z0-9]+)*\.yml$", name), "name files for what is wrong, in lower-case words"
    case = load_case(name)
    assert set(case) <= {"description", "hosts", "expect", "generate", "forbid", "xfail"}, sorted(case)
    assert isinstance(case["description"], str) and case["description"]
    assert isinstance(case["hosts"], dict) and case["hosts"]
    assert isinstance(case["expect"], list) and case["expect"], "a malformed policy must produce at least one line"
    assert all(isinstance(line, str) for line in case["expect"])


@pytest.mark.parametrize("name", _params("lines"))
def test_corpus_lines(validator, name):
    case = load_case(name)
    assert validator.validate(case["hosts"]).lines() == case["expect"]


@pytest.mark.parametrize("name", _params("raises"))
def test_corpus_never_raises(validator, name):
    case = load_case(name)
    report = validator.validate(case["hosts"])
    assert report.hosts_checked == len(case["hosts"])
    for problem in report.errors:
        assert problem.line().startswith(problem.host + ": ") and problem.host in case["hosts"]
    for problem in report.warnings:
        assert problem.line().startswith("warning: " + problem.host + ": ") and problem.host in case["hosts"]


@pytest.mark.parametrize("name", _params("leaks"))
def test_corpus_secrets_never_echoed(validator, name):
    case = load_case(name)
    lines = validator.validate(case["hosts"]).lines()
    assert lines, "the secret case must report something"
    for secret in case["forbid"]:
        assert not [line for line in lines if secret in line]
