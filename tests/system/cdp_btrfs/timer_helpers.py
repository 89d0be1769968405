# -*- coding: utf-8 -*-
"""Helpers of the CDP timer test (test_cdp_timer.py): the source's btrfs mounted inside the systemd
host's container, a replica sshd on this machine's end of the container's veth link, the CDP job
planned as apply plans it (controller side, in process) and converged with restorable.backup.job
over SSH, and a watch of the job's status file.

The container (tests/system/fleet/nspawn.py) is booted once per session without extra binds, so the
filesystem is mounted into its mount namespace afterwards (nsenter, see ContainerMount) rather than
bound at boot: the fixture and every other test on that container stay as they are.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import collection_path  # noqa: F401  pylint: disable=unused-import  # the checkout's collection

from ansible_collections.restorable.backup.plugins.module_utils.converge.replica_access import (
    DEFAULT_PYTHON, ReplicaEntry)
from ansible_collections.restorable.backup.plugins.plugin_utils.replica_keys import ReplicaKeys
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.cdp import CdpTierPlanner
from fleet.inventory import REPO, ansible_bin, ansible_env, write_inventory
from fleet.nspawn import SystemdHost
from fleet.sshd import SshClient, SshdHost, descendants, free_port, port_is_free

REPLICA_HOST = "replica01"  # the replica's inventory name in the policy; reached by its address
STATUS_DIR = "var/lib/restorable"  # below the container's root: the planner's status_dir for root "/"
# The agent role's task, with the jobs and secrets the planner gives (scheduler auto: systemd there).
CONVERGE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Schedule the CDP jobs as roles/agent does
      restorable.backup.job:
        jobs: "{{ cdp_jobs }}"
        secrets: "{{ cdp_secrets }}"
        root: /
"""


def container_init(host: SystemdHost) -> int:
    """The container's PID 1 (its systemd) as this machine numbers it: the descendant of nspawn
    whose innermost PID is 1."""
    assert host.pid is not None, "the systemd host is not running"
    for pid in descendants(host.pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
        if len(nspid) > 1 and nspid[-1] == "1":
            return pid
    raise RuntimeError(f"no container init below nspawn (PID {host.pid})")


def _nsenter(pid: int, script: str) -> subprocess.CompletedProcess[str]:
    # The mount namespace only: this machine's root with its capabilities and no device policy of
    # the container, seeing the container's paths.
    return subprocess.run(["nsenter", f"--target={pid}", "--mount", "--", "sh", "-ec", script],
                          capture_output=True, text=True, timeout=60, check=False)


@dataclass
class ContainerMount:
    """A block device's filesystem mounted in the container's mount namespace (nowhere else)."""

    init_pid: int
    device: str
    target: str
    made_node: bool

    @classmethod
    def mount(cls, host: SystemdHost, device: str, target: str) -> ContainerMount:
        rdev = os.stat(device).st_rdev
        init = container_init(host)
        # The container's /dev has no loop devices: a node of the same name, so that the
        # filesystem's device path reads the same inside and out.
        made = _nsenter(init, f"test ! -e {shlex.quote(device)}").returncode == 0
        mount = cls(init, device, target, made)
        dev, where = shlex.quote(device), shlex.quote(target)
        script = (f"mknod {dev} b {os.major(rdev)} {os.minor(rdev)}; " if made else "") + \
            f"mkdir -p {where}; mount {dev} {where}"
        result = _nsenter(init, script)
        if result.returncode != 0:
            mount.close()
            raise RuntimeError(f"mounting {device} on {target} in the container failed: {result.stderr}")
        return mount

    def close(self) -> None:
        where = shlex.quote(self.target)
        for _attempt in range(20):
            if _nsenter(self.init_pid, f"! mountpoint -q {where} || umount {where}").returncode == 0:
                break
            time.sleep(0.25)
        if self.made_node:
            _nsenter(self.init_pid, f"rm -f {shlex.quote(self.device)}")


def start_link_sshd(host: SystemdHost, client: SshClient, base_dir: Path) -> SshdHost:
    """The replica's sshd on this machine's end of the container's veth link (the container reaches
    nothing else); root logs in with the session key until authorize() adds a line."""
    assert host.link is not None, "the systemd host has no link"
    address = host.link.host_address
    port = 22 if port_is_free(address, 22) else free_port(address)
    sshd = SshdHost(name="cdp-timer-replica", address=address, port=port, base_dir=base_dir / "sshd",
                    data_dir=base_dir / "data", client=client)
    sshd.prepare()
    sshd.start()
    return sshd


def authorize(sshd: SshdHost, line: str) -> None:
    """One more line in the sshd's authorized_keys (read at each login)."""
    with open(sshd.base_dir / "authorized_keys", "a", encoding="utf-8") as keys:
        keys.write(line + "\n")


@dataclass
class MinuteJobPlan:
    """What apply would converge: the source's jobs and secrets, the replica's authorized_keys line."""

    jobs: list[dict[str, Any]]
    secrets: list[dict[str, str]]
    authorized_line: str


def replica_policy(address: str, port: int, path: Path) -> dict[str, Any]:
    return {"type": "replica", "host": REPLICA_HOST, "address": address, "port": port, "path": str(path)}


def plan_minute_job(source: str, dataset: str, subvolume: str, replica: dict[str, Any], store: Path,
                    install_dir: Path) -> MinuteJobPlan:
    """A btrfs CDP dataset every minute, replicated: its key pair made as restorable.backup.replica_keys
    makes it, the source's plan and the replica's access entry from the tier's planner (what the
    fleet_plan filter gives the role), the access line as restorable.backup.replica_access writes it."""
    policy = {
        "restorable_controller": {"credential_store": str(store)},
        "restorable_targets": {"replica": replica},
        "restorable_datasets": {dataset: {
            "tier": "cdp", "source": {"type": "btrfs", "subvolume": subvolume}, "interval_minutes": 1,
            "replica": "replica", "retention": {"thinning": [{"older_than": "1h", "keep_every": "15m"}]},
        }},
    }
    ReplicaKeys(str(store)).ensure([(source, dataset)])
    fleet = Fleet(policies={source: policy, REPLICA_HOST: {}})
    plan = CdpTierPlanner(source, fleet).plan()
    [entry] = CdpTierPlanner(REPLICA_HOST, fleet).replica_access()
    line = ReplicaEntry.from_params(entry).authorized_line(str(install_dir), DEFAULT_PYTHON)
    return MinuteJobPlan(plan["jobs"], plan["secrets"], line)


def converge_jobs(host: SystemdHost, workdir: Path, jobs: list[dict[str, Any]],
                  secrets: list[dict[str, str]]) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of CONVERGE on the container: the jobs become its whole set of jobs."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(workdir / "inventory.yml", [host])
    playbook = workdir / "converge.yml"
    playbook.write_text(CONVERGE)
    variables = workdir / "vars.json"
    # The replica's private key is in there.
    variables.touch(mode=0o600)
    variables.write_text(json.dumps({"cdp_jobs": jobs, "cdp_secrets": secrets}))
    argv = [str(ansible_bin("ansible-playbook")), "-i", str(inventory), str(playbook), "-e", f"@{variables}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
                          env=ansible_env(), stdin=subprocess.DEVNULL)


def wait_for_runs(host: SystemdHost, dataset: str, count: int, timeout: float) -> list[dict[str, Any]]:
    """The status documents of the job's next `count` runs, one per finished run, in order; fewer
    when one fails or the time is up. Read from the container's filesystem (atomically replaced)."""
    path = host.fs / STATUS_DIR / f"{dataset}.json"
    runs: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            status = {}
        if status.get("finished"):
            runs.setdefault(status["finished"], status)
        if len(runs) >= count or any(run.get("result") != "success" for run in runs.values()):
            break
        time.sleep(0.5)
    return [runs[finished] for finished in sorted(runs)]


def journal_with(host: SystemdHost, unit: str, lines: list[str], timeout: float = 15.0) -> str:
    """The unit's journal once it holds every one of `lines` (or the time is up): a run logs its
    summary just after it writes its status, and journald takes a moment more."""
    deadline = time.monotonic() + timeout
    while True:
        journal = host.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit], check=False).stdout
        if all(line in journal for line in lines) or time.monotonic() > deadline:
            return journal
        time.sleep(0.5)
