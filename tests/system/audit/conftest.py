# -*- coding: utf-8 -*-
"""The audited fleet of the audit tests (audit_helpers.py describes it), made once per session."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from audit_helpers import EVIDENCE_BUCKET, UNLOCKED_BUCKET, AuditFleet, policy


@pytest.fixture(scope="session")
def audit_fleet(ssh_fleet_factory, moto_server, tmp_path_factory) -> AuditFleet:
    if shutil.which("restic") is None:
        pytest.skip("restic is not installed")
    fleet = ssh_fleet_factory(3, prefix="audit")
    workdir = tmp_path_factory.mktemp("audit")
    for host in fleet:
        data = Path(host.data_dir) / "audit-data"
        data.mkdir(parents=True, exist_ok=True)
        for index in range(5):
            (data / ("%s-%d.txt" % (host.name, index))).write_text("%s %d\n" % (host.name, index) * 200)
    s3 = moto_server.client()
    s3.create_bucket(Bucket=UNLOCKED_BUCKET)
    s3.put_bucket_versioning(Bucket=UNLOCKED_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    # The evidence bucket serves no dataset, so apply does not provision it: made here, locked.
    s3.create_bucket(Bucket=EVIDENCE_BUCKET, ObjectLockEnabledForBucket=True)
    inventory = fleet.write_inventory(workdir / "inventory.yml", extra_vars=policy(moto_server.endpoint, workdir / "sandbox"))
    audited = AuditFleet(fleet, inventory, workdir)
    for name in ("apply", "backup"):
        run = audited.playbook(name)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return audited
