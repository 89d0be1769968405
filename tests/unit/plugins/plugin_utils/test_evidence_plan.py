# -*- coding: utf-8 -*-
"""restorable_evidence reaches every job and scheduled drill of a host as an `evidence` section
the host code reads, with the bucket's keys in a private env file only."""
from __future__ import annotations

import json

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.evidence.shipper import EvidenceConfig
from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import DrillPlanner

SECRET = "evidence-secret-key-91"


def fleet(evidence: bool = True) -> dict:
    targets = {
        "nas": {"type": "local", "path": "/srv/restic", "password": "repo-secret"},
        "vault": {"type": "s3", "endpoint": "http://127.0.0.1:9000", "bucket": "ev", "region": "eu-west-1", "password": "x",
                  "object_lock": {"mode": "compliance", "days": 30}, "access_key_id": "AKIA-EV", "secret_access_key": SECRET},
    }
    policy = {"restorable_targets": targets, "restorable_schedules": {"hourly": {"calendar": "hourly"}},
              "restorable_datasets": {"www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas", "vault"],
                                              "schedule": "hourly", "retention": {"last": 3}}},
              "restorable_drills": {"daily": {"datasets": ["www"], "calendar": "daily"}}}
    if evidence:
        policy["restorable_evidence"] = {"target": "vault", "retention_days": 400}
    return {"web1": policy}


def test_every_job_carries_evidence_and_the_keys_stay_in_the_env_file():
    plan = DrillPlanner(fleet(), {"web1": "/hosts/web1"}).host_plan("web1")
    jobs = plan["tiers"]["agent"]["jobs"]
    assert [j["name"] for j in jobs] == ["www", "www-vault"]
    for job in jobs:
        section = job["config"]["evidence"]
        assert section == {"ledger": "/hosts/web1/var/lib/restorable/evidence/ledger.jsonl", "endpoint": "http://127.0.0.1:9000",
                           "bucket": "ev", "region": "eu-west-1", "prefix": "evidence", "retention_days": 400,
                           "env_file": "/hosts/web1/etc/restorable/secrets/evidence.env", "host": "web1",
                           "job": {"tier": "agent", "dataset": "www", "target": job["target"]}}
        assert JobConfig.from_dict(job["config"]).evidence == EvidenceConfig.from_dict(section)
        assert SECRET not in json.dumps(job)
    secrets = {s["path"]: s["content"] for s in plan["tiers"]["agent"]["secrets"]}
    assert secrets["/hosts/web1/etc/restorable/secrets/evidence.env"] == "AWS_ACCESS_KEY_ID=AKIA-EV\nAWS_SECRET_ACCESS_KEY=%s\n" % SECRET
    drills = plan["drills"]
    assert [j["config"]["evidence"]["env_file"] for j in drills["jobs"]] == ["/hosts/web1/etc/restorable/secrets/drills/evidence.env"]
    assert "/hosts/web1/etc/restorable/secrets/drills/evidence.env" in [s["path"] for s in drills["secrets"]]
    assert SECRET not in json.dumps(drills["jobs"])


def test_without_restorable_evidence_nothing_changes():
    plan = DrillPlanner(fleet(False), {"web1": "/"}).host_plan("web1")
    assert all("evidence" not in j["config"] for j in plan["tiers"]["agent"]["jobs"] + plan["drills"]["jobs"])
    assert not any(s["path"].endswith("evidence.env") for s in plan["tiers"]["agent"]["secrets"] + plan["drills"]["secrets"])
