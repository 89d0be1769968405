# -*- coding: utf-8 -*-
"""The CDP tier's planner: a job every interval per dataset with the options the host engine reads,
the replica's directory and restricted key on the replica host, WAL archiving and base backups for
PostgreSQL, and drills that restore on the replica or from the WAL archive."""
from __future__ import annotations

import copy
import os

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.converge.units import calendar_to_cron  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.replica_keys import key_path  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.cdp import (  # noqa: E402
    CdpTierPlanner, archive_timeout, interval_calendar)

SECRET = "{{ vault_pw }}"


def fleet_policies(store: str) -> dict:
    controller = {"credential_store": store}
    db01 = {
        "restorable_controller": controller,
        "restorable_targets": {
            "replica01": {"type": "replica", "host": "rep01", "path": "/srv/replicas", "address": "10.0.0.9", "port": 2222},
            "walstore": {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "acme", "prefix": "pg",
                         "access_key_id": "AKIAKEYID", "secret_access_key": "s3-secret-value", "password": SECRET},
            "nas": {"type": "local", "path": "/srv/restic", "password": SECRET},
        },
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
        "restorable_datasets": {
            "files": {"tier": "cdp", "source": {"type": "btrfs", "subvolume": "/srv/files", "snapshot_dir": "/srv/.snap/files"},
                      "interval_minutes": 5, "replica": "replica01", "rpo": "15m",
                      "retention": {"thinning": [{"older_than": "1h", "keep_every": "15m"}], "max_age": "14d"}},
            "pg": {"tier": "cdp", "source": {"type": "postgresql", "data_directory": "/var/lib/postgresql/15/main", "port": 5433},
                   "interval_minutes": 1, "wal_archive": "walstore", "base_backup_schedule": "nightly", "rpo": "5m",
                   "retention": {"daily": 7}},
            "www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}},
        },
        "restorable_drills": {
            "weekly": {"datasets": ["files", "pg", "www"], "calendar": "Sun *-*-* 06:00:00", "rto": "30m"},
        },
    }
    return {"db01": db01, "rep01": {"restorable_controller": controller}}


ROOTS = {"db01": "/hosts/db01", "rep01": "/hosts/rep01"}


@pytest.fixture
def store(tmp_path):
    """A credential store holding the replica key pair of db01's dataset files."""
    path = key_path(str(tmp_path), "db01", "files")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("PRIVATE KEY TEXT\n")
    with open(path + ".pub", "w", encoding="utf-8") as handle:
        handle.write("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB restorable-replica:db01/files\n")
    return str(tmp_path)


def planner(store: str, host: str = "db01") -> CdpTierPlanner:
    return CdpTierPlanner(host, Fleet(fleet_policies(store), ROOTS))


def test_the_policy_of_these_tests_is_valid(store):
    report = FleetValidator().validate(fleet_policies(store))
    # Keys in plain text keep the assertions below readable; the validator only warns about them.
    assert [line for line in report.lines() if "secret given as plain text" not in line] == []


def test_cdp_is_planned():
    assert TIERS.supports("cdp")


def test_btrfs_job_runs_every_interval_with_the_options_the_host_reads(store):
    job = next(j for j in planner(store).jobs() if j["name"] == "files")
    assert job["calendar"] == "*-*-* *:00/5:00" and calendar_to_cron(job["calendar"]) == "0-59/5 * * * *"
    config = JobConfig.from_dict(job["config"])
    assert (config.tier, config.repository, config.password_file) == ("cdp", "", "")
    options = config.options
    assert options["source"] == {"type": "btrfs", "subvolume": "/srv/files", "snapshot_dir": "/srv/.snap/files"}
    assert options["thinning"] == [{"older_than": 3600, "keep_every": 900}]
    assert (options["max_age"], options["rpo"], options["interval_minutes"]) == (14 * 86400, 900, 5)
    replica = options["replica"]
    assert replica["path"] == "/srv/replicas/db01/files"  # the source's own directory on the replica
    assert (replica["host"], replica["port"], replica["user"], replica["full_resend"]) == ("10.0.0.9", 2222, "root", False)
    assert replica["identity_file"] == "/hosts/db01/etc/restorable/secrets/replica-files.key"
    # No host key in the policy: the first one seen is pinned in the dataset's own known_hosts.
    assert replica["ssh_options"] == ["-o", "StrictHostKeyChecking=accept-new", "-o", "KexAlgorithms=curve25519-sha256"]


def test_the_source_gets_the_private_key_and_the_replica_the_restricted_public_one(store):
    secrets = {s["path"]: s["content"] for s in planner(store).secrets()}
    assert secrets["/hosts/db01/etc/restorable/secrets/replica-files.key"] == "PRIVATE KEY TEXT\n"
    access = planner(store, "rep01").plan()["replica_access"]
    assert access == [{"source": "db01", "dataset": "files", "path": "/srv/replicas/db01/files",
                       "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB restorable-replica:db01/files"}]
    assert planner(store).plan()["replica_access"] == []


def test_without_a_key_yet_nothing_is_granted_and_no_key_is_placed(tmp_path):
    assert planner(str(tmp_path), "rep01").plan()["replica_access"] == []
    assert not [s for s in planner(str(tmp_path)).secrets() if s["path"].endswith("replica-files.key")]


def test_postgresql_points_and_base_backups_share_the_wal_archive_target(store):
    jobs = {j["name"]: j for j in planner(store).jobs()}
    points, base = JobConfig.from_dict(jobs["pg"]["config"]), JobConfig.from_dict(jobs["pg-base"]["config"])
    assert jobs["pg"]["calendar"] == "*-*-* *:00/1:00" and jobs["pg-base"]["calendar"] == "*-*-* 01:00:00"
    assert points.repository == base.repository == "s3:https://s3.example.org/acme/pg/db01"
    assert (points.options["action"], base.options["action"]) == ("points", "base_backup")
    assert "dataset:pg" in base.tags and base.retention["daily"] == 7
    store_spec = points.options["wal_store"]
    assert store_spec == {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "acme", "prefix": "pg/db01/wal/pg",
                          "env_file": "/hosts/db01/etc/restorable/wal/pg.env", "region": "us-east-1"}
    assert points.options["archiver_config"] == "/hosts/db01/etc/restorable/wal/pg.json"


def test_wal_archiving_entries_carry_the_store_keys_for_the_cluster_user_only(store):
    (entry,) = planner(store).plan()["wal_archiving"]
    assert (entry["data_directory"], entry["port"], entry["archive_timeout"]) == ("/var/lib/postgresql/15/main", 5433, 60)
    (env,) = entry["files"]
    assert env["path"] == "/hosts/db01/etc/restorable/wal/pg.env"
    assert env["content"] == "AWS_ACCESS_KEY_ID=AKIAKEYID\nAWS_SECRET_ACCESS_KEY=s3-secret-value\n"
    # The WAL store's keys are not among the root-only secrets: the archiver runs as the cluster's user.
    assert all("s3-secret-value" not in s["content"] for s in planner(store).secrets())


@pytest.mark.parametrize("minutes, calendar", [(1, "*-*-* *:00/1:00"), (59, "*-*-* *:00/59:00"), (60, "hourly"),
                                               (90, "hourly"), (120, "*-*-* 00/2:00:00"), (1440, "daily")])
def test_interval_calendars_fire_at_least_every_interval(minutes, calendar):
    assert interval_calendar(minutes) == calendar
    calendar_to_cron(calendar)  # cron hosts read it too


def test_archive_timeout_is_the_interval_or_half_the_rpo_never_below_a_minute():
    assert archive_timeout({"interval_minutes": 10}) == 600
    assert archive_timeout({"interval_minutes": 10, "rpo": "5m"}) == 150
    assert archive_timeout({"interval_minutes": 1, "rpo": "1m"}) == 60


def test_drills_restore_btrfs_points_on_the_replica_and_postgresql_from_the_archive(store):
    entries = {e["params"]["dataset"]: e for e in planner(store).drills()}
    files = entries["files"]["params"]
    assert (files["drill_host"], files["points_on"], files["point_dir"]) == ("rep01", "replica", "/srv/replicas/db01/files")
    assert files["source_type"] == "btrfs" and "/srv/files" in files["protected_paths"]
    pg = entries["pg"]["params"]
    assert (pg["tier"], pg["source_type"], pg["drill_host"]) == ("cdp", "postgresql", "db01")
    assert "application" in pg["checks"] and pg["rto"] == "30m"
    assert entries["pg"]["repository"]["url"] == "s3:https://s3.example.org/acme/pg/db01"


def test_copies_count_the_replica_and_the_wal_archive(store):
    cdp = planner(store)
    datasets = fleet_policies(store)["db01"]["restorable_datasets"]
    assert [c.media for c in cdp.copies(datasets["files"])] == ["disk"]
    assert [(c.media, c.offsite) for c in cdp.copies(datasets["pg"])] == [("object storage", False)]


def test_the_post_quantum_key_exchange_is_a_choice_of_the_replica_target(store):
    policies = fleet_policies(store)
    policies["db01"]["restorable_targets"]["replica01"]["post_quantum_kex"] = True
    job = next(j for j in CdpTierPlanner("db01", Fleet(policies, ROOTS)).jobs() if j["name"] == "files")
    assert job["config"]["options"]["replica"]["ssh_options"] == ["-o", "StrictHostKeyChecking=accept-new"]


def test_full_resend_opt_in_reaches_the_job(store):
    policies = fleet_policies(store)
    policies["db01"]["restorable_datasets"]["files"]["replica_full_resend"] = True
    fleet = Fleet(copy.deepcopy(policies), ROOTS)
    job = next(j for j in CdpTierPlanner("db01", fleet).jobs() if j["name"] == "files")
    assert job["config"]["options"]["replica"]["full_resend"] is True
