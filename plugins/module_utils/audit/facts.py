# -*- coding: utf-8 -*-
# Private to restorable.backup: the host facts document of the fleet audit (format 1): what this
# host observed, for the controller to judge against the policy. Reads only.
from __future__ import annotations

import datetime
import os
from typing import Any

from ..core.layout import HostLayout
from ..drill.report import HISTORY, LEDGER, key, read_ledger
from .jobs import job_documents, snapshot_groups

FACTS_FORMAT = 1


def ledger_history(path: str, per_key: int = HISTORY) -> list[dict[str, Any]]:
    """The newest records of each (source host, dataset, drill) of a drill ledger, oldest first."""
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in read_ledger(path):
        by_key.setdefault(key(record), []).append(record)
    return [record for _key, records in sorted(by_key.items()) for record in records[-per_key:]]


def collect_host_facts(root: str, host: str, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Everything the audit judges about one host: jobs, snapshot groups, drills, locks, tapes, VMs."""
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    layout = HostLayout(root)
    jobs, configs, problems = job_documents(root)
    locks: dict[str, dict[str, Any]] = {}
    tape: dict[str, dict[str, Any]] = {}
    # Lock, tape and libvirt code is loaded only on hosts whose jobs need it: every host runs this.
    # pylint: disable=import-outside-toplevel
    for name, config in sorted(configs.items()):
        target = jobs[name]["job"]["target"] or name
        if config.repository.startswith("s3:") and target not in locks:
            from .locks import s3_object_lock
            locks[target] = s3_object_lock(config, moment)
        library_config = ((config.options or {}).get("export") or {}).get("library_config")
        if library_config and target not in tape:
            from .locks import tape_library
            tape[target], lock = tape_library(library_config, moment)
            if lock:
                locks[target] = lock
    vms: dict[str, str] = {}
    hypervisor_jobs = [c for c in configs.values() if c.tier == "host"]
    if hypervisor_jobs:
        from .vms import vm_states
        vms, vm_problems = vm_states(hypervisor_jobs)
        problems += vm_problems
    return {
        "format": FACTS_FORMAT, "host": host, "collected": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "jobs": jobs, "snapshot_groups": snapshot_groups(layout.status_dir),
        "drills": ledger_history(os.path.join(layout.evidence_dir, LEDGER)),
        "locks": locks, "tape": tape, "vms": vms, "problems": problems,
    }
