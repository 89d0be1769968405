# -*- coding: utf-8 -*-
"""What the metrics need from the controller: every tier's job configuration carries the dataset's
RPO (a PostgreSQL base-backup job does not: its cadence is its schedule), and a scheduled drill's
configuration names the drill host's metrics directory and the drill max age."""
from __future__ import annotations

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, JobConfig  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import DrillPlanner  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.agent import AgentTierPlanner  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.array import ArrayTierPlanner  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.cdp import CdpTierPlanner  # noqa: E402

SECRET = "{{ vault_pw }}"
ROOTS = {"db01": "/hosts/db01", "drill01": "/hosts/drill01"}


def policies() -> dict:
    db01 = {
        "restorable_targets": {
            "nas": {"type": "local", "path": "/srv/restic", "password": SECRET},
            "walstore": {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "acme", "prefix": "pg",
                         "access_key_id": "AKIAKEYID", "secret_access_key": "s3-secret-value", "password": SECRET},
            "vtl01": {"type": "tape_library", "driver": "directory", "path": "/srv/vtl", "slots": 24, "drives": 2,
                      "media": {"type": "LTO-8", "capacity_gb": 12000}, "pools": {"daily": {"retention_days": 35}}},
        },
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}, "five": {"calendar": "*:0/5"}},
        "restorable_compliance": {"drill_max_age": "8d"},
        "restorable_datasets": {
            "www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas"], "schedule": "nightly", "rpo": "26h",
                    "retention": {"daily": 7}},
            "logs": {"tier": "agent", "paths": ["/srv/logs"], "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}},
            "files": {"tier": "cdp", "source": {"type": "btrfs", "subvolume": "/srv/files"}, "interval_minutes": 5, "rpo": "15m",
                      "retention": {"thinning": [{"older_than": "1h", "keep_every": "15m"}]}},
            "pg": {"tier": "cdp", "source": {"type": "postgresql", "data_directory": "/var/lib/postgresql/15/main", "port": 5433},
                   "interval_minutes": 1, "wal_archive": "walstore", "base_backup_schedule": "nightly", "rpo": "5m",
                   "retention": {"daily": 7}},
            "vols": {"tier": "array", "volumes": ["/srv/vols"], "provider": "btrfs", "schedule": "five", "rpo": "15m",
                     "retention": {"last": 10}, "export": {"library": "vtl01", "pool": "daily"}},
        },
        "restorable_drills": {"weekly": {"datasets": ["www"], "calendar": "Sun *-*-* 06:00:00", "drill_host": "drill01"}},
    }
    return {"db01": db01, "drill01": {}}


def configs() -> dict[str, JobConfig]:
    fleet = Fleet(policies(), ROOTS)
    jobs = [job for planner in (AgentTierPlanner, CdpTierPlanner, ArrayTierPlanner) for job in planner("db01", fleet).jobs()]
    return {job["name"]: JobConfig.from_dict(job["config"]) for job in jobs}


def test_the_policy_of_these_tests_is_valid():
    report = FleetValidator().validate(policies())
    assert [line for line in report.lines() if "secret given as plain text" not in line] == []


def test_every_tier_s_job_carries_the_dataset_s_rpo():
    rpo = {name: config.rpo_seconds for name, config in configs().items()}
    assert rpo == {"www": 26 * 3600, "logs": None, "files": 900, "pg": 300, "pg-base": None, "vols": 900}
    assert JobConfig.from_dict(configs()["www"].to_dict()).rpo_seconds == 26 * 3600


def test_a_bad_rpo_in_a_job_configuration_names_the_field():
    with pytest.raises(ConfigError, match="job config /etc/restorable/www.json: rpo"):
        JobConfig.from_dict(dict(configs()["www"].to_dict(), rpo="soon"), source="/etc/restorable/www.json")


def test_a_scheduled_drill_names_the_metrics_directory_and_the_max_age():
    schedule = DrillPlanner(policies(), ROOTS).schedule("drill01")
    config = schedule["jobs"][0]["config"]
    assert config["metrics_dir"] == "/hosts/drill01/var/lib/restorable/metrics"
    assert config["max_age_seconds"] == 8 * 86400
