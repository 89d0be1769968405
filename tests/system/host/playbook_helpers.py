# -*- coding: utf-8 -*-
"""Helpers of the host tier's playbook tests: the policy of a fleet of two sshd hosts, one of them
(hv1) a hypervisor whose libvirt is a real private libvirtd, its inventories, and the
ansible-playbook and ad-hoc ``ansible`` runs against it.

Nothing is mocked: the playbooks run by FQCN as subprocesses against the sshd hosts, which share
this machine with the libvirtd, so the hosts reach it through its unix socket URI.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from typing import Any

from apply.apply_helpers import PlaybookRun, ansible_playbook, restic, write_yaml_inventory
from fleet.inventory import REPO, ansible_bin, ansible_env
from fleet.sshd import SshdHost, SshFleet

HYPERVISOR = "hv1"
OTHER = "hv2"
DATASET = "vms"
DRILL = "boot"
TARGET = "local"
RESTIC_CACHE = Path("~root/.cache/restic").expanduser()


@dataclass
class HostFleet:
    """The policy of the fleet: hv1 backs up the guest ``guest`` from ``libvirt_uri`` into a local
    repository below its data_dir; hv2 protects a few files of its own (agent tier).

    Paths depend on a variant (``<data_dir>/<variant>/root`` is the agent_root,
    ``<data_dir>/<variant>/repo`` the repository), so fresh hosts sit next to applied ones."""

    fleet: SshFleet
    workdir: Path
    libvirt_uri: str
    guest: str
    password: str = field(default_factory=lambda: "hpw-" + token_hex(12))
    variants: set[str] = field(default_factory=set)

    def host(self, name: str) -> SshdHost:
        return self.fleet[name]

    def root(self, name: str = HYPERVISOR, variant: str = "main") -> Path:
        return self.host(name).data_dir / variant / "root"

    def repo(self, name: str = HYPERVISOR, variant: str = "main") -> Path:
        return self.host(name).data_dir / variant / "repo"

    def config_file(self, job: str, name: str = HYPERVISOR, variant: str = "main") -> Path:
        return self.root(name, variant) / "etc/restorable" / (job + ".json")

    def status_file(self, job: str, name: str = HYPERVISOR, variant: str = "main") -> Path:
        return self.root(name, variant) / "var/lib/restorable" / (job + ".json")

    def config(self, job: str, name: str = HYPERVISOR) -> dict[str, Any]:
        return json.loads(self.config_file(job, name).read_text())

    def status(self, job: str, name: str = HYPERVISOR) -> dict[str, Any]:
        return json.loads(self.status_file(job, name).read_text())

    def files(self, name: str = OTHER) -> Path:
        return self.host(name).data_dir / "files"

    # -- the policy ----------------------------------------------------------------------------

    def group_vars(self, variant: str) -> dict[str, Any]:
        return {
            "variant": variant,
            "agent_root": "{{ fleet_data_dir }}/{{ variant }}/root",
            "agent_scheduler": "systemd",
            "hv_restic_password": self.password,
            "restorable_targets": {TARGET: {
                "type": "local", "path": "{{ fleet_data_dir }}/{{ variant }}/repo",
                "password": "{{ hv_restic_password }}", "description": "A second disk of the host"}},
            "restorable_schedules": {"nightly": {"calendar": "*-*-* 02:30:00"}},
            "restorable_datasets": {},
        }

    def host_dataset(self, **overrides: Any) -> dict[str, Any]:
        return dict({"tier": "host", "vms": {"names": [self.guest]}, "mode": "incremental", "full_every": 5,
                     "targets": [TARGET], "schedule": "nightly", "retention": {"last": 10}}, **overrides)

    def host_vars(self, **dataset: Any) -> dict[str, dict[str, Any]]:
        return {
            HYPERVISOR: {
                "restorable_hypervisor": {"libvirt_uri": self.libvirt_uri},
                "restorable_datasets": {DATASET: self.host_dataset(**dataset)},
                "restorable_drills": {DRILL: {
                    "datasets": [DATASET],
                    "guest_commands": [{"argv": ["/bin/sh", "-c", "test -b /dev/vdb"]}],
                    "sandbox": "{{ fleet_data_dir }}/sandbox",
                    "rto": "30m"}},
            },
            OTHER: {"restorable_datasets": {"files": {
                "tier": "agent", "paths": ["{{ fleet_data_dir }}/files"], "targets": [TARGET],
                "schedule": "nightly", "retention": {"last": 3}}}},
        }

    def inventory(self, name: str, variant: str = "main", host_vars: Mapping[str, Mapping[str, Any]] | None = None,
                  **dataset: Any) -> Path:
        """``<workdir>/<name>/hosts.yml``: the fleet with the policy (``dataset`` overrides fields of
        hv1's host dataset; ``host_vars`` replace a host's variables)."""
        self.variants.add(variant)
        per_host = self.host_vars(**dataset)
        per_host.update({k: dict(v) for k, v in (host_vars or {}).items()})
        return write_yaml_inventory(self.workdir / name / "hosts.yml", {"fleet": list(self.fleet)},
                                    self.group_vars(variant), per_host)

    # -- runs ----------------------------------------------------------------------------------

    def playbook(self, inventory: Path, playbook: str, *args: str) -> PlaybookRun:
        return ansible_playbook(inventory, playbook, *args)

    def adhoc(self, inventory: Path, pattern: str, module: str, args: str, *options: str) -> tuple[PlaybookRun, dict]:
        """``ansible PATTERN -m MODULE -a ARGS``; the run and the module's result on the first
        host the pattern matches (from the tree callback)."""
        tree = Path(tempfile.mkdtemp(prefix="tree-", dir=self.workdir))
        argv = [str(a) for a in (ansible_bin("ansible"), "-i", inventory, pattern, "-m", module, "-a", args, *options)]
        env = ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
                          ANSIBLE_CALLBACK_TREE_DIR=str(tree))
        began = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL)
        run = PlaybookRun(argv, result.returncode, result.stdout, result.stderr, time.monotonic() - began)
        outputs = sorted(tree.iterdir())
        answer = json.loads(outputs[0].read_text()) if outputs else {}
        shutil.rmtree(tree, ignore_errors=True)
        return run, answer

    def forget_restic_caches(self) -> None:
        """Remove root's restic cache of every repository of this fleet (the runner and the
        modules use root's default cache; its directories are named by repository id)."""
        for host in self.fleet:
            for variant in self.variants:
                repo = self.repo(host.name, variant)
                if not (repo / "config").is_file():
                    continue
                with tempfile.NamedTemporaryFile("w", dir=self.workdir, suffix=".password") as password:
                    password.write(self.password + "\n")
                    password.flush()
                    found = restic(str(repo), Path(password.name), "cat", "config", "--json")
                if found.returncode == 0:
                    shutil.rmtree(RESTIC_CACHE / json.loads(found.stdout)["id"], ignore_errors=True)

    def remove_made(self) -> None:
        self.forget_restic_caches()
        for host in self.fleet:
            for made in self.variants | {"files", "sandbox", "restore"}:
                shutil.rmtree(host.data_dir / made, ignore_errors=True)


def recap_line(run: PlaybookRun, host: str) -> dict[str, int]:
    recap = run.recap
    assert host in recap, run.describe()
    return recap[host]


def ledger(evidence: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (evidence / "ledger.jsonl").read_text().splitlines() if line.strip()]


def layers(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["name"]: layer for layer in record.get("layers") or []}
