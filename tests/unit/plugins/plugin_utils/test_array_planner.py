# -*- coding: utf-8 -*-
"""The array tier's planner: a job per dataset on its schedule with the options tiers/array reads,
the configuration of each library the host exports to (and an S3 library's credentials), drills
that restore from tape where the library runs, the plan's words and the copies 3-2-1-1-0 counts."""
from __future__ import annotations

import copy
import json

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import DrillPlanner  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.plan import plan_lines  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.array import ArrayTierPlanner, capacity_bytes  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Copy, Fleet  # noqa: E402

SECRET = "{{ vault_pw }}"
ROOTS = {"db01": "/hosts/db01", "drill01": "/hosts/drill01"}


def policies() -> dict:
    db01 = {
        "restorable_targets": {
            "vtl01": {"type": "tape_library", "driver": "directory", "path": "/srv/vtl", "slots": 24, "drives": 2,
                      "media": {"type": "LTO-8", "capacity_gb": 12000}, "vault": {"destination": "ironmountain-fra"},
                      "pools": {"daily": {"retention_days": 35, "barcode_prefix": "DA", "vault": True},
                                "archive": {"retention_days": 3650, "worm": True}}},
            "cloudvtl": {"type": "tape_library", "driver": "s3", "bucket": "acme-vtl", "endpoint": "http://127.0.0.1:9000/",
                         "access_key_id": "AKIATAPE", "secret_access_key": "tape-secret-value", "slots": 8, "drives": 1,
                         "media": {"type": "LTO-9", "capacity_mb": 64}, "pools": {"weekly": {"retention_days": 60}}, "offsite": True},
        },
        "restorable_schedules": {"five": {"calendar": "*:0/5", "jitter": "1m"}, "hourly": {"calendar": "hourly"}},
        "restorable_consistency_profiles": {"pg": {"type": "postgresql", "max_freeze": "30s",
                                                   "postgresql": {"mode": "backup_api", "port": 5432, "password": SECRET}}},
        "restorable_datasets": {
            "pgarr": {"tier": "array", "volumes": ["/srv/pg", "/srv/pgwal"], "provider": "btrfs", "consistency": "pg",
                      "schedule": "five", "rpo": "15m", "rto": "1h",
                      "retention": {"last": 10, "hourly": 24, "daily": 7, "thinning": [{"older_than": "1h", "keep_every": "15m"}],
                                    "max_age": "14d"},
                      "export": {"library": "vtl01", "pool": "daily"}},
            "docs": {"tier": "array", "volumes": ["/srv/docs"], "provider": "btrfs", "schedule": "hourly",
                     "retention": {"hourly": 48}, "export": {"library": "cloudvtl", "pool": "weekly", "every": 24, "chain_length": 2}},
            "local": {"tier": "array", "volumes": ["/srv/scratch"], "provider": "btrfs", "schedule": "hourly",
                      "retention": {"last": 3}},
        },
        "restorable_drills": {
            "weekly": {"datasets": ["pgarr"], "calendar": "Sun *-*-* 06:00:00", "drill_host": "drill01", "rto": "30m"},
            "docs-check": {"datasets": ["docs"], "checks": ["integrity", "content"], "sandbox": "/srv/drills"},
        },
    }
    return {"db01": db01, "drill01": {}}


def planner(host: str = "db01", fleet: dict | None = None) -> ArrayTierPlanner:
    return ArrayTierPlanner(host, Fleet(fleet or policies(), ROOTS))


def jobs() -> dict:
    return {job["name"]: job for job in planner().jobs()}


def test_the_policy_of_these_tests_is_valid():
    report = FleetValidator(tiers=TIERS).validate(policies())
    assert [line for line in report.lines() if "secret given as plain text" not in line] == []


def test_array_is_planned():
    assert TIERS.supports("array") and TIERS.planner("db01", Fleet(policies()), "array").tier == "array"


def test_a_job_per_dataset_on_its_schedule_with_the_options_the_host_reads():
    job = jobs()["pgarr"]
    assert (job["calendar"], job["target"]) == ("*:0/5", "vtl01")
    assert 0 <= job["delay_seconds"] <= 60  # spread over the schedule's jitter
    config = JobConfig.from_dict(job["config"], source="/etc/restorable/pgarr.json")
    assert (config.tier, config.dataset, config.repository, config.paths) == ("array", "pgarr", "", [])
    assert config.options == {
        "volumes": ["/srv/pg", "/srv/pgwal"], "provider": "btrfs", "snapshot_dir": None,
        "retention": {"last": 10, "hourly": 24, "daily": 7, "max_age": 14 * 86400},
        "thinning": [{"older_than": 3600, "keep_every": 900}], "rpo": 900,
        "export": {"library_config": "/hosts/db01/etc/restorable/tape/vtl01.json", "pool": "daily", "every": 1, "chain_length": 7},
    }


def test_the_host_side_reads_the_options():
    options_module = pytest.importorskip(
        "ansible_collections.restorable.backup.plugins.module_utils.tiers.array.options")
    for job in planner().jobs():
        options = options_module.options_from_config(JobConfig.from_dict(job["config"], source="/x/%s.json" % job["name"]))
        assert options.volumes == job["config"]["options"]["volumes"]
        export = job["config"]["options"].get("export")
        assert (options.export.pool, options.export.every, options.export.chain_length) == (
            export["pool"], export["every"], export["chain_length"]) if export else options.export is None


def test_export_every_and_chain_length_as_given():
    assert jobs()["docs"]["config"]["options"]["export"] == {
        "library_config": "/hosts/db01/etc/restorable/tape/cloudvtl.json", "pool": "weekly", "every": 24, "chain_length": 2}
    assert "export" not in jobs()["local"]["config"]["options"] and jobs()["local"]["target"] is None


def test_consistency_is_a_freezing_profile_with_its_password_in_a_file():
    config = jobs()["pgarr"]["config"]
    assert config["consistency"]["type"] == "postgresql" and config["consistency"]["max_freeze"] == "30s"
    assert config["consistency"]["postgresql"] == {"mode": "backup_api", "port": 5432,
                                                   "password_file": "/hosts/db01/etc/restorable/secrets/consistency-pg.password"}
    assert SECRET not in json.dumps(config)
    assert planner().secrets() == [{"path": "/hosts/db01/etc/restorable/secrets/consistency-pg.password", "content": SECRET}]
    assert "consistency" not in jobs()["docs"]["config"]


def test_directory_library_configuration():
    (directory, s3) = sorted(planner().plan()["tape_libraries"], key=lambda entry: entry["name"] != "vtl01")
    assert directory == {"name": "vtl01", "config_path": "/hosts/db01/etc/restorable/tape/vtl01.json", "files": [], "config": {
        "format": 1, "name": "vtl01", "driver": "directory", "path": "/srv/vtl", "state_dir": "/srv/vtl", "slots": 24, "drives": 2,
        "media": {"type": "LTO-8", "capacity_bytes": 12 * 10 ** 12}, "vault": {"destination": "ironmountain-fra"},
        "pools": {"archive": {"retention_days": 3650, "barcode_prefix": "AR", "worm": True, "vault": False},
                  "daily": {"retention_days": 35, "barcode_prefix": "DA", "worm": False, "vault": True}}}}
    assert s3["name"] == "cloudvtl"


def test_s3_library_configuration_and_its_credentials_file():
    (entry,) = [e for e in planner().plan()["tape_libraries"] if e["name"] == "cloudvtl"]
    config = entry["config"]
    env_file = "/hosts/db01/etc/restorable/secrets/tape-cloudvtl.env"
    assert config["state_dir"] == "/hosts/db01/var/lib/restorable/tape/cloudvtl"
    assert config["media"] == {"type": "LTO-9", "capacity_bytes": 64 * 10 ** 6}
    assert config["s3"] == {"endpoint": "http://127.0.0.1:9000", "bucket": "acme-vtl", "region": "us-east-1",
                            "prefix": "cloudvtl/db01", "env_file": env_file, "archive_storage_class": "DEEP_ARCHIVE"}
    assert "path" not in config and "tape-secret-value" not in json.dumps(config)
    assert entry["files"] == [{"path": env_file, "content": "AWS_ACCESS_KEY_ID=AKIATAPE\nAWS_SECRET_ACCESS_KEY=tape-secret-value\n"}]


def test_the_library_reads_the_configuration_the_planner_writes(tmp_path):
    config_module = pytest.importorskip("ansible_collections.restorable.backup.plugins.module_utils.storage.tape.config")
    for entry in planner().plan()["tape_libraries"]:
        parsed = config_module.parse_config(entry["config"], entry["config_path"])
        assert (parsed.name, parsed.capacity_bytes, sorted(parsed.pools)) == (
            entry["name"], entry["config"]["media"]["capacity_bytes"], sorted(entry["config"]["pools"]))


def test_only_libraries_of_enabled_exports_are_converged():
    fleet = policies()
    fleet["db01"]["restorable_datasets"]["docs"]["enabled"] = False
    assert [e["name"] for e in planner(fleet=fleet).plan()["tape_libraries"]] == ["vtl01"]
    assert planner("drill01").plan() == {"jobs": [], "secrets": [], "repositories": [], "tape_libraries": []}


@pytest.mark.parametrize("media, expected", [({"capacity_gb": 1}, 10 ** 9), ({"capacity_mb": 16}, 16 * 10 ** 6)])
def test_capacity_in_powers_of_ten(media, expected):
    assert capacity_bytes(dict(media, type="LTO-8")) == expected


def test_drills_restore_from_tape_where_the_library_runs():
    entries = {e["params"]["drill"]: e for e in planner().drills()}
    weekly = entries["weekly"]
    params = weekly["params"]
    assert (weekly["name"], weekly["calendar"], weekly["target"]) == ("db01-weekly", "Sun *-*-* 06:00:00", "vtl01")
    assert (params["tier"], params["source_host"], params["drill_host"]) == ("array", "db01", "db01")  # not drill01
    assert params["library_config"] == "/hosts/db01/etc/restorable/tape/vtl01.json"
    assert (params["group"], params["volumes"], params["expect_volumes"]) == ("pgarr", ["/srv/pg", "/srv/pgwal"], 2)
    assert (params["point"], params["recall"], params["recovery_point"]) == ("latest", True, {"choice": "latest"})
    assert params["checks"] == ["catalog", "media", "freshness", "content", "application"]
    assert params["profile"]["type"] == "postgresql" and SECRET not in json.dumps(params)
    assert (params["rto"], params["rpo"]) == ("30m", "15m")
    assert params["sandbox"] == "/srv/.restorable-drill"
    assert {"/srv/pg", "/srv/pgwal"} <= set(params["protected_paths"])
    assert weekly["secrets"] == [] and weekly["repository"]["url"] == ""


def test_drill_checks_of_the_policy_become_the_array_layers():
    params = next(e["params"] for e in planner().drills() if e["params"]["drill"] == "docs-check")
    assert params["checks"] == ["catalog", "media", "content"]
    assert params["sandbox"] == "/srv/drills" and params["profile"] == {"type": "none"}
    assert params["library_config"] == "/hosts/db01/etc/restorable/tape/cloudvtl.json"


def test_describe():
    datasets = policies()["db01"]["restorable_datasets"]
    assert planner().describe(datasets["pgarr"]) == (
        "btrfs group snapshot of 2 volumes every 5m, exported to vtl01/daily every snapshot, chains of 7")
    assert planner().describe(datasets["docs"]) == (
        "btrfs group snapshot of 1 volume every 1h, exported to cloudvtl/weekly every 24 snapshots, chains of 2")
    assert planner().describe(datasets["local"]) == "btrfs group snapshot of 1 volume every 1h"


def test_copies_are_the_storage_snapshots_and_the_tape_pool():
    datasets = policies()["db01"]["restorable_datasets"]
    snapshots = Copy("disk", False, False, "array snapshots")
    assert planner().copies(datasets["pgarr"]) == [snapshots, Copy("tape", True, True, "vtl01/daily")]  # vaulted: off-site and offline
    assert planner().copies(datasets["docs"]) == [snapshots, Copy("tape", True, False, "cloudvtl/weekly")]  # the library is off-site
    worm = dict(datasets["pgarr"], export={"library": "vtl01", "pool": "archive"})
    assert planner().copies(worm) == [snapshots, Copy("tape", False, True, "vtl01/archive")]
    assert planner().copies(datasets["local"]) == [snapshots]


def test_3_2_1_1_0_scores_the_array_datasets():
    report = FleetValidator(tiers=TIERS).validate(policies())
    scores = report.compliance["db01"]
    assert scores["pgarr"]["score"] == "5/5"  # production, snapshots, a vaulted tape; drilled weekly
    assert scores["local"]["missing"] == ["3 copies", "2 media kinds", "1 off-site", "1 immutable or offline",
                                          "0 errors (recent drill)"]


def test_plan_lines():
    lines = plan_lines(policies()["db01"], {"pgarr": {"score": "5/5"}}, "db01")
    start = lines.index("dataset pgarr (array tier): btrfs group snapshot of 2 volumes every 5m, exported to vtl01/daily every "
                        "snapshot, chains of 7")
    assert lines[start + 1:start + 8] == [
        "  volumes: /srv/pg, /srv/pgwal (one quiesce window around all)",
        "  copy to vtl01 (tape_library directory library, 24 slots), pool daily: 35 days, vaulted to ironmountain-fra",
        "  when: *:0/5, spread over 1m",
        "  keep on the storage host: last 10, hourly 24, daily 7, max_age 14d, thinning: older than 1h one per 15m",
        "  consistency: profile pg",
        "  objectives: RPO 15m, RTO 1h",
        "  3-2-1-1-0: 5/5",
    ]
    assert "drill weekly: restore pgarr Sun *-*-* 06:00:00 on drill01" in lines
    assert "  pgarr is restored where its library runs (db01), not on drill01" in lines
    assert not [line for line in lines if "validated, not applied" in line]


def test_fleet_plan_carries_the_libraries_and_the_drills_to_the_library_host():
    plans = DrillPlanner(policies(), ROOTS)
    host = plans.host_plan("db01")
    assert [e["name"] for e in host["tiers"]["array"]["tape_libraries"]] == ["cloudvtl", "vtl01"]
    assert [j["name"] for j in host["drills"]["jobs"]] == ["db01-weekly"]  # docs-check has no calendar
    assert host["drills"]["drills"] == 2 and plans.host_plan("drill01")["drills"]["drills"] == 0


def test_disabled_datasets_get_no_job_and_no_drill():
    fleet = copy.deepcopy(policies())
    fleet["db01"]["restorable_datasets"]["pgarr"]["enabled"] = False
    assert "pgarr" not in {j["name"] for j in planner(fleet=fleet).jobs()}
    assert "pgarr" not in {e["params"]["dataset"] for e in planner(fleet=fleet).drills()}
