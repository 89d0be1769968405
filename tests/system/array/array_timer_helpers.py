# -*- coding: utf-8 -*-
"""Helpers of the array timer test (test_array_timer.py): an array dataset of two volumes with a
minute schedule, exported to a directory tape library on the same btrfs, planned by the array
tier's planner as apply plans it (controller side, in process) and converged on the systemd host's
container with restorable.backup.tape_library and restorable.backup.job, as roles/agent does.

The container side (the filesystem mounted into the container, the watch of the status file and
the journal) are the CDP timer test's helpers (tests/system/cdp_btrfs/timer_helpers.py).
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import collection_path  # noqa: F401  pylint: disable=unused-import  # the checkout's collection

from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.array import ArrayTierPlanner
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet
from fleet.inventory import REPO, ansible_bin, ansible_env, write_inventory
from fleet.nspawn import SystemdHost

# The agent role's tasks for the array tier: the libraries first, then the jobs exporting to them.
CONVERGE = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Set up the tape libraries as roles/agent does
      restorable.backup.tape_library:
        libraries: "{{ array_libraries }}"
      when: array_libraries | length > 0
    - name: Schedule the array jobs as roles/agent does
      restorable.backup.job:
        jobs: "{{ array_jobs }}"
        secrets: "{{ array_secrets }}"
        root: /
"""


@dataclass
class ArrayPlan:
    """What apply would converge on the host: its array jobs, their secrets and tape libraries."""

    jobs: list[dict[str, Any]]
    secrets: list[dict[str, str]]
    libraries: list[dict[str, Any]]


def minute_array_policy(host: str, dataset: str, volumes: list[str], library: str, library_path: str,
                        capacity_mb: int) -> dict[str, Any]:
    """A minute schedule for a group of `volumes`, each snapshot exported to a directory library
    of small cartridges that runs on the same host."""
    return {
        "restorable_schedules": {"every-minute": {"calendar": "*-*-* *:*:00"}},
        "restorable_targets": {library: {
            "type": "tape_library", "driver": "directory", "host": host, "path": library_path, "slots": 8,
            "drives": 1, "media": {"type": "LTO-8", "capacity_mb": capacity_mb},
            "pools": {"minutely": {"retention_days": 1, "barcode_prefix": "MT"}},
        }},
        "restorable_datasets": {dataset: {
            "tier": "array", "volumes": volumes, "provider": "btrfs", "schedule": "every-minute",
            "retention": {"last": 10}, "export": {"library": library, "pool": "minutely", "chain_length": 7},
        }},
    }


def plan_array(host: str, policy: dict[str, Any]) -> ArrayPlan:
    """The policy validated as apply validates it, then the array tier's plan for the host."""
    report = FleetValidator().validate({host: policy})
    assert not report.lines(), report.lines()
    plan = ArrayTierPlanner(host, Fleet(policies={host: policy})).plan()
    return ArrayPlan(plan["jobs"], plan["secrets"], plan["tape_libraries"])


def converge_array(host: SystemdHost, workdir: Path, plan: ArrayPlan) -> subprocess.CompletedProcess[str]:
    """ansible-playbook of CONVERGE on the container: the plan's jobs become its whole set of jobs."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = write_inventory(workdir / "inventory.yml", [host])
    playbook = workdir / "converge.yml"
    playbook.write_text(CONVERGE)
    variables = workdir / "vars.json"
    variables.touch(mode=0o600)  # secrets would be in there
    variables.write_text(json.dumps({"array_jobs": plan.jobs, "array_secrets": plan.secrets,
                                     "array_libraries": plan.libraries}))
    argv = [str(ansible_bin("ansible-playbook")), "-i", str(inventory), str(playbook), "-e", f"@{variables}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=REPO,
                          env=ansible_env(), stdin=subprocess.DEVNULL)


def outside_view(path: str, inside: str, outside: Path) -> Path:
    """Where this machine sees a path below the container's mount point `inside` (mounted at `outside` here)."""
    return outside / Path(path).relative_to(inside)


def library_config_here(container_config: Path, inside: str, outside: Path, copy: Path) -> Path:
    """A copy of the library's configuration (as the container has it) that points at this
    machine's view of the library's directory: the catalog and cartridges are read from here."""
    config = json.loads(container_config.read_text())
    for key in ("path", "state_dir"):
        config[key] = str(outside_view(config[key], inside, outside))
    copy.write_text(json.dumps(config))
    return copy
