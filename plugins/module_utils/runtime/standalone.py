# -*- coding: utf-8 -*-
# Private to restorable.backup: the engine as a standalone program on the host.
# The job module copies every package the command line needs to
# <install_dir>/restorable_agent/; timers run `python3 -m restorable_agent run --config FILE`
# (a backup) or `... drill --config FILE` (a scheduled restore drill). Sources are read through the
# module loaders, so this also works from inside an AnsiballZ zip. What ships is found, not
# listed: every loaded module of the collection's module_utils that the command line imports
# (through the tier registry), so a new tier or module ships without editing anything here.
from __future__ import annotations

import os
import sys
from typing import Any

from ..common.fileio import atomic_write
from ..core.layout import DEFAULT_INSTALL_DIR, PACKAGE_NAME
# Everything the command line may load, some of it only when a command needs it (drill_cli, the tiers).
from . import cli, drill_cli  # noqa: F401  pylint: disable=unused-import
from .registry import TIERS

_TOP_INIT = """# -*- coding: utf-8 -*-
# restorable.backup agent, installed by Ansible (restorable.backup collection); changes are overwritten.
"""
_TOP_MAIN = """# -*- coding: utf-8 -*-
# python3 -m restorable_agent run --config /etc/restorable/DATASET.json
# python3 -m restorable_agent drill --config /etc/restorable/drills/NAME.json
from .runtime.cli import main

raise SystemExit(main())
"""
# The job module's own convergence code runs inside Ansible only.
_NOT_SHIPPED = ("converge",)


def _root_package() -> str:
    """The dotted name of module_utils, whatever it is called where this runs: the package above
    the command line's, which imports (through the tier registry) all that a host runs."""
    return cli.__name__.rsplit(".", 2)[0]


def _shipped() -> dict[str, Any]:
    """{path below the standalone package without .py: module} of every loaded engine module."""
    root = _root_package()
    shipped = {}
    for name, module in sorted(sys.modules.items()):
        if module is None or not name.startswith(root + "."):
            continue
        relative = name[len(root) + 1:].split(".")
        if relative[0] in _NOT_SHIPPED:
            continue
        is_package = hasattr(module, "__path__")
        shipped["/".join(relative + (["__init__"] if is_package else []))] = module
    return shipped


def _source(module: Any) -> str:
    loader = getattr(module, "__loader__", None)
    source = None
    if loader is not None and hasattr(loader, "get_source"):
        try:
            source = loader.get_source(module.__name__)
        except (ImportError, OSError):
            source = None
    if source is None:
        with open(module.__file__, "r", encoding="utf-8") as handle:
            source = handle.read()
    # Some loaders (ansible-test's) return bytes: compared with the text on disk, every file would differ.
    return source.decode("utf-8") if isinstance(source, bytes) else source


def standalone_sources() -> dict[str, str]:
    """{path relative to the install dir: source} of the standalone package."""
    TIERS.load_all()
    files = {PACKAGE_NAME + "/__init__.py": _TOP_INIT, PACKAGE_NAME + "/__main__.py": _TOP_MAIN}
    for relative, module in _shipped().items():
        files["%s/%s.py" % (PACKAGE_NAME, relative)] = _source(module)
    return files


def install_standalone(install_dir: str = DEFAULT_INSTALL_DIR, check_mode: bool = False) -> list[str]:
    """Write the standalone package under install_dir; the paths that changed (or would)."""
    changed = []
    wanted = standalone_sources()
    for relative, text in sorted(wanted.items()):
        path = os.path.join(install_dir, relative)
        try:
            with open(path, "r", encoding="utf-8") as handle:
                current = handle.read()
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        if current != text:
            changed.append(path)
            if not check_mode:
                atomic_write(path, text, mode=0o644)
    # Modules left over from an older version would shadow nothing but confuse readers.
    root = os.path.join(install_dir, PACKAGE_NAME)
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".py") and os.path.relpath(path, install_dir) not in wanted:
                changed.append(path)
                if not check_mode:
                    os.unlink(path)
    return changed
