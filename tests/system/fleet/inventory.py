"""Ansible inventories for fixture hosts, and where the Ansible to run against them lives."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

REPO = Path(__file__).resolve().parents[3]


class InventoryHost(Protocol):
    name: str

    def inventory_vars(self) -> dict[str, Any]: ...


def inventory_data(groups: Mapping[str, Iterable[InventoryHost]],
                   extra_vars: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{group: hosts}`` as a YAML inventory tree; ``extra_vars`` go to ``all``."""
    children: dict[str, Any] = {}
    seen: dict[str, InventoryHost] = {}
    for group, hosts in groups.items():
        members: dict[str, Any] = {}
        for host in hosts:
            if seen.setdefault(host.name, host) is not host:
                raise ValueError(f"two different hosts are named {host.name!r}")
            members[host.name] = host.inventory_vars()
        children[group] = {"hosts": members}
    data: dict[str, Any] = {"all": {"children": children}}
    if extra_vars:
        data["all"]["vars"] = dict(extra_vars)
    return data


def write_inventory(path: Path, groups: Mapping[str, Iterable[InventoryHost]] | Iterable[InventoryHost],
                    extra_vars: Mapping[str, Any] | None = None) -> Path:
    """Write a YAML inventory: every host with ``ansible_host``, ``ansible_port``,
    ``ansible_user``, the session key, ``/usr/bin/python3`` and SSH options. A plain iterable of
    hosts becomes the group ``fleet``. Returns ``path``."""
    if not isinstance(groups, Mapping):
        groups = {"fleet": list(groups)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(inventory_data(groups, extra_vars), sort_keys=False))
    return path


def ansible_bin(name: str = "ansible") -> Path:
    """An Ansible executable: the repository's .venv, else the one beside the running Python,
    else PATH."""
    candidates = [REPO / ".venv/bin" / name,
                  Path(sys.executable).parent / name]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run scripts/bootstrap")
    return Path(found)


def ansible_env(**overrides: str) -> dict[str, str]:
    """Environment for running Ansible against fixture hosts: the repository's ansible.cfg, no
    host key prompts, no retry files."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    env.update(overrides)
    return env
