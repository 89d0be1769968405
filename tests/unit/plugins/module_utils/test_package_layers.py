# -*- coding: utf-8 -*-
"""The host engine's packages import downward only, and restic runs from one package.

Layers, lowest first: a package may import its own modules and packages of lower layers, never
one of its own layer or above. A cycle between tier, core, storage, drill or consistency code is
an upward import somewhere, so this test fails on it too.
"""
from __future__ import annotations

import ast
import os

import pytest

MODULE_UTILS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "module_utils"))
PLUGINS = os.path.dirname(MODULE_UTILS)
LAYERS = [
    {"common"},
    {"storage", "consistency"},
    {"evidence"},  # the hash-chained ledger and its shipper: the runner (core) records into it
    {"core"},
    {"snapshot", "drill"},
    {"tiers"},
    {"runtime", "audit"},  # audit: reads what every tier left on a host (status, locks, tapes, VMs)
    {"converge"},
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}
RESTIC_PACKAGE = "storage"


def python_files(root: str) -> list[str]:
    found = []
    for folder, _dirs, names in os.walk(root):
        found += [os.path.join(folder, name) for name in names if name.endswith(".py")]
    return sorted(found)


def package_of(path: str) -> str:
    return os.path.relpath(path, MODULE_UTILS).split(os.sep)[0]


def imported_packages(path: str) -> set[str]:
    """The module_utils packages a file imports, relative or absolute."""
    module = os.path.relpath(path, MODULE_UTILS)[:-3].split(os.sep)
    packages = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module[:len(module) - node.level]
                target = base + (node.module.split(".") if node.module else [])
                if not target:  # "from .. import x": x is a package of module_utils
                    packages.update(alias.name for alias in node.names)
                else:
                    packages.add(target[0])
            elif node.module and ".module_utils." in node.module:
                packages.add(node.module.split(".module_utils.")[1].split(".")[0])
    return packages


def test_every_package_has_a_layer():
    packages = {name for name in os.listdir(MODULE_UTILS) if os.path.isdir(os.path.join(MODULE_UTILS, name))
                and not name.startswith("__")}
    assert packages <= set(RANK), "give %s a layer in this test" % ", ".join(sorted(packages - set(RANK)))


@pytest.mark.parametrize("path", python_files(MODULE_UTILS), ids=lambda p: os.path.relpath(p, MODULE_UTILS))
def test_imports_go_down_only(path):
    own = package_of(path)
    upward = sorted(p for p in imported_packages(path) - {own} if RANK.get(p, -1) >= RANK[own])
    assert not upward, "%s (layer %d) imports %s: move the shared part down or invert the call" % (
        own, RANK[own], ", ".join("%s (layer %d)" % (p, RANK[p]) for p in upward))


def restic_calls(path: str) -> list[str]:
    """Places that start restic or import its implementation: argv lists beginning with "restic",
    RESTIC_* environment variables, imports of storage.restic."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.split(" ")[0] == "restic":
                found.append((node.lineno, "an argv starting with restic"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("RESTIC_"):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1] == "restic" \
                and node.module.split(".")[-2:-1] in (["storage"], []):
            found.append((node.lineno, "imports storage.restic"))
    return ["line %d: %s" % item for item in sorted(found)]


OUTSIDE_STORAGE = [path for path in python_files(PLUGINS)
                   if not os.path.relpath(path, MODULE_UTILS).startswith(RESTIC_PACKAGE + os.sep)]


@pytest.mark.parametrize("path", OUTSIDE_STORAGE, ids=lambda p: os.path.relpath(p, PLUGINS))
def test_restic_runs_from_the_storage_package_only(path):
    assert restic_calls(path) == [], "use storage.factory.open_repository and the Repository interface"


def test_the_restic_scanner_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('argv = ["restic", "-r", url, "snapshots"]\nenv = {"RESTIC_PASSWORD": p}\n'
                      "from ..storage.restic import ResticRepository\n")
    assert [line.split(":")[0] for line in restic_calls(str(sample))] == ["line 1", "line 2", "line 3"]


HOST_PATHS = ("/etc/restorable", "etc/restorable", "/var/lib/restorable", "var/lib/restorable",
              "/usr/local/lib/restorable", "usr/local/lib/restorable")
LAYOUT = os.path.join(MODULE_UTILS, "core", "layout.py")


def host_path_literals(path: str) -> list[str]:
    """String constants that are (or begin with) a host path of the collection: the paths
    HostLayout defines. Prose that mentions one (documentation, comments) does not count."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    return ["line %d: %s" % (node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(HOST_PATHS)]


@pytest.mark.parametrize("path", [p for p in python_files(PLUGINS) if p != LAYOUT], ids=lambda p: os.path.relpath(p, PLUGINS))
def test_host_paths_are_defined_in_the_layout_only(path):
    assert host_path_literals(path) == [], "use core.layout (HostLayout, DatasetFiles)"


def test_the_host_path_scanner_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('STATUS = "/var/lib/restorable"\nCONFIG = os.path.join(root, "etc/restorable")\n'
                      '"""Writes below /var/lib/restorable."""\n')
    assert [line.split(":")[0] for line in host_path_literals(str(sample))] == ["line 1", "line 2"]
