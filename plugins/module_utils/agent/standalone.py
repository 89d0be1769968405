# -*- coding: utf-8 -*-
# Private to restorable.backup: the agent as a standalone program on the host.
# The job module copies this package, ../common, ../consistency and ../drill
# to <install_dir>/restorable_agent/; timers run `python3 -m restorable_agent run --config FILE`
# (a backup) or `... drill --config FILE` (a scheduled restore drill). Sources are read through the
# module loaders, so this also works from inside an AnsiballZ zip. Every module is imported
# here explicitly: that is also what makes Ansible ship all of them with a module.
from __future__ import annotations

import os
import sys
from typing import Any

from ..common import durations, fileio, locks, process
from ..common.fileio import atomic_write
from ..consistency import base, custom, fsfreeze, mariadb, postgresql, sqlite, watchdog
from ..drill import cli as drill_cli  # imports every other drill module the job needs
from . import cli, config, gate, hooks, restic, runner, status, units
from .units import DEFAULT_INSTALL_DIR, PACKAGE_NAME

_TOP_INIT = """# -*- coding: utf-8 -*-
# restorable.backup agent, installed by Ansible (restorable.backup collection); changes are overwritten.
"""
_TOP_MAIN = """# -*- coding: utf-8 -*-
# python3 -m restorable_agent run --config /etc/restorable/DATASET.json
# python3 -m restorable_agent drill --config /etc/restorable/drills/NAME.json
from .agent.cli import main

raise SystemExit(main())
"""


def _shipped() -> dict[str, list[Any]]:
    """The modules of the standalone package, by folder (package __init__ first)."""
    agent_package = sys.modules[__name__.rsplit(".", 1)[0]]
    common_package = sys.modules[durations.__name__.rsplit(".", 1)[0]]
    this = sys.modules[__name__]
    drill_package = drill_cli.__name__.rsplit(".", 1)[0]
    return {
        "agent": [agent_package, cli, config, gate, hooks, restic, runner, this, status, units],
        "common": [common_package, durations, fileio, locks, process],
        "consistency": [sys.modules[base.__name__.rsplit(".", 1)[0]], base, custom, fsfreeze, mariadb, postgresql, sqlite,
                        watchdog],
        "drill": [sys.modules[drill_package]] + _members_of(drill_package),
    }


def _members_of(package: str) -> list[Any]:
    """Every loaded module of a package: what the drill modules import comes along by itself."""
    return [module for name, module in sorted(sys.modules.items()) if name.startswith(package + ".") and module is not None]


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
    return source


def standalone_sources() -> dict[str, str]:
    """{path relative to the install dir: source} of the standalone package."""
    files = {PACKAGE_NAME + "/__init__.py": _TOP_INIT, PACKAGE_NAME + "/__main__.py": _TOP_MAIN}
    for folder, modules in _shipped().items():
        package, members = modules[0], modules[1:]
        files["%s/%s/__init__.py" % (PACKAGE_NAME, folder)] = _source(package)
        for module in members:
            files["%s/%s/%s.py" % (PACKAGE_NAME, folder, module.__name__.rsplit(".", 1)[1])] = _source(module)
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
