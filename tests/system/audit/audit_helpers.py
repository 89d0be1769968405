# -*- coding: utf-8 -*-
"""Helpers of the audit tests. The audited fleet: 3 sshd hosts (audit1..3) with real restic backups made by the collection's
apply and backup playbooks into a local repository per host and an S3 bucket with Object Lock
(moto), audit3 the drill host of every host's scheduled drill. Made once per session.

audit3's S3 target declares Object Lock like the others, but its bucket was made by hand without
one (provision: false): the policy promises a lock the storage does not have. (moto refuses to
remove the lock rule of a bucket that holds objects, so the lock is missing from the start.)"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.inventory import ansible_bin, ansible_env
from fleet.sshd import SshFleet

LOCKED_BUCKET = "audit-locked"
EVIDENCE_BUCKET = "audit-evidence"  # the hosts ship their hash-chained status and drill records here
UNLOCKED_BUCKET = "audit-unlocked"  # audit3's bucket, made by hand without Object Lock although the policy declares one


@dataclass
class AuditFleet:
    fleet: SshFleet
    inventory: Path
    workdir: Path

    def playbook(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(self.inventory), "--forks", "10",
                               "restorable.backup.%s" % name, *args], capture_output=True, text=True, check=False,
                              cwd=self.workdir, env=ansible_env(), stdin=subprocess.DEVNULL, timeout=300)

    def root(self, host: str) -> Path:
        return self.fleet[host].data_dir / "audit-root"

    def local_repo(self, host: str) -> Path:
        return self.fleet[host].data_dir / "audit-repository"

    def status_path(self, host: str, job: str) -> Path:
        return self.root(host) / "var/lib/restorable" / (job + ".json")

    def audit(self, report: str, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
        """Run the audit playbook; (the run, the audit document it wrote)."""
        directory = self.workdir / report
        run = self.playbook("audit", "-e", "audit_dir=%s" % directory, *args)
        path = directory / "audit.json"
        assert path.exists(), run.stdout[-4000:] + run.stderr[-2000:]
        return run, json.loads(path.read_text())


def policy(endpoint: str, sandbox: Path) -> dict[str, Any]:
    bucket = "{{ '%s' if inventory_hostname == 'audit3' else '%s' }}" % (UNLOCKED_BUCKET, LOCKED_BUCKET)
    return {
        "agent_root": "{{ fleet_data_dir }}/audit-root",
        "restorable_targets": {
            "disk": {"type": "local", "path": "{{ fleet_data_dir }}/audit-repository", "password": "audit-restic-password"},
            "cloud": {"type": "s3", "endpoint": endpoint, "bucket": bucket, "region": "us-east-1", "versioning": True,
                      "provision": "{{ inventory_hostname != 'audit3' }}",
                      "object_lock": {"mode": "compliance", "days": 1}, "access_key_id": "audit-access-key",
                      "secret_access_key": "audit-secret-key", "password": "audit-restic-password", "offsite": True},
            "evidence": {"type": "s3", "endpoint": endpoint, "bucket": EVIDENCE_BUCKET, "region": "us-east-1", "versioning": True,
                         "object_lock": {"mode": "compliance", "days": 1}, "access_key_id": "audit-access-key",
                         "secret_access_key": "audit-secret-key", "password": "audit-restic-password", "offsite": True},
        },
        "restorable_evidence": {"target": "evidence", "retention_days": 1},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
        "restorable_datasets": {"files": {
            "tier": "agent", "paths": ["{{ fleet_data_dir }}/audit-data"], "targets": ["disk", "cloud"],
            "schedule": "hourly", "rpo": "1h", "rto": "10m", "retention": {"last": 3}}},
        "restorable_drills": {"nightly": {
            "datasets": ["files"], "drill_host": "audit3", "calendar": "daily", "sandbox": str(sandbox),
            "recovery_point": {"choice": "latest"}, "sample": {"mode": "files", "files": 2}}},
        "restorable_compliance": {"drill_max_age": "7d"},
    }


def run_scheduled_drills(fleet: AuditFleet) -> list[subprocess.CompletedProcess]:
    """Each scheduled drill on the drill host, the way its timer starts it (the installed agent)."""
    root = fleet.root("audit3")
    runs = []
    for config in sorted((root / "etc/restorable/drills").glob("*.json")):
        env = dict(os.environ, PYTHONPATH=str(root / "usr/local/lib/restorable"))
        runs.append(subprocess.run(["python3", "-m", "restorable_agent", "drill", "--config", str(config)],
                                   capture_output=True, text=True, check=False, env=env, timeout=120))
    return runs


def age_status(path: Path, seconds: int) -> None:
    """Make a job's points older than they are, as if its backups had stopped that long ago."""
    document = json.loads(path.read_text())

    def older(stamp: str | None) -> str | None:
        if not stamp:
            return stamp
        moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ") - datetime.timedelta(seconds=seconds)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    for part in [document, document.get("last_success") or {}] + list(document.get("history") or []):
        for key in ("started", "finished"):
            if key in part:
                part[key] = older(part[key])
    path.write_text(json.dumps(document))
