# -*- coding: utf-8 -*-
"""DrillPlanner: which drills run where, with which repository view, secrets and schedule."""
from __future__ import annotations

import json

import pytest

from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import DrillPlanner
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import REGISTRY, Tiers

# Every tier of the schema has a planner; these tests take a registry without the array tier's to
# show what becomes of a dataset no planner runs (the vm dataset below).
WITHOUT_ARRAY = Tiers({tier: planner for tier, planner in REGISTRY.items() if tier != "array"})

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-of-web1\n-----END OPENSSH PRIVATE KEY-----\n"


def fleet() -> dict:
    targets = {
        "offsite": {"type": "sftp", "host": "backup.example", "user": "restic", "path": "/srv/restic",
                    "password": "repo-secret", "ssh_private_key": KEY, "known_hosts": "backup.example ssh-ed25519 AAAA"},
        "cloud": {"type": "s3", "endpoint": "http://127.0.0.1:9000", "bucket": "b", "prefix": "p", "password": "s3-secret",
                  "access_key_id": "AKIA-WEB1", "secret_access_key": "s3-key-of-web1"},
    }
    datasets = {
        "www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["offsite", "cloud"], "schedule": "hourly",
                "rto": "15m", "rpo": "2h", "retention": {"last": 3}, "consistency": "db",
                "check": {"read_data_subset": "10%"}},
        "bucket": {"tier": "agent", "paths": ["/srv/bucket"], "targets": ["cloud"], "schedule": "hourly",
                   "retention": {"last": 3}},
        "vm": {"tier": "array", "paths": ["/var/lib/vm"]},
    }
    common = {"restorable_targets": targets, "restorable_schedules": {"hourly": {"calendar": "hourly"}},
              "restorable_consistency_profiles": {"db": {"type": "postgresql", "pre": [{"argv": ["true"]}],
                                                         "postgresql": {"mode": "dump", "port": 5432, "password": "pg-secret"}}}}
    return {
        "web1": dict(common, restorable_datasets=datasets, restorable_drills={
            "weekly": {"datasets": ["www", "vm"], "drill_host": "drill1", "calendar": "Sun *-*-* 06:00:00",
                       "sample": {"mode": "files", "files": 5}, "sandbox": "/var/tmp/drills", "rto": "5m",
                       "commands": [{"argv": ["test", "-d", "{sandbox}"]}]},
            "local": {"datasets": ["bucket"], "calendar": "daily"},
            "adhoc": {"datasets": ["bucket"], "drill_host": "drill1"}}),
        "drill1": dict(common, restorable_datasets={"own": {"tier": "agent", "paths": ["/srv/own"], "targets": ["cloud"],
                                                            "schedule": "hourly", "retention": {"last": 1}}}),
    }


def planner() -> DrillPlanner:
    return DrillPlanner(fleet(), {"web1": "/hosts/web1", "drill1": "/hosts/drill1"}, WITHOUT_ARRAY)


def test_drills_run_on_their_drill_host_or_on_their_source():
    on_drill1 = planner().drills_on("drill1")
    assert [(e["params"]["source_host"], e["params"]["drill"], e["params"]["dataset"]) for e in on_drill1] == [
        ("web1", "adhoc", "bucket"), ("web1", "weekly", "www")]  # vm is of a tier no planner runs here (array)
    assert [e["params"]["drill"] for e in planner().drills_on("web1")] == ["local"]
    assert planner().drills_on("nobody") == []


def test_cross_host_repository_uses_copies_of_the_source_credentials_on_the_drill_host():
    entry = [e for e in planner().drills_on("drill1") if e["params"]["drill"] == "weekly"][0]
    stem = "/hosts/drill1/etc/restorable/secrets/drills/web1-offsite"
    repository = entry["repository"]
    assert repository["url"] == "sftp:restic@backup.example:/srv/restic"
    assert repository["password_file"] == stem + ".password"
    (option,) = repository["options"]
    assert "-i %s.key" % stem in option and "UserKnownHostsFile=%s.known_hosts" % stem in option
    assert "/hosts/web1" not in option, "the drill host has no access to the source host's files"
    assert {s["path"]: s["content"] for s in entry["secrets"]} == {
        stem + ".password": "repo-secret", stem + ".key": KEY, stem + ".known_hosts": "backup.example ssh-ed25519 AAAA"}
    assert entry["status_file"] is None


def test_cross_host_s3_drill_reads_the_source_prefix_with_the_source_keys():
    entry = [e for e in planner().drills_on("drill1") if e["params"]["drill"] == "adhoc"][0]
    assert entry["repository"]["url"] == "s3:http://127.0.0.1:9000/b/p/web1"
    env_file = "/hosts/drill1/etc/restorable/secrets/drills/web1-cloud.env"
    assert {s["path"]: s["content"] for s in entry["secrets"]}[env_file] == (
        "AWS_ACCESS_KEY_ID=AKIA-WEB1\nAWS_SECRET_ACCESS_KEY=s3-key-of-web1\n")


def test_drill_on_its_source_uses_the_agent_files_and_the_backup_status():
    (entry,) = planner().drills_on("web1")
    assert entry["repository"]["password_file"] == "/hosts/web1/etc/restorable/secrets/cloud.password"
    assert entry["repository"]["env_file"] == "/hosts/web1/etc/restorable/secrets/cloud.env"
    assert entry["secrets"] == []
    assert entry["status_file"] == "/hosts/web1/var/lib/restorable/bucket.json"


def test_drill_parameters_follow_the_policy_and_defaults():
    weekly = [e for e in planner().drills_on("drill1") if e["params"]["drill"] == "weekly"][0]["params"]
    assert weekly["sample"] == {"mode": "files", "files": 5}
    assert weekly["recovery_point"] == {"choice": "latest"}
    assert weekly["checks"] == ["integrity", "freshness", "content", "custom"]
    assert (weekly["rto"], weekly["rpo"]) == ("5m", "2h")  # the drill's, else the dataset's
    assert weekly["read_data_subset"] == "10%"
    assert weekly["sandbox"] == "/var/tmp/drills"
    # Both hosts' protected paths, every tier.
    assert weekly["protected_paths"] == ["/srv/www", "/srv/bucket", "/var/lib/vm", "/srv/own"]
    assert weekly["application"] == {"type": "postgresql", "sqlite": {}, "postgresql": {"mode": "dump"}, "mariadb": {}}
    local = planner().drills_on("web1")[0]["params"]
    assert local["sandbox"] == "/var/tmp/restorable-drill" and local["sample"] == {"mode": "all"}
    assert "rto" not in local and local["application"] == {"type": "none", "sqlite": {}, "postgresql": {}, "mariadb": {}}


def test_schedule_holds_secrets_for_every_drill_and_jobs_for_calendars_only():
    plan = planner().schedule("drill1")
    assert plan["drills"] == 2
    (job,) = plan["jobs"]
    assert (job["name"], job["calendar"]) == ("web1-weekly", "Sun *-*-* 06:00:00")
    config = job["config"]
    assert config["evidence_dir"] == "/hosts/drill1/var/lib/restorable/drills"
    assert [d["dataset"] for d in config["datasets"]] == ["www"]
    text = json.dumps(config)
    for secret in ("repo-secret", "s3-key-of-web1", "key-of-web1", "pg-secret"):
        assert secret not in text, "the configuration holds secrets by path only"
    assert config["datasets"][0]["repository"]["password_file"].endswith("/secrets/drills/web1-offsite.password")
    # The unscheduled adhoc drill still gets its credentials (the playbook runs it on demand).
    assert sorted(s["path"].rsplit("/", 1)[1] for s in plan["secrets"]) == [
        "web1-cloud.env", "web1-cloud.password", "web1-offsite.key", "web1-offsite.known_hosts", "web1-offsite.password"]


def test_drills_of_a_source_carry_no_secret():
    entries = planner().drills_of("web1")
    assert [(e["params"]["drill"], e["params"]["drill_host"]) for e in entries] == [
        ("adhoc", "drill1"), ("local", "web1"), ("weekly", "drill1")]
    text = json.dumps(entries)
    for secret in ("repo-secret", "s3-secret", "s3-key-of-web1", "key-of-web1", "pg-secret"):
        assert secret not in text
    weekly = entries[2]
    assert weekly["target"] == "offsite" and "/secrets/drills/web1-offsite.key" in weekly["repository"]["options"][0]


def test_unknown_drill_host_is_an_error():
    policies = fleet()
    policies["web1"]["restorable_drills"]["weekly"]["drill_host"] = "ghost"
    with pytest.raises(ValueError, match="ghost"):
        DrillPlanner(policies, {}, WITHOUT_ARRAY).drills_of("web1")


def test_fqdn_sources_get_names_cron_reads_and_clashes_are_refused():
    policies = fleet()
    policies["web1.example.com"] = policies.pop("web1")
    (job,) = DrillPlanner(policies, {}, WITHOUT_ARRAY).schedule("drill1")["jobs"]
    assert job["name"] == "web1_example_com-weekly"
    assert sorted(job) == ["calendar", "config", "name"], "exactly the job module's drill options"
    policies["web1_example.com"] = dict(policies["web1.example.com"])
    with pytest.raises(ValueError, match="share the job name web1_example_com-weekly"):
        DrillPlanner(policies, {}, WITHOUT_ARRAY).schedule("drill1")
