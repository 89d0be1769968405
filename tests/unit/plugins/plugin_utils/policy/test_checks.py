# -*- coding: utf-8 -*-
"""Focused tests of policy validation: each semantic check and 3-2-1-1-0 rule both ways, calendar
gaps, durations, problem lines, secrets, and robustness against random values in a valid policy.

A known bug, when one is found, is a strict xfail: it fails until fixed, then starts passing (and
so failing the run) until its marker is removed.
"""
from __future__ import annotations

import copy
import datetime
import random
import zoneinfo

import pytest

pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
fastjsonschema = pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.plugin_utils.policy.calendar_event import (  # noqa: E402
    CalendarError,
    Window,
    largest_gap_minutes,
    parse_calendar,
)
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.compliance import RULES, ComplianceScorer  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.common.durations import format_duration, parse_duration  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.problems import ERROR, WARNING, Problem, format_path  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy import semantic  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.schema import (  # noqa: E402
    SchemaValidator,
    _guard_discriminators,
    load_schema,
)
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.semantic import PolicyChecks  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402

HOST = "web01"
INVENTORY = frozenset({"web01", "drill01", "replica01", "storage01"})
DAY_MINUTES = 1440
HORIZON_MINUTES = 800 * DAY_MINUTES  # what the calendar module answers for an event that fires once

# Every tier, every kind of target and profile, drills and a site; validates without a single line.
BASELINE = {
    "restorable_site": "branch-lyon",
    "restorable_sites": {
        "branch-lyon": {"timezone": "Europe/Paris", "window": {"start": "20:00", "end": "06:00"}, "bandwidth": {"upload_kbps": 20000}, "concurrency": 2},
    },
    "restorable_targets": {
        "nas": {"type": "sftp", "host": "nas.example.org", "port": 22, "user": "backup", "path": "/srv/restic", "password": "{{ vault_restic_password }}"},
        "usb": {"type": "local", "path": "/mnt/usb/restic", "password": "{{ vault_usb_password }}"},
        "cloud": {
            "type": "s3", "endpoint": "https://s3.example.org", "bucket": "acme-backup", "prefix": "hosts/web01", "region": "eu-central-1",
            "versioning": True, "object_lock": {"mode": "compliance", "days": 30}, "offsite": True,
            "access_key_id": "{{ vault_s3_key_id }}", "secret_access_key": "{{ vault_s3_secret }}", "password": "{{ vault_restic_password }}",
        },
        "mirror": {"type": "replica", "host": "replica01", "path": "/srv/replicas"},
        "vtl01": {
            "type": "tape_library", "driver": "directory", "path": "/srv/vtl", "slots": 24, "drives": 2,
            "media": {"type": "LTO-8", "capacity_gb": 12000},
            "pools": {"daily": {"retention_days": 35, "barcode_prefix": "DA"}, "archive": {"retention_days": 3650, "worm": True, "vault": True}},
            "vault": {"destination": "ironmountain-fra"},
        },
    },
    "restorable_schedules": {
        "nightly": {
            "calendar": "*-*-* 01:00:00", "window": {"start": "01:00", "end": "05:00", "timezone": "Europe/Berlin"}, "jitter": "2h",
            "load_gate": {"max_load_per_cpu": 0.8, "max_deferral": "2h"}, "nice": 10, "ionice": {"class": "best-effort", "level": 7},
        },
        "hourly": {"calendar": "hourly"},
    },
    "restorable_consistency_profiles": {
        "pg": {"type": "postgresql", "on_failure": "fail", "max_freeze": "30s", "postgresql": {"mode": "dump", "port": 5432}},
        "freeze": {"type": "fsfreeze", "fsfreeze": {"mountpoints": ["/srv/db"]}},
        "hooks": {
            "type": "custom",
            "pre": [{"argv": ["/usr/local/bin/app-ctl", "pause"], "timeout": "30s"}],
            "post": [{"argv": ["/usr/local/bin/app-ctl", "resume"]}],
        },
    },
    "restorable_datasets": {
        "www": {
            "tier": "agent", "paths": ["/var/www", "/etc"], "excludes": ["*.tmp"], "targets": ["nas", "cloud"], "schedule": "nightly",
            "rpo": "26h", "retention": {"last": 3, "daily": 7, "weekly": 5, "monthly": 6}, "consistency": "hooks",
            "check": {"every": 7, "read_data_subset": "5%"},
        },
        "db": {
            "tier": "agent", "paths": ["/var/backups/pg"], "targets": ["nas"], "schedule": "nightly", "rpo": "26h",
            "retention": {"daily": 30}, "consistency": "pg",
        },
        "vms": {
            "tier": "host", "vms": {"patterns": ["web-*"]}, "quiesce": True, "proxy_host": "drill01", "mode": "incremental", "full_every": 6,
            "targets": ["usb"], "schedule": "nightly", "retention": {"daily": 14},
        },
        "data": {
            "tier": "cdp", "source": {"type": "btrfs", "subvolume": "/srv/data", "snapshot_dir": "/srv/.snapshots/data"}, "interval_minutes": 5,
            "replica": "mirror", "rpo": "15m", "retention": {"thinning": [{"older_than": "1h", "keep_every": "15m"}], "max_age": "14d"},
        },
        "wal": {
            "tier": "cdp", "source": {"type": "postgresql", "data_directory": "/var/lib/postgresql/15/main", "port": 5432}, "interval_minutes": 5,
            "wal_archive": "nas", "base_backup_schedule": "nightly", "rpo": "15m", "retention": {"max_age": "14d"},
        },
        "vols": {
            "tier": "array", "volumes": ["/srv/db", "/srv/logs"], "provider": "btrfs", "consistency": "freeze", "schedule": "hourly",
            "retention": {"hourly": 24}, "export": {"library": "vtl01", "pool": "daily", "every": 1, "chain_length": 7},
        },
    },
    "restorable_drills": {
        "weekly-www": {
            "datasets": ["www"], "calendar": "Sun *-*-* 06:00:00", "recovery_point": {"choice": "random", "within_days": 30, "seed": 7},
            "sample": {"mode": "files", "files": 200}, "checks": ["integrity", "freshness", "content"], "drill_host": "drill01",
            "sandbox": "/var/tmp/restorable-drill", "rto": "1h", "rpo": "26h",
        },
        "weekly-db": {"datasets": ["db"], "calendar": "Sat *-*-* 06:00:00", "recovery_point": {"choice": "latest"}, "checks": ["integrity", "application"]},
    },
    "restorable_compliance": {"rule_3_2_1_1_0": "report", "drill_max_age": "30d", "plaintext_secrets": "warn"},
}

CHECKS = (
    "check_site", "check_target_hosts", "check_dataset_references", "check_schedules_meet_rpo",
    "check_windows", "check_time_zones", "check_drills", "check_retention_covers_drills", "check_tape_chains",
)


def baseline() -> dict:
    return copy.deepcopy(BASELINE)


def fleet(policy: dict, **others) -> dict:
    hosts = {HOST: policy}
    hosts.update({name: {} for name in sorted(INVENTORY - {HOST})})
    hosts.update(others)
    return hosts


def found(check: str, policy: dict, inventory: frozenset = INVENTORY) -> list:
    """(path, message) pairs one semantic check yields for web01."""
    return [(format_path(p.path), p.message) for p in getattr(PolicyChecks(HOST, policy, inventory), check)()]


def at(policy: dict, path: str):
    """The mapping holding the last key of a dotted path, and that key."""
    keys = path.split(".")
    node = policy
    for key in keys[:-1]:
        node = node[key]
    return node, keys[-1]


def changed(**changes) -> dict:
    """The baseline with dotted paths (dots in names written as '__') set to new values; None deletes."""
    policy = baseline()
    for path, value in changes.items():
        node, key = at(policy, path.replace("__", "."))
        if value is None:
            node.pop(key)
        else:
            node[key] = value
    return policy


@pytest.fixture(scope="module")
def validator():
    return FleetValidator()


def lines(validator, policy: dict, **others) -> list:
    return validator.validate(fleet(policy, **others)).lines()


# --- the baseline ----------------------------------------------------------------------------

def test_baseline_is_clean(validator):
    report = validator.validate(fleet(baseline()))
    assert report.lines() == []
    assert report.hosts_checked == len(INVENTORY)
    assert report.compliance[HOST]["www"] == {"score": "5/5", "met": list(RULES), "missing": [], "gaps": []}


@pytest.mark.parametrize("check", CHECKS)
def test_baseline_passes_every_semantic_check(check):
    assert found(check, baseline()) == []


def test_schema_errors_stop_the_semantic_checks(validator):
    policy = changed(**{"restorable_datasets.www.retention.daily": -1, "restorable_datasets.db.schedule": "weekly"})
    assert lines(validator, policy) == ["web01: restorable_datasets.www.retention.daily: -1 is less than 0"]


def test_only_restorable_variables_are_validated(validator):
    policy = baseline()
    policy.update(ansible_host="192.0.2.10", backup_owner={"team": "ops"}, restorable_site="branch-lyon")
    assert lines(validator, policy) == []


def test_a_value_valid_on_one_host_does_not_hide_an_error_on_another(validator):
    bad = changed(**{"restorable_targets.nas.port": 0})
    hosts = {"web01": baseline(), "web02": bad, "web03": baseline(), "drill01": {}, "replica01": {}, "storage01": {}}
    assert validator.validate(hosts).lines() == ["web02: restorable_targets.nas.port: 0 is less than 1"]


# --- check_site --------------------------------------------------------------------------------

def test_site_unknown():
    assert found("check_site", changed(restorable_site="branch-paris")) == [
        ("restorable_site", "site profile branch-paris is not defined in restorable_sites (known: branch-lyon)")
    ]


def test_site_unknown_without_any_site_profile():
    assert found("check_site", changed(restorable_sites=None)) == [
        ("restorable_site", "site profile branch-lyon is not defined in restorable_sites (known: none defined)")
    ]


def test_site_not_set_is_fine():
    assert found("check_site", changed(restorable_site=None, restorable_sites=None)) == []


# --- check_target_hosts ---------------------------------------------------------------------------

def test_target_hosts_not_in_inventory():
    policy = changed(**{"restorable_targets.vtl01.host": "storage01"})
    assert found("check_target_hosts", policy, INVENTORY - {"replica01", "storage01"}) == [
        ("restorable_targets.mirror.host", "host replica01 is not in the inventory"),
        ("restorable_targets.vtl01.host", "host storage01 is not in the inventory"),
    ]


def test_sftp_server_need_not_be_in_inventory():
    assert "nas.example.org" not in INVENTORY
    assert found("check_target_hosts", baseline()) == []


def test_tape_library_without_host_is_fine():
    assert found("check_target_hosts", baseline(), INVENTORY - {"storage01"}) == []


# --- check_dataset_references -----------------------------------------------------------------------

KNOWN_TARGETS = "(known: cloud, mirror, nas, usb, vtl01)"


@pytest.mark.parametrize("change, path, message", [
    ({"restorable_datasets.www.targets": ["nas", "offsite"]}, "restorable_datasets.www.targets[1]",
     "target offsite is not defined in restorable_targets " + KNOWN_TARGETS),
    ({"restorable_datasets.db.schedule": "weekly"}, "restorable_datasets.db.schedule",
     "schedule weekly is not defined in restorable_schedules (known: hourly, nightly)"),
    ({"restorable_datasets.wal.base_backup_schedule": "weekly"}, "restorable_datasets.wal.base_backup_schedule",
     "schedule weekly is not defined in restorable_schedules (known: hourly, nightly)"),
    ({"restorable_datasets.db.consistency": "mysql"}, "restorable_datasets.db.consistency",
     "consistency profile mysql is not defined in restorable_consistency_profiles (known: freeze, hooks, pg)"),
    ({"restorable_datasets.data.replica": "mirror2"}, "restorable_datasets.data.replica",
     "target mirror2 is not defined in restorable_targets " + KNOWN_TARGETS),
    ({"restorable_datasets.wal.wal_archive": "walstore"}, "restorable_datasets.wal.wal_archive",
     "target walstore is not defined in restorable_targets " + KNOWN_TARGETS),
    ({"restorable_datasets.vms.proxy_host": "proxy01"}, "restorable_datasets.vms.proxy_host", "host proxy01 is not in the inventory"),
    ({"restorable_datasets.vols.export.library": "vtl02"}, "restorable_datasets.vols.export.library",
     "target vtl02 is not defined in restorable_targets " + KNOWN_TARGETS),
    ({"restorable_datasets.vols.export.pool": "weekly"}, "restorable_datasets.vols.export.pool",
     "pool weekly is not defined in restorable_targets.vtl01.pools (known: archive, daily)"),
    ({"restorable_datasets.www.targets": ["mirror"]}, "restorable_datasets.www.targets[0]",
     "target mirror is of type replica, expected local or sftp or s3"),
    ({"restorable_datasets.vms.targets": ["vtl01"]}, "restorable_datasets.vms.targets[0]",
     "target vtl01 is of type tape_library, expected local or sftp or s3"),
    ({"restorable_datasets.data.replica": "cloud"}, "restorable_datasets.data.replica", "target cloud is of type s3, expected replica"),
    ({"restorable_datasets.wal.wal_archive": "mirror"}, "restorable_datasets.wal.wal_archive",
     "target mirror is of type replica, expected local or sftp or s3"),
    ({"restorable_datasets.vols.export.library": "cloud"}, "restorable_datasets.vols.export.library",
     "target cloud is of type s3, expected tape_library"),
    ({"restorable_datasets.data.wal_archive": "nas"}, "restorable_datasets.data.wal_archive",
     "a WAL archive applies to a postgresql source, not btrfs"),
    ({"restorable_datasets.wal.replica": "mirror"}, "restorable_datasets.wal.replica", "btrfs replicas apply to a btrfs source, not postgresql"),
    ({"restorable_datasets.wal.wal_archive": None}, "restorable_datasets.wal", "a postgresql CDP dataset needs wal_archive (where WAL segments go)"),
    ({"restorable_datasets.www.consistency": "freeze"}, "restorable_datasets.www.consistency",
     "profile freeze (fsfreeze) holds the application for a snapshot and needs tier cdp or array, not agent"),
    ({"restorable_datasets.vms.consistency": "freeze"}, "restorable_datasets.vms.consistency",
     "profile freeze (fsfreeze) holds the application for a snapshot and needs tier cdp or array, not host"),
])
def test_dataset_reference_problem(change, path, message):
    assert found("check_dataset_references", changed(**change)) == [(path, message)]


def test_unknown_library_does_not_also_report_its_pool():
    assert [p for p, _value in found("check_dataset_references", changed(**{"restorable_datasets.vols.export": {"library": "vtl02", "pool": "x"}}))] == [
        "restorable_datasets.vols.export.library"
    ]


@pytest.mark.parametrize("kind, mode, tier, problem", [
    ("postgresql", "backup_api", "agent", True),
    ("postgresql", "backup_api", "host", True),
    ("postgresql", "backup_api", "cdp", False),
    ("postgresql", "backup_api", "array", False),
    ("postgresql", "dump", "agent", False),
    ("postgresql", "basebackup", "agent", False),
    ("postgresql", None, "agent", False),
    ("mariadb", "read_lock", "agent", True),
    ("mariadb", "read_lock", "array", False),
    ("mariadb", "mariabackup", "agent", False),
    ("fsfreeze", None, "agent", True),
    ("fsfreeze", None, "array", False),
    ("sqlite", None, "agent", False),
    ("none", None, "agent", False),
])
def test_snapshot_only_profiles_need_a_snapshot_tier(kind, mode, tier, problem):
    policy = baseline()
    profile = {"type": kind}
    if mode:
        profile[kind] = {"mode": mode}
    if kind == "fsfreeze":
        profile["fsfreeze"] = {"mountpoints": ["/srv/db"]}
    if kind == "sqlite":
        profile["sqlite"] = {"databases": ["/var/lib/app/app.db"]}
    policy["restorable_consistency_profiles"]["probe"] = profile
    dataset = {"agent": "www", "host": "vms", "cdp": "data", "array": "vols"}[tier]
    policy["restorable_datasets"][dataset]["consistency"] = "probe"
    result = found("check_dataset_references", policy)
    assert bool(result) == problem, result
    if problem:
        label = kind + (" mode %s" % mode if mode else "")
        assert result == [(
            "restorable_datasets.%s.consistency" % dataset,
            "profile probe (%s) holds the application for a snapshot and needs tier cdp or array, not %s" % (label, tier),
        )]


# --- check_schedules_meet_rpo ---------------------------------------------------------------------------

@pytest.mark.parametrize("rpo, problem", [
    ("26h", None),
    ("2d", None),
    ("25h", "RPO 25h cannot be met: runs can be up to 26h apart (schedule, window and jitter)"),
    ("12h", "RPO 12h cannot be met: runs can be up to 26h apart (schedule, window and jitter)"),
    ("93599s", "RPO 93599s cannot be met: runs can be up to 26h apart (schedule, window and jitter)"),
])
def test_rpo_against_daily_schedule_plus_jitter(rpo, problem):
    result = found("check_schedules_meet_rpo", changed(**{"restorable_datasets.db.rpo": rpo}))
    assert result == ([("restorable_datasets.db.rpo", problem)] if problem else [])


def test_rpo_without_jitter_is_the_calendar_gap():
    policy = changed(**{"restorable_schedules.nightly.jitter": None, "restorable_datasets.db.rpo": "24h", "restorable_datasets.www.rpo": "23h"})
    assert found("check_schedules_meet_rpo", policy) == [
        ("restorable_datasets.www.rpo", "RPO 23h cannot be met: runs can be up to 1d apart (schedule, window and jitter)")
    ]


def test_rpo_counts_only_starts_inside_the_window():
    # hourly starts, but only 01:00..04:00 fall inside 01:00-05:00: 04:00 to 01:00 is 21 hours
    policy = changed(**{"restorable_schedules.nightly.calendar": "*-*-* *:00:00", "restorable_schedules.nightly.jitter": None,
                        "restorable_datasets.db.rpo": "21h", "restorable_datasets.www.rpo": "20h"})
    assert found("check_schedules_meet_rpo", policy) == [
        ("restorable_datasets.www.rpo", "RPO 20h cannot be met: runs can be up to 21h apart (schedule, window and jitter)")
    ]


def test_rpo_of_cdp_is_the_interval():
    assert found("check_schedules_meet_rpo", changed(**{"restorable_datasets.data.interval_minutes": 15})) == []
    assert found("check_schedules_meet_rpo", changed(**{"restorable_datasets.data.interval_minutes": 16})) == [
        ("restorable_datasets.data.rpo", "RPO 15m cannot be met: recovery points can be up to 16m apart (interval_minutes 16)")
    ]


def test_rpo_of_a_disabled_dataset_is_not_checked():
    assert found("check_schedules_meet_rpo", changed(**{"restorable_datasets.db.rpo": "1h", "restorable_datasets.db.enabled": False})) == []


def test_dataset_without_rpo_is_not_checked():
    assert found("check_schedules_meet_rpo", changed(**{"restorable_datasets.db.rpo": None, "restorable_datasets.www.rpo": None})) == []


def test_unreadable_calendar_is_reported_once_at_the_schedule():
    policy = changed(**{"restorable_schedules.nightly.calendar": "every night"})
    assert found("check_schedules_meet_rpo", policy) == [
        ("restorable_schedules.nightly.calendar", "cannot read 'every night': unknown weekday 'every'")
    ]
    assert found("check_windows", policy) == []
    assert found("check_drills", policy) == []


def test_schedule_that_never_runs_in_its_window_cannot_meet_any_rpo():
    policy = changed(**{"restorable_schedules.nightly.calendar": "*-*-* 12:00:00"})
    message = "the schedule never starts a run inside its window, so no RPO can be met"
    assert found("check_schedules_meet_rpo", policy) == [("restorable_datasets.www.rpo", message), ("restorable_datasets.db.rpo", message)]


def test_schedule_without_window_that_never_fires_is_not_blamed_on_a_window():
    policy = changed(**{"restorable_schedules.hourly.calendar": "*-02-30 01:00", "restorable_datasets.vols.rpo": "2h"})
    assert found("check_schedules_meet_rpo", policy) == [
        ("restorable_schedules.hourly.calendar", "calendar '*-02-30 01:00' never fires"),
        ("restorable_datasets.vols.rpo", "the schedule never starts a run, so no RPO can be met"),
    ]


def test_cdp_rpo_message_names_the_interval():
    result = found("check_schedules_meet_rpo", changed(**{"restorable_datasets.data.interval_minutes": 30}))
    assert result == [("restorable_datasets.data.rpo", "RPO 15m cannot be met: recovery points can be up to 30m apart (interval_minutes 30)")]


def test_calendar_in_utc_against_window_in_local_time():
    # 00:00 UTC is 01:00 (winter) or 02:00 (summer) in Berlin: always inside 01:00-05:00 Europe/Berlin
    policy = changed(**{"restorable_schedules.nightly.calendar": "*-*-* 00:00:00 UTC", "restorable_schedules.nightly.jitter": "1h"})
    assert found("check_windows", policy) + found("check_schedules_meet_rpo", policy) == []


def test_calendar_in_a_zone_of_its_own_is_not_compared_with_the_window():
    # 12:00 New York is never inside 01:00-05:00 Berlin, but that is for the host's timer to tell, not wall times
    policy = changed(**{"restorable_schedules.nightly.calendar": "*-*-* 12:00 America/New_York"})
    assert found("check_windows", policy) == []
    assert found("check_schedules_meet_rpo", policy) == []  # daily plus 2h jitter: 26h, which the RPOs allow


def test_calendar_in_the_window_zone_is_compared_with_the_window():
    policy = changed(**{"restorable_schedules.nightly.calendar": "*-*-* 12:00 Europe/Berlin"})
    assert found("check_windows", policy) == [
        ("restorable_schedules.nightly.window", "calendar '*-*-* 12:00 Europe/Berlin' never fires inside the window 01:00-05:00")
    ]


# --- check_windows ------------------------------------------------------------------------------------

def test_jitter_as_long_as_the_window_is_fine():
    assert found("check_windows", changed(**{"restorable_schedules.nightly.jitter": "4h"})) == []
    assert found("check_windows", changed(**{"restorable_schedules.nightly.jitter": "240m"})) == []


def test_jitter_longer_than_the_window():
    assert found("check_windows", changed(**{"restorable_schedules.nightly.jitter": "241m"})) == [(
        "restorable_schedules.nightly.jitter",
        "jitter 241m is longer than the window 01:00-05:00 (4h): spread starts would fall outside it",
    )]


def test_jitter_against_a_window_spanning_midnight():
    policy = changed(**{"restorable_schedules.nightly.window": {"start": "22:00", "end": "02:00"}, "restorable_schedules.nightly.calendar": "22:00",
                        "restorable_schedules.nightly.jitter": "5h"})
    assert found("check_windows", policy) == [(
        "restorable_schedules.nightly.jitter",
        "jitter 5h is longer than the window 22:00-02:00 (4h): spread starts would fall outside it",
    )]


def test_calendar_never_fires_inside_the_window():
    assert found("check_windows", changed(**{"restorable_schedules.nightly.calendar": "*-*-* 05:00:00"})) == [
        ("restorable_schedules.nightly.window", "calendar '*-*-* 05:00:00' never fires inside the window 01:00-05:00")
    ]


def test_calendar_fires_at_the_opening_of_the_window():
    assert found("check_windows", changed(**{"restorable_schedules.nightly.calendar": "*-*-* 01:00"})) == []


def test_schedule_without_window_has_no_window_checks():
    assert found("check_windows", changed(**{"restorable_schedules.hourly.jitter": "30d"})) == []


@pytest.mark.parametrize("start, end, problem", [
    ("01:00", "01:30", True),
    ("01:00", "01:59", True),
    ("01:00", "02:00", False),
    ("23:30", "00:15", True),
    ("23:30", "00:30", False),
    ("06:00", "06:00", False),  # start == end: the whole day
])
def test_site_window_shorter_than_an_hour(start, end, problem):
    result = found("check_windows", changed(**{"restorable_sites.branch-lyon.window": {"start": start, "end": end}}))
    assert result == ([("restorable_sites.branch-lyon.window", "a window shorter than 1h leaves no time for a backup")] if problem else [])


# --- check_drills --------------------------------------------------------------------------------------

def test_drill_host_not_in_inventory():
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.drill_host": "drill02"})) == [
        ("restorable_drills.weekly-www.drill_host", "host drill02 is not in the inventory")
    ]


def test_drill_without_drill_host_restores_on_the_source_host():
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.drill_host": None})) == []


def test_drill_calendar_unreadable():
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.calendar": "Sun 6am"})) == [
        ("restorable_drills.weekly-www.calendar", "cannot read 'Sun 6am': cannot read '6am'")
    ]


def test_drill_of_unknown_dataset():
    assert found("check_drills", changed(**{"restorable_drills.weekly-db.datasets": ["db", "mail"]})) == [
        ("restorable_drills.weekly-db.datasets[1]", "dataset mail is not defined in restorable_datasets (known: data, db, vms, vols, wal, www)")
    ]


def test_drill_rpo():
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.rpo": "1d"})) == [
        ("restorable_drills.weekly-www.rpo", "dataset www: RPO 1d cannot be met: runs can be up to 26h apart (schedule, window and jitter)")
    ]
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.rpo": "2d"})) == []


def test_drill_rpo_lines_name_their_dataset():
    result = found("check_drills", changed(**{"restorable_drills.weekly-www.datasets": ["www", "data"], "restorable_drills.weekly-www.rpo": "1m"}))
    assert result == [
        ("restorable_drills.weekly-www.rpo", "dataset www: RPO 1m cannot be met: runs can be up to 26h apart (schedule, window and jitter)"),
        ("restorable_drills.weekly-www.rpo", "dataset data: RPO 1m cannot be met: recovery points can be up to 5m apart (interval_minutes 5)"),
    ]


def test_drill_calendar_that_never_fires():
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.calendar": "*-04-31 06:00"})) == [
        ("restorable_drills.weekly-www.calendar", "calendar '*-04-31 06:00' never fires")
    ]


def test_drill_calendar_limited_to_a_year():
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.calendar": "2026-*-* 06:00"})) == [
        ("restorable_drills.weekly-www.calendar", "cannot use '2026-*-* 06:00': it fires only in 2026; a schedule must repeat")
    ]


@pytest.mark.parametrize("sandbox, overlapped", [
    ("/var/tmp/restorable-drill", []),
    ("/var/www2", []),
    ("/var/ww", []),
    ("/etcetera/restore", []),
    ("/var/www", [("/var/www", "www")]),
    ("/var/www/", [("/var/www", "www")]),
    ("/var/www/restore", [("/var/www", "www")]),
    ("/var/tmp/../www/restore", [("/var/www", "www")]),
    ("/var", [("/var/www", "www"), ("/var/backups/pg", "db"), ("/var/lib/postgresql/15/main", "wal")]),
    ("/srv/.snapshots", [("/srv/.snapshots/data", "data")]),
    ("/var/lib/postgresql/15/main/restore", [("/var/lib/postgresql/15/main", "wal")]),
    ("/srv/logs/restore", [("/srv/logs", "vols")]),
])
def test_sandbox_never_overlaps_a_protected_path(sandbox, overlapped):
    result = found("check_drills", changed(**{"restorable_drills.weekly-www.sandbox": sandbox}))
    assert result == [
        ("restorable_drills.weekly-www.sandbox", "sandbox %s overlaps %s, protected by dataset %s: a restore must never write there" % (sandbox, path, name))
        for path, name in overlapped
    ]


@pytest.mark.parametrize("sandbox", ["//var/www/restore", "///var/www/restore", "//var//www"])
def test_sandbox_with_a_double_leading_slash(sandbox):
    assert found("check_drills", changed(**{"restorable_drills.weekly-www.sandbox": sandbox})) == [(
        "restorable_drills.weekly-www.sandbox",
        "sandbox %s overlaps /var/www, protected by dataset www: a restore must never write there" % sandbox,
    )]


# --- check_retention_covers_drills --------------------------------------------------------------------------

@pytest.mark.parametrize("retention, problem", [
    ({"daily": 30}, None),
    ({"daily": 29}, "keeps points for about 29d, less than the 30-day look-back of drill weekly-www"),
    ({"daily": 7}, "keeps points for about 1w, less than the 30-day look-back of drill weekly-www"),
    ({"daily": 7, "weekly": 5}, None),
    ({"hourly": 24, "daily": 7, "weekly": 4}, "keeps points for about 4w, less than the 30-day look-back of drill weekly-www"),
    ({"monthly": 1}, None),
    ({"yearly": 1}, None),
    ({"last": 3}, "keeps points for about 3.2d, less than the 30-day look-back of drill weekly-www"),  # 3 runs up to 26h apart
    ({"last": 28}, None),  # 28 x 26h is about 30.3 days
    ({"max_age": "30d"}, None),
    ({"max_age": "4w"}, "keeps points for about 4w, less than the 30-day look-back of drill weekly-www"),
    ({"daily": 0}, None),  # keeps nothing by count: no horizon to compare
])
def test_retention_covers_the_drill_look_back(retention, problem):
    result = found("check_retention_covers_drills", changed(**{"restorable_datasets.www.retention": retention}))
    assert result == ([("restorable_datasets.www.retention", problem)] if problem else [])


def test_drill_of_latest_point_needs_no_retention():
    policy = changed(**{"restorable_datasets.www.retention": {"daily": 1}, "restorable_drills.weekly-www.recovery_point": {"choice": "latest"}})
    assert found("check_retention_covers_drills", policy) == []


def test_retention_check_skips_unknown_datasets():
    assert found("check_retention_covers_drills", changed(**{"restorable_drills.weekly-www.datasets": ["mail"]})) == []


# An agent dataset's max_age is restic's --keep-within: every point younger than it is kept on top
# of the counts, so it can only lengthen what the counts keep.
@pytest.mark.parametrize("retention, problem", [
    ({"daily": 60, "max_age": "7d"}, None),
    ({"daily": 7, "max_age": "60d"}, None),
    ({"daily": 7, "max_age": "7d"}, "keeps points for about 1w, less than the 30-day look-back of drill weekly-www"),
    ({"daily": 0, "max_age": "29d"}, "keeps points for about 29d, less than the 30-day look-back of drill weekly-www"),
])
def test_agent_max_age_keeps_points_besides_the_counts(retention, problem):
    result = found("check_retention_covers_drills", changed(**{"restorable_datasets.www.retention": retention}))
    assert result == ([("restorable_datasets.www.retention", problem)] if problem else [])


# --- check_tape_chains ----------------------------------------------------------------------------------

@pytest.mark.parametrize("export, problem", [
    ({"library": "vtl01", "pool": "daily", "every": 1, "chain_length": 7}, None),
    ({"library": "vtl01", "pool": "daily", "every": 24, "chain_length": 35}, None),  # exactly 35 days
    ({"library": "vtl01", "pool": "daily", "every": 24, "chain_length": 36},
     "a chain spans about 36d, longer than the 35-day retention of pool daily: its full would expire before its last incremental"),
    ({"library": "vtl01", "pool": "daily", "every": 96, "chain_length": 10},
     "a chain spans about 40d, longer than the 35-day retention of pool daily: its full would expire before its last incremental"),
    ({"library": "vtl01", "pool": "archive", "every": 96, "chain_length": 10}, None),
    ({"library": "vtl01", "pool": "daily", "every": 120}, None),  # default chain_length 7: 840 hours is 35 days
    ({"library": "vtl01", "pool": "daily", "every": 121},
     "a chain spans about 35.3d, longer than the 35-day retention of pool daily: its full would expire before its last incremental"),
])
def test_tape_chain_against_pool_retention(export, problem):
    result = found("check_tape_chains", changed(**{"restorable_datasets.vols.export": export}))
    assert result == ([("restorable_datasets.vols.export.chain_length", problem)] if problem else [])


@pytest.mark.parametrize("export", [
    {"library": "vtl02", "pool": "daily", "every": 1000},
    {"library": "nas", "pool": "daily", "every": 1000},
    {"library": "vtl01", "pool": "weekly", "every": 1000},
])
def test_tape_chain_check_skips_broken_references(export):
    assert found("check_tape_chains", changed(**{"restorable_datasets.vols.export": export})) == []


def test_tape_chain_check_skips_unreadable_schedules():
    policy = changed(**{"restorable_schedules.hourly.calendar": "sometimes", "restorable_datasets.vols.export.every": 1000})
    assert found("check_tape_chains", policy) == []


# --- 3-2-1-1-0 -------------------------------------------------------------------------------------------

SECRET = "{{ vault_secret }}"
S3 = {"type": "s3", "bucket": "acme-backup", "access_key_id": SECRET, "secret_access_key": SECRET, "password": SECRET}
TAPE = {"type": "tape_library", "driver": "directory", "path": "/srv/vtl", "slots": 24, "drives": 2, "media": {"type": "LTO-8", "capacity_gb": 12000},
        "pools": {"plain": {"retention_days": 35}, "worm": {"retention_days": 35, "worm": True}, "vault": {"retention_days": 35, "vault": True}}}
SCORING_TARGETS = {
    "disk1": {"type": "local", "path": "/srv/backup", "password": SECRET},
    "disk2": {"type": "sftp", "host": "nas.example.org", "path": "/srv/restic", "password": SECRET},
    "offsite-disk": {"type": "sftp", "host": "dr.example.org", "path": "/srv/restic", "password": SECRET, "offsite": True},
    "s3": dict(S3),
    "s3-locked": dict(S3, object_lock={"mode": "compliance", "days": 30}),
    "s3-locked-offsite": dict(S3, object_lock={"mode": "governance", "days": 7}, offsite=True),
    "mirror": {"type": "replica", "host": "replica01", "path": "/srv/replicas"},
    "vtl": dict(TAPE),
    "vtl-offsite": dict(TAPE, offsite=True),
}
WEEKLY_DRILL = {"check-ds": {"datasets": ["ds"], "calendar": "weekly"}}
AGENT = {"tier": "agent", "paths": ["/srv/app"], "schedule": "nightly", "retention": {"daily": 7}}
ARRAY = {"tier": "array", "volumes": ["/srv/db"], "provider": "btrfs", "schedule": "nightly", "retention": {"daily": 7}}
CDP = {"tier": "cdp", "source": {"type": "btrfs", "subvolume": "/srv/data"}, "interval_minutes": 5, "retention": {"max_age": "7d"}}
C3, C2, C1, CI, C0 = RULES


def scored(dataset: dict, drills: dict | None = None, settings: dict | None = None):
    policy = {
        "restorable_targets": copy.deepcopy(SCORING_TARGETS),
        "restorable_datasets": {"ds": dataset},
        "restorable_drills": drills or {},
        "restorable_compliance": settings or {},
    }
    scorer = ComplianceScorer(HOST, policy)
    return scorer, scorer.scores()


@pytest.mark.parametrize("dataset, drills, met", [
    (dict(AGENT, targets=["disk1"]), None, []),
    (dict(AGENT, targets=["disk1", "disk2"]), None, [C3]),
    (dict(AGENT, targets=["disk1", "s3"]), None, [C3, C2]),
    (dict(AGENT, targets=["offsite-disk"]), None, [C1]),
    (dict(AGENT, targets=["s3"]), None, []),  # versioning or not, only Object Lock makes a copy immutable
    (dict(AGENT, targets=["s3-locked"]), None, [CI]),
    (dict(AGENT, targets=["nope"]), None, []),  # unknown targets are reported elsewhere and count for nothing
    (dict(AGENT, targets=["disk2", "s3-locked-offsite"]), WEEKLY_DRILL, list(RULES)),
    (dict(ARRAY, export={"library": "vtl", "pool": "plain"}), None, []),
    (dict(ARRAY, export={"library": "vtl", "pool": "worm"}), None, [CI]),
    (dict(ARRAY, export={"library": "vtl", "pool": "vault"}), None, [C1, CI]),
    (dict(ARRAY, export={"library": "vtl-offsite", "pool": "plain"}), None, [C1]),
    (dict(ARRAY, targets=["disk1"], export={"library": "vtl", "pool": "plain"}), None, [C3, C2]),
    (dict(ARRAY, export={"library": "vtl", "pool": "missing"}), None, []),
    (dict(ARRAY, export={"library": "disk1", "pool": "plain"}), None, []),
    (dict(CDP, replica="mirror"), None, []),
    (dict(CDP, replica="mirror", targets=["s3-locked"]), None, [C3, C2, CI]),
    (dict(CDP, source={"type": "postgresql", "data_directory": "/var/lib/pg"}, wal_archive="s3-locked", targets=["disk1"]), None, [C3, C2, CI]),
    (dict(AGENT, targets=["disk1"]), WEEKLY_DRILL, [C0]),
])
def test_compliance_rules(dataset, drills, met):
    scorer, scores = scored(dataset, drills)
    assert [s.dataset for s in scores] == ["ds"]
    assert scores[0].met == met
    assert scores[0].missing == [rule for rule in RULES if rule not in met]
    assert scores[0].as_dict() == {"score": "%d/5" % len(met), "met": met, "missing": scores[0].missing, "gaps": scores[0].gaps}
    assert len(scores[0].gaps) == len(scores[0].missing)
    assert scorer.problems(scores) == []  # report is the default mode


@pytest.mark.parametrize("drill, settings, recent", [
    ({"datasets": ["ds"], "calendar": "weekly"}, {}, True),
    ({"datasets": ["ds"], "calendar": "*-*-01,16 03:00"}, {}, True),  # at most 16 days apart
    ({"datasets": ["ds"], "calendar": "monthly"}, {}, True),  # 31 days between 1 January and 1 February: the default
    ({"datasets": ["ds"], "calendar": "monthly"}, {"drill_max_age": "30d"}, False),
    ({"datasets": ["ds"], "calendar": "*-*-1 03:00"}, {"drill_max_age": "31d"}, True),
    ({"datasets": ["ds"], "calendar": "quarterly"}, {}, False),
    ({"datasets": ["ds"], "calendar": "weekly"}, {"drill_max_age": "6d"}, False),
    ({"datasets": ["ds"], "calendar": "Mon..Fri 02:00"}, {"drill_max_age": "3d"}, True),
    ({"datasets": ["ds"]}, {}, False),  # a drill without calendar runs only on demand
    ({"datasets": ["ds"], "calendar": "when idle"}, {}, False),
    ({"datasets": ["other"], "calendar": "daily"}, {}, False),
])
def test_compliance_zero_errors_needs_a_recent_drill(drill, settings, recent):
    _problems, scores = scored(dict(AGENT, targets=["disk1"]), {"d": drill}, settings)
    assert (C0 in scores[0].met) == recent


def test_compliance_ignore_scores_nothing(validator):
    _problems, scores = scored(dict(AGENT, targets=["disk1"]), settings={"rule_3_2_1_1_0": "ignore"})
    assert scores == []
    policy = changed(**{"restorable_compliance.rule_3_2_1_1_0": "ignore"})
    report = validator.validate(fleet(policy))
    assert report.lines() == [] and HOST not in report.compliance


def test_compliance_enforce_reports_each_shortfall():
    scorer, scores = scored(dict(AGENT, targets=["disk1", "s3"]), settings={"rule_3_2_1_1_0": "enforce"})
    assert [(p.host, p.path, p.message, p.severity) for p in scorer.problems(scores)] == [
        (HOST, ("restorable_datasets", "ds"), "3-2-1-1-0 score 2/5: no copy is off-site; no copy is immutable or offline (an S3 target "
         "with object_lock, a WORM or vaulted tape pool); no drill restores this dataset at least every 31 days", ERROR)
    ]


@pytest.mark.parametrize("dataset, settings, gaps", [
    (dict(AGENT, targets=["disk1"]), {}, [
        "only 2 copies (production and disk1), a third is needed",
        "every copy is on disk, a second kind of media (object storage, tape) is needed",
        "no copy is off-site",
        "no copy is immutable or offline (an S3 target with object_lock, a WORM or vaulted tape pool)",
        "no drill restores this dataset at least every 31 days"]),
    (dict(AGENT, targets=[]), {"drill_max_age": "1d"}, [
        "only 1 copy (production), 2 more are needed",
        "no backup copy exists, copies on two kinds of media (disk, object storage, tape) are needed",
        "no copy is off-site",
        "no copy is immutable or offline (an S3 target with object_lock, a WORM or vaulted tape pool)",
        "no drill restores this dataset at least every day"]),
    (dict(ARRAY, export={"library": "vtl", "pool": "vault"}), {"drill_max_age": "36h"}, [
        "only 2 copies (production and vtl/vault), a third is needed",
        "every copy is on tape, a second kind of media (disk, object storage) is needed",
        "no drill restores this dataset at least every 36 h"]),
    (dict(AGENT, targets=["disk1", "disk2"]), {}, [
        "every copy is on disk, a second kind of media (object storage, tape) is needed",
        "no copy is off-site",
        "no copy is immutable or offline (an S3 target with object_lock, a WORM or vaulted tape pool)",
        "no drill restores this dataset at least every 31 days"]),
])
def test_compliance_gaps_in_plain_words(dataset, settings, gaps):
    _scorer, scores = scored(dataset, settings=settings)
    assert scores[0].gaps == gaps


def test_compliance_enforce_is_quiet_when_every_rule_is_met():
    scorer, scores = scored(dict(AGENT, targets=["disk2", "s3-locked-offsite"]), WEEKLY_DRILL, {"rule_3_2_1_1_0": "enforce"})
    assert scores[0].score == "5/5" and scorer.problems(scores) == []


def test_compliance_enforce_through_the_validator(validator):
    policy = changed(**{"restorable_compliance.rule_3_2_1_1_0": "enforce", "restorable_drills.weekly-db": None,
                        "restorable_datasets": {"www": BASELINE["restorable_datasets"]["www"]}})
    assert lines(validator, policy) == []
    policy["restorable_datasets"]["www"]["targets"] = ["nas"]
    assert lines(validator, policy) == [
        "web01: restorable_datasets.www: 3-2-1-1-0 score 1/5: only 2 copies (production and nas), a third is needed; every copy is on "
        "disk, a second kind of media (object storage, tape) is needed; no copy is off-site; no copy is immutable or offline (an S3 "
        "target with object_lock, a WORM or vaulted tape pool)"
    ]


def test_compliance_counts_a_target_once():
    dataset = dict(CDP, source={"type": "postgresql", "data_directory": "/var/lib/pg"}, wal_archive="disk1", targets=["disk1"])
    _problems, scores = scored(dataset)
    assert C3 in scores[0].missing


# --- calendar events ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("expression, minutes", [
    ("daily", DAY_MINUTES),
    ("Daily", DAY_MINUTES),
    (" daily ", DAY_MINUTES),
    ("*-*-* 01:00:00", DAY_MINUTES),
    ("01:00", DAY_MINUTES),
    ("*-*-* 01:00:00 UTC", DAY_MINUTES),
    ("*-*-* 01:00:00 Europe/Berlin", DAY_MINUTES),
    ("*-*-* 01:00:30", DAY_MINUTES),  # seconds are ignored
    ("hourly", 60),
    ("minutely", 1),
    ("*:*", 1),
    ("*:0/15", 15),
    ("*:*/15", 15),
    ("*-*-* *:00,30:00", 30),
    ("*-*-* 00/6:00", 360),
    ("*-*-* 0..23/6:30", 360),
    ("*-*-* 1,13:00", 720),
    ("*-*-* 08..17:00", 15 * 60),  # 17:00 to 08:00
    ("Mon..Fri 02:00", 3 * DAY_MINUTES),  # Friday to Monday
    ("Mon,Tue,Wed,Thu,Fri 02:00", 3 * DAY_MINUTES),
    ("Sat,Sun 03:00", 6 * DAY_MINUTES),  # Sunday to Saturday
    ("Sun *-*-* 06:00:00", 7 * DAY_MINUTES),
    ("weekly", 7 * DAY_MINUTES),
    ("Mon *-*-* 00:00:00", 7 * DAY_MINUTES),
    ("monthly", 31 * DAY_MINUTES),
    ("*-*-01 00:00:00", 31 * DAY_MINUTES),
    ("*-*-1,15 04:00", 17 * DAY_MINUTES),  # the 15th to the 1st of a 31-day month
    ("*-*-31 01:00", 61 * DAY_MINUTES),  # 31 March to 31 May: months without a 31st are skipped
    ("quarterly", 92 * DAY_MINUTES),
    ("semiannually", 184 * DAY_MINUTES),
    ("yearly", 365 * DAY_MINUTES),
    ("annually", 365 * DAY_MINUTES),
    ("*-02-29 01:00", HORIZON_MINUTES),  # one leap day in the two years looked at
    ("*-*-* 01:00 Etc/GMT-1", DAY_MINUTES),
    ("*-*-* 01:00 America/Port-au-Prince", DAY_MINUTES),
])
def test_largest_gap(expression, minutes):
    assert largest_gap_minutes(expression) == minutes


@pytest.mark.parametrize("expression, start, end, minutes", [
    ("*-*-* 01:00", "01:00", "05:00", DAY_MINUTES),
    ("*-*-* *:00", "01:00", "05:00", 21 * 60),  # 04:00 to 01:00; 05:00 is the closing time
    ("*-*-* *:00", "22:00", "06:00", 17 * 60),  # spans midnight: 05:00 to 22:00
    ("*-*-* 1,23:00", "22:00", "06:00", 22 * 60),  # 01:00 to 23:00
    ("*-*-* 23:30", "22:00", "06:00", DAY_MINUTES),
    ("*:0/15", "23:00", "01:00", 22 * 60 + 15),  # 00:45 to 23:00
    ("Mon..Fri *:00", "22:00", "06:00", 2 * DAY_MINUTES + 60),  # Friday 23:00 to Monday 00:00
    ("*-*-* 12:00", "22:00", "06:00", None),
    ("*-*-* 06:00", "22:00", "06:00", None),
    ("*-*-* 22:00", "22:00", "06:00", DAY_MINUTES),
    ("*-*-* 12:00", "06:00", "06:00", DAY_MINUTES),  # start == end: the whole day
])
def test_largest_gap_inside_a_window(expression, start, end, minutes):
    window = Window.from_policy({"start": start, "end": end})
    assert largest_gap_minutes(expression, window) == minutes


def test_a_window_never_shortens_the_gap():
    for expression in ("hourly", "*:0/15", "Mon..Fri 02:00", "*-*-* 1,13:00", "daily"):
        for start in range(0, DAY_MINUTES, 97):
            window = Window(start, (start + 240) % DAY_MINUTES)
            gap = largest_gap_minutes(expression, window)
            assert gap is None or gap >= largest_gap_minutes(expression)


@pytest.mark.parametrize("expression", [
    "*-02-30 01:00",  # 30 February
    "*-04-31 01:00",
])
def test_calendar_that_never_fires(expression):
    assert largest_gap_minutes(expression) is None


@pytest.mark.parametrize("expression, error", [
    ("Fri..Mon 01:00", "range Fri..Mon runs backwards"),
    ("*-*-* 24:00", "24 is outside 0..23"),
    ("*-*-* 12:60", "60 is outside 0..59"),
    ("*-13-* 01:00", "13 is outside 1..12"),
    ("*-*-32 01:00", "32 is outside 1..31"),
    ("*-*-* 1:0/0", "0 is outside 1..59"),
    ("*-*-* 01:", "'' is not a number"),
    ("*-*-* 1h", "cannot read '1h'"),
    ("every day", "unknown weekday 'every'"),
    ("Someday 01:00", "unknown weekday 'Someday'"),
    ("CET 01:00", "unknown weekday 'CET'"),
    ("*-*-* 01:00 02:00 03:00", "too many parts"),
    ("*-*~01 01:00", "cannot read date '*-*~01'"),  # last day of the month: not understood, so not guessed
    ("1-2-3-4 01:00", "cannot read date '1-2-3-4'"),
    ("*-*-* 1:2:3:4", "cannot read time '1:2:3:4'"),
    ("*-*-* \u00b2:00", "'\u00b2' is not a number"),
    ("*-*-* \u0661:00", "'\u0661' is not a number"),  # an Arabic-Indic one
    ("*-*-* 0000000000001:00", "0000000000001 is outside 0..23"),
    ("   ", "the calendar is empty"),
    ("", "the calendar is empty"),
])
def test_unreadable_calendar(expression, error):
    with pytest.raises(CalendarError) as caught:
        largest_gap_minutes(expression)
    assert str(caught.value) == error


def test_blank_calendar_is_unreadable():
    with pytest.raises(CalendarError):
        parse_calendar("   ")


def test_non_ascii_digit_is_a_calendar_error():
    with pytest.raises(CalendarError):
        parse_calendar("*-*-* \u00b2:00")


@pytest.mark.parametrize("expression, years", [
    ("2026-06-01 *:00", "2026"),
    ("2026-*-* 01:00", "2026"),
    ("2025-*-* 01:00", "2025"),
    ("2026-07-01 00:00", "2026"),
    ("2026,2027-*-* 01:00", "2026 and 2027"),
    ("2026..2030-*-* 01:00", "2026..2030"),
    ("2026/2-*-* 01:00", "the years 2026/2"),
    ("Mon 2026-*-* 01:00 UTC", "2026"),
])
def test_event_limited_in_time_is_not_a_schedule(expression, years):
    """An event that stops firing is no schedule, however often it fires until then."""
    with pytest.raises(CalendarError) as caught:
        largest_gap_minutes(expression)
    assert caught.value.verb == "cannot use"
    assert str(caught.value) == "it fires only in %s; a schedule must repeat" % years


def test_unreadable_year_is_unreadable_first():
    with pytest.raises(CalendarError) as caught:
        parse_calendar("20x6-*-* 01:00")
    assert caught.value.verb == "cannot read" and str(caught.value) == "'20x6' is not a number"


@pytest.mark.parametrize("expression, zone", [
    ("*-*-* 01:00", None),
    ("daily", None),
    ("*-*-* 01:00 UTC", "UTC"),
    ("*-*-* 01:00 utc", "utc"),
    ("Mon *-*-* 01:00 Europe/Berlin", "Europe/Berlin"),
    ("*-*-* 01:00 Etc/GMT+5", "Etc/GMT+5"),
])
def test_calendar_time_zone(expression, zone):
    assert parse_calendar(expression).timezone == zone


def test_window_length_and_membership():
    overnight = Window.from_policy({"start": "22:00", "end": "06:00"})
    assert overnight.length_minutes == 8 * 60
    assert [overnight.contains(m) for m in (21 * 60 + 59, 22 * 60, 0, 5 * 60 + 59, 6 * 60)] == [False, True, True, True, False]
    whole_day = Window.from_policy({"start": "06:00", "end": "06:00"})
    assert whole_day.length_minutes == DAY_MINUTES and all(whole_day.contains(m) for m in range(0, DAY_MINUTES, 7))
    assert Window.from_policy({"start": "01:00", "end": "05:00", "timezone": "Europe/Berlin"}) == Window(60, 300)


# --- durations ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("1s", 1), ("30s", 30), ("15m", 900), ("1h", 3600), ("26h", 93600), ("7d", 604800), ("2w", 1209600), ("999999w", 999999 * 604800),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (1, "1s"), (59, "59s"), (60, "1m"), (61, "1m1s"), (90, "1m30s"), (900, "15m"), (3600, "1h"), (3660, "61m"),
    (5400, "90m"), (86400, "1d"), (90000, "25h"), (93600, "26h"), (604800, "1w"), (1209600, "2w"), (30 * 86400, "30d"),
    (3601, "1.0h"), (86400.9, "1d"),
    (1400 * 3600, "58.3d"), (78 * 3600, "3.2d"), (60 * 3600, "2.5d"), (36 * 3600, "36h"), (47 * 3600, "47h"),
    (841 * 3600, "841h"),  # 35.04 days would print as 35.0d, which reads as exactly 35 days
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["30s", "15m", "90m", "26h", "36h", "6d", "2w"])
def test_format_reads_like_the_policy(text):
    assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize("text, canonical", [("24h", "1d"), ("60m", "1h"), ("7d", "1w"), ("120s", "2m")])
def test_format_uses_the_largest_whole_unit(text, canonical):
    assert format_duration(parse_duration(text)) == canonical


# --- problem lines ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, text", [
    ((), ""),
    (("restorable_site",), "restorable_site"),
    (("restorable_datasets", "www", "paths", 0), "restorable_datasets.www.paths[0]"),
    (("restorable_consistency_profiles", "hooks", "pre", 1, "argv", 0), "restorable_consistency_profiles.hooks.pre[1].argv[0]"),
])
def test_format_path(path, text):
    assert format_path(path) == text


@pytest.mark.parametrize("key, text", [(True, "true"), (False, "false"), (None, "null"), (2.5, "2.5")])
def test_format_path_of_a_key_yaml_did_not_read_as_a_string(key, text):
    """on:, no:, ~: are mapping keys YAML reads as true, false and null; they print as YAML writes them."""
    assert format_path(("restorable_schedules", "hourly", key)) == "restorable_schedules.hourly." + text


def test_problem_lines():
    assert Problem("h1", ("restorable_site",), "bad").line() == "h1: restorable_site: bad"
    assert Problem("h1", ("restorable_site",), "bad", WARNING).line() == "warning: h1: restorable_site: bad"
    assert Problem("h1", ("restorable_site",), "bad", ERROR, "host_vars/h1.yml:3").line() == "h1: restorable_site: bad (host_vars/h1.yml:3)"


def test_errors_come_before_warnings_and_carry_their_origin():
    origins = []

    def origin(host, path):
        origins.append((host, path))
        return "group_vars/all.yml"

    policy = changed(**{"restorable_targets.nas.password": "plain-one", "restorable_datasets.db.rpo": "12h"})
    assert FleetValidator(origin=origin).validate(fleet(policy)).lines() == [
        "web01: restorable_datasets.db.rpo: RPO 12h cannot be met: runs can be up to 26h apart (schedule, window and jitter) (group_vars/all.yml)",
        "warning: web01: restorable_targets.nas.password: secret given as plain text: use Ansible Vault or a lookup (group_vars/all.yml)",
    ]
    assert origins == [(HOST, ("restorable_datasets", "db", "rpo")), (HOST, ("restorable_targets", "nas", "password"))]


# --- secrets --------------------------------------------------------------------------------------------------

SECRET_FIELDS = [
    "restorable_targets.nas.password",
    "restorable_targets.nas.ssh_private_key",
    "restorable_targets.usb.password",
    "restorable_targets.cloud.password",
    "restorable_targets.cloud.access_key_id",
    "restorable_targets.cloud.secret_access_key",
    "restorable_consistency_profiles.pg.postgresql.password",
]
LEAKY_VALUES = [
    pytest.param(271828182845, id="integer"),
    pytest.param(2.718281828, id="float"),
    pytest.param(["hunter2-leak"], id="list"),
    pytest.param({"value": "hunter2-leak"}, id="mapping"),
    pytest.param("hunter2-leak" * 400, id="too-long"),
    pytest.param("hunter2-leak", id="plain-text"),
]


def test_secret_fields_are_known():
    patterns = FleetValidator().secret_patterns
    for path in SECRET_FIELDS:
        keys = path.split(".")
        keys[1] = "*"
        assert tuple(keys[1:]) in patterns[keys[0]], path
    assert ("*", "mariadb", "password") in patterns["restorable_consistency_profiles"]


@pytest.mark.parametrize("field", SECRET_FIELDS)
@pytest.mark.parametrize("value", LEAKY_VALUES)
def test_secret_values_are_never_echoed(validator, field, value):
    report = validator.validate(fleet(changed(**{field: value})))
    assert [format_path(p.path) for p in report.problems] == [field]
    for line in report.lines():
        assert "hunter2" not in line and "271828182845" not in line and "2.718" not in line, line


@pytest.mark.parametrize("mode, severity", [("warn", WARNING), ("error", ERROR)])
def test_plaintext_secret_severity(validator, mode, severity):
    report = validator.validate(fleet(changed(**{"restorable_targets.usb.password": "plain", "restorable_compliance.plaintext_secrets": mode})))
    assert [(format_path(p.path), p.severity) for p in report.problems] == [("restorable_targets.usb.password", severity)]


def test_plaintext_secrets_default_to_warnings(validator):
    report = validator.validate(fleet(changed(**{"restorable_targets.usb.password": "plain", "restorable_compliance": None})))
    assert [p.severity for p in report.problems] == [WARNING]


@pytest.mark.parametrize("source, warned", [("vault", False), ("lookup", False), ("plain", True)])
def test_secret_source_decides_what_is_plain_text(source, warned):
    validator = FleetValidator(secret_source=lambda host, path, value: source)
    assert bool(validator.validate(fleet(baseline())).warnings) == warned


def test_templated_secret_is_not_plain_text(validator):
    assert lines(validator, changed(**{"restorable_targets.usb.password": "{{ lookup('community.hashi_vault.hashi_vault', 'secret/usb') }}"})) == []


def test_secret_inside_a_wrongly_shaped_container_is_not_echoed(validator):
    policy = changed(restorable_targets=[dict(BASELINE["restorable_targets"]["nas"], name="nas", password="hunter2-leak")])
    assert lines(validator, policy) == ["web01: restorable_targets: a list, expected a mapping"]


@pytest.mark.parametrize("path, value, message", [
    ("restorable_targets.nas.password", {"value": "hunter2-leak"}, "a mapping, expected a string"),
    ("restorable_targets.nas.password", ["hunter2-leak"], "a list, expected a string"),
    ("restorable_targets.nas.type", ["hunter2-leak"], "a list, expected one of local, sftp, s3, replica, tape_library"),
    ("restorable_datasets.www.tags", ["hunter2-leak"] * 51, "the list is too long (51 entries, at most 50)"),
    ("restorable_drills.weekly-www.datasets", ["www", "www"], "'www' is listed more than once"),
    ("restorable_drills.weekly-www.datasets", [], "the list is empty (at least 1 entry)"),
])
def test_containers_are_described_never_printed(validator, path, value, message):
    assert lines(validator, changed(**{path: value})) == ["web01: %s: %s" % (path, message)]


# --- schema messages -----------------------------------------------------------------------------------------

def test_unknown_top_level_variable_is_named(validator):
    policy = baseline()
    policy["restorable_dataset"] = policy.pop("restorable_datasets")
    policy["restorable_schedule"] = {}
    assert lines(validator, policy) == [
        "web01: restorable_dataset: unknown variable (allowed: %s)" % ", ".join(sorted(load_schema()["properties"])),
        "web01: restorable_schedule: unknown variable (allowed: %s)" % ", ".join(sorted(load_schema()["properties"])),
    ]


def test_each_unknown_field_is_reported_at_itself(validator):
    policy = changed(**{"restorable_datasets.www.exclude": ["*.log"], "restorable_datasets.www.keep": 3})
    allowed = "check, consistency, description, enabled, excludes, one_file_system, paths, ping_url, retention, rpo, rto, schedule, tags, targets, tier"
    assert lines(validator, policy) == [
        "web01: restorable_datasets.www.exclude: unknown field (allowed: %s)" % allowed,
        "web01: restorable_datasets.www.keep: unknown field (allowed: %s)" % allowed,
    ]


def test_unknown_keys_of_mixed_types_are_all_reported(validator):
    policy = changed(**{"restorable_schedules.hourly.at": "01:00"})
    policy["restorable_schedules"]["hourly"][7] = "x"
    paths = [format_path(p.path) for p in validator.validate(fleet(policy)).problems]
    assert len(paths) == 2 and "restorable_schedules.hourly.at" in paths


@pytest.mark.parametrize("path, value, missing", [
    ("restorable_targets.nas", {"path": "/srv/restic", "password": SECRET}, "type"),
    ("restorable_datasets.www", {"paths": ["/var/www"], "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}}, "tier"),
    ("restorable_datasets.data.source", {"subvolume": "/srv/data"}, "type"),
    ("restorable_drills.weekly-www.recovery_point", {"within_days": 30}, "choice"),
    ("restorable_drills.weekly-www.sample", {"files": 10}, "mode"),
    ("restorable_consistency_profiles.freeze", {"fsfreeze": {"mountpoints": ["/srv/db"]}}, "type"),
    ("restorable_targets.vtl01", {k: v for k, v in BASELINE["restorable_targets"]["vtl01"].items() if k != "driver"}, "driver"),
])
def test_missing_discriminator_is_the_only_problem(validator, path, value, missing):
    assert lines(validator, changed(**{path: value})) == ["web01: %s: missing required field %s" % (path, missing)]


def test_discriminator_guard_changes_no_verdict():
    """Each if/then keyed on a field the object itself requires: requiring it in the if too changes
    which errors are listed, never whether a document is valid."""
    guarded = _guard_discriminators(load_schema())
    assert guarded != load_schema()  # a copy, the loaded schema is left alone
    conditions = []

    def walk(node):
        if isinstance(node, dict):
            for branch in node.get("allOf", []):
                if "if" in branch and "required" in branch["if"]:
                    conditions.append((branch["if"]["required"], node.get("required", [])))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(guarded)
    assert len(conditions) == 21  # target 5, tape driver 3, dataset 4, source 2, profile 3, recovery point 2, sample 2
    assert all(len(tested) == 1 and tested[0] in required for tested, required in conditions)


def test_custom_profile_without_commands_needs_one_of_them(validator):
    assert lines(validator, changed(**{"restorable_consistency_profiles.hooks": {"type": "custom"}})) == [
        "web01: restorable_consistency_profiles.hooks: needs one of: pre, post"
    ]


@pytest.mark.parametrize("value, message", [
    (datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc), "2026-11-01T00:00:00+00:00 is a date and time, expected a string"),
    (datetime.date(2026, 11, 1), "2026-11-01 is a date, expected a string"),
])
def test_yaml_timestamp_is_shown_as_written(validator, value, message):
    # what YAML makes of at: 2026-11-01T00:00:00Z and at: 2026-11-01 unquoted
    result = lines(validator, changed(**{"restorable_drills.weekly-www.recovery_point": {"choice": "at", "at": value}}))
    assert result == ["web01: restorable_drills.weekly-www.recovery_point.at: " + message]


@pytest.mark.parametrize("path, value, message", [
    ("restorable_datasets.www.retention.daily", "7", "'7' is a string, expected an integer"),
    ("restorable_datasets.www.retention.daily", 7.5, "7.5 is a number, expected an integer"),
    ("restorable_datasets.www.retention.daily", True, "true is a boolean, expected an integer"),
    ("restorable_datasets.www.retention", [], "a list, expected a mapping"),
    ("restorable_datasets.www.paths", {}, "a mapping, expected a list"),
    ("restorable_datasets.www.description", 12, "12 is an integer, expected a string"),
    ("restorable_datasets.www.enabled", "no", "'no' is a string, expected a boolean"),
    ("restorable_schedules.nightly.load_gate.max_load_per_cpu", "high", "'high' is a string, expected a number"),
])
def test_type_messages_speak_yaml(validator, path, value, message):
    assert lines(validator, changed(**{path: value})) == ["web01: %s: %s" % (path, message)]


@pytest.mark.parametrize("path", ["restorable_datasets.www.retention.daily", "restorable_datasets.www.retention", "restorable_schedules"])
def test_null_reads_naturally(validator, path):
    policy = baseline()
    node, key = at(policy, path)
    node[key] = None  # what YAML makes of a key left empty
    expected = "an integer" if path.endswith("daily") else "a mapping"
    assert lines(validator, policy) == ["web01: %s: the value is null, expected %s" % (path, expected)]


def test_null_for_a_choice_reads_naturally(validator):
    policy = baseline()
    policy["restorable_datasets"]["www"]["tier"] = None
    assert lines(validator, policy) == ["web01: restorable_datasets.www.tier: the value is null, expected one of agent, host, cdp, array"]


def test_boolean_key_is_reported_as_written_in_yaml(validator):
    policy = baseline()
    policy["restorable_schedules"]["hourly"][True] = "weekdays"  # on: weekdays
    assert lines(validator, policy) == [
        "web01: restorable_schedules.hourly.true: unknown field (allowed: bandwidth, calendar, ionice, jitter, load_gate, nice, window)"
    ]


def test_boolean_name_is_reported_as_a_key(validator):
    policy = baseline()
    policy["restorable_schedules"][True] = {"calendar": "daily"}  # on: as a schedule name
    assert lines(validator, policy) == ["web01: restorable_schedules: the key true is a boolean, expected a string"]


def test_environment_variable_name_says_what_is_allowed(validator):
    policy = changed(**{"restorable_consistency_profiles.hooks.pre": [{"argv": ["/bin/true"], "env": {"app-mode": "x"}}]})
    assert lines(validator, policy) == [
        "web01: restorable_consistency_profiles.hooks.pre[0].env: 'app-mode' is not valid: "
        "an environment variable name (A-Z, 0-9, _; not starting with a digit)"
    ]


def test_float_with_integral_value_counts_as_an_integer(validator):
    """JSON Schema reads 7.0 as the integer 7 and so does the schema; the planner turns counts into int."""
    assert lines(validator, changed(**{"restorable_datasets.www.retention.daily": 7.0})) == []


@pytest.mark.parametrize("path, value", [
    ("restorable_site", "branch-lyon\n"),
    ("restorable_datasets.www.targets", ["nas\n"]),
    ("restorable_schedules.nightly.window.start", "01:00\n"),
    ("restorable_drills.weekly-www.drill_host", "drill01\n"),
])
def test_trailing_newline_is_a_schema_error(validator, path, value):
    report = validator.validate(fleet(changed(**{path: value})))
    assert report.errors and not [line for line in report.lines() if "\n" in line], report.lines()


def _patterns(node, where="#"):
    """(where, pattern, examples) for every pattern of the schema; examples from the node or its parent property."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield where, node["pattern"], node.get("examples", [])
        for key, value in node.items():
            if key not in ("examples", "enum", "const", "required"):
                yield from _patterns(value, where + "/" + str(key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _patterns(item, "%s/%d" % (where, index))


# A value each pattern accepts, for the patterns whose node has no example of its own.
PATTERN_SAMPLES = {
    "^[A-Z_][A-Z0-9_]*$(?!\\n)": "APP_MODE",
    "^[a-z]{2,4}[a-z0-9]{1,4}$(?!\\n)": "vda",
    "^[A-Za-z0-9_.:-]{1,64}$(?!\\n)": "web",
}


@pytest.mark.parametrize("where, pattern, examples", list(_patterns(load_schema())), ids=lambda value: str(value)[:60])
def test_every_anchored_pattern_refuses_a_trailing_newline(where, pattern, examples):
    """In Python, $ also matches before a final newline; $(?!\\n) does not, and is ECMA-262 as well
    (editors check the same patterns). Both jsonschema and fastjsonschema must refuse the newline."""
    samples = [e for e in examples if isinstance(e, str)] + ([PATTERN_SAMPLES[pattern]] if pattern in PATTERN_SAMPLES else [])
    assert samples, "%s: no example to test %r with" % (where, pattern)
    if pattern.endswith("$"):
        pytest.fail("%s: %r ends in a bare $, which lets a trailing newline through" % (where, pattern))
    checker = jsonschema.Draft202012Validator({"type": "string", "pattern": pattern})
    fast = fastjsonschema.compile({"type": "string", "pattern": pattern})
    for sample in samples:
        assert checker.is_valid(sample), (where, sample)
        fast(sample)
        if "$" in pattern:
            assert not checker.is_valid(sample + "\n"), (where, sample)
            with pytest.raises(fastjsonschema.JsonSchemaException):
                fast(sample + "\n")


def test_calendar_that_never_fires_is_reported(validator):
    assert lines(validator, changed(**{"restorable_schedules.hourly.calendar": "*-02-30 01:00"})) == [
        "web01: restorable_schedules.hourly.calendar: calendar '*-02-30 01:00' never fires"
    ]


@pytest.mark.parametrize("calendar", ["   ", "\t", "\n"])
def test_blank_calendar_is_reported(validator, calendar):
    assert lines(validator, changed(**{"restorable_schedules.hourly.calendar": calendar})) == [
        "web01: restorable_schedules.hourly.calendar: %r is not valid: a systemd calendar expression "
        "(OnCalendar= syntax, see systemd.time(7)), without a year: a schedule must repeat" % calendar
    ]


def test_calendar_limited_to_a_year_is_reported(validator):
    assert lines(validator, changed(**{"restorable_schedules.hourly.calendar": "2026-*-* *:00"})) == [
        "web01: restorable_schedules.hourly.calendar: cannot use '2026-*-* *:00': it fires only in 2026; a schedule must repeat"
    ]


# --- time zones ----------------------------------------------------------------------------------------------

needs_tzdata = pytest.mark.skipif(not zoneinfo.available_timezones(), reason="no time zone database on this machine")


@needs_tzdata
@pytest.mark.parametrize("path", [
    "restorable_sites.branch-lyon.timezone",
    "restorable_sites.branch-lyon.window.timezone",
    "restorable_schedules.nightly.window.timezone",
])
def test_unknown_time_zone(path):
    assert found("check_time_zones", changed(**{path: "Mars/Olympus"})) == [(path, "unknown time zone Mars/Olympus")]


@needs_tzdata
def test_unknown_time_zone_of_a_calendar():
    policy = changed(**{"restorable_schedules.hourly.calendar": "*:00 Mars/Olympus", "restorable_drills.weekly-db.calendar": "Sat 06:00 Moon/Base"})
    assert found("check_time_zones", policy) == [
        ("restorable_schedules.hourly.calendar", "unknown time zone Mars/Olympus"),
        ("restorable_drills.weekly-db.calendar", "unknown time zone Moon/Base"),
    ]


@needs_tzdata
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT-1"])
def test_known_time_zones(zone):
    policy = changed(**{"restorable_sites.branch-lyon.timezone": zone, "restorable_schedules.hourly.calendar": "*:00 " + zone})
    assert found("check_time_zones", policy) == []


def test_time_zones_are_not_checked_without_a_time_zone_database(monkeypatch):
    monkeypatch.setattr(semantic, "_known_time_zones", frozenset)
    assert found("check_time_zones", changed(**{"restorable_sites.branch-lyon.timezone": "Mars/Olympus"})) == []


# --- variables one at a time ------------------------------------------------------------------------------------

def test_variable_nested_too_deeply_hides_no_other_variable(validator):
    deep = 1
    for _index in range(5000):
        deep = {"a": deep}
    policy = changed(**{"restorable_datasets.www.description": deep, "restorable_schedules.hourly.nice": 20})
    assert lines(validator, policy) == [
        "web01: restorable_datasets: nested too deeply",
        "web01: restorable_schedules.hourly.nice: 20 is greater than 19",
    ]


@pytest.mark.parametrize("depth", [900, 1500, 3000])
def test_deep_nesting_never_raises(validator, depth):
    deep = 1
    for _index in range(depth):
        deep = {"a": deep}
    result = lines(validator, changed(**{"restorable_datasets.www.description": deep}))
    assert result in (["web01: restorable_datasets.www.description: a mapping, expected a string"], ["web01: restorable_datasets: nested too deeply"])


@pytest.mark.parametrize("name", sorted(load_schema()["properties"]))
def test_fast_check_accepts_every_example(name):
    """The compiled check and jsonschema agree on the schema's own examples: a valid value takes the fast path."""
    schema_validator = SchemaValidator()
    examples = load_schema()["properties"][name].get("examples") or load_schema()["$defs"][name[len("restorable_"):]]["examples"]
    for example in examples:
        assert schema_validator._detailed.is_valid({name: example})
        assert schema_validator._is_valid_variable(name, example), example


def test_fields_called_description_take_the_fast_path():
    schema_validator = SchemaValidator()
    policy = changed(**{"restorable_targets.nas.description": "Head office NAS", "restorable_datasets.www.description": "Web content"})
    for name in ("restorable_targets", "restorable_datasets"):
        assert schema_validator._is_valid_variable(name, policy[name])


def test_fast_check_that_recurses_too_deeply_defers_to_the_detailed_one():
    schema_validator = SchemaValidator()

    def recurse(document):
        raise RecursionError

    schema_validator._is_valid_fast = recurse
    assert schema_validator._is_valid_variable("restorable_site", "branch-lyon") is False
    assert schema_validator.problems(HOST, {"restorable_site": "branch-lyon"}) == [
        Problem(HOST, ("restorable_site",), "does not match the policy schema")
    ]


# --- robustness -------------------------------------------------------------------------------------------------

def _paths(node, path=()):
    """Every (path, is-mapping) in a policy, the root left out."""
    if path:
        yield path, isinstance(node, dict)
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, path + (index,))


POLICY_PATHS = list(_paths(BASELINE))
# Values that mean something somewhere in the policy, so random substitutions reach deep checks.
INTERESTING = [
    "", " ", "nas", "cloud", "mirror", "vtl01", "nightly", "hourly", "pg", "freeze", "www", "db", "drill01", "ghost", "daily", "weekly",
    "agent", "host", "cdp", "array", "local", "sftp", "s3", "replica", "tape_library", "btrfs", "postgresql", "custom", "fsfreeze",
    "random", "latest", "at", "files", "percent", "enforce", "error", "warn", "1s", "15m", "26h", "7d", "999999w", "01:00", "23:59",
    "/", "/srv", "/var/www", "//var/www", "*-*-* 01:00", "*:0/15", "Mon..Fri 02:00", "*-02-30 01:00", "x" * 5000, "{{ vault_x }}",
]
KEYS = sorted({key for path, _value in POLICY_PATHS for key in path if isinstance(key, str)} | {"unknown", "tier", "type"})


def _apply(policy: dict, operations) -> dict:
    """Replace, add or delete at the given places; places an earlier operation removed are skipped."""
    for operation, path, key, value in operations:
        node = policy
        try:
            for part in path[:-1]:
                node = node[part]
            if operation == "replace":
                node[path[-1]] = value
            elif operation == "delete":
                del node[path[-1]]
            elif isinstance(node[path[-1]], dict):
                node[path[-1]][key] = value
        except (KeyError, IndexError, TypeError):
            continue
    return policy


def _assert_well_formed(report, hosts: dict) -> None:
    assert report.hosts_checked == len(hosts)
    for problem in report.errors:
        assert problem.host in hosts and problem.line().startswith(problem.host + ": "), problem
    for problem in report.warnings:
        assert problem.host in hosts and problem.line().startswith("warning: " + problem.host + ": "), problem
    for line in report.lines():
        assert "\n" not in line, line


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(11 if depth < 3 else 8)
    if kind == 8:
        return [_random_value(rng, depth + 1) for _index in range(rng.randrange(4))]
    if kind in (9, 10):
        return {rng.choice(KEYS): _random_value(rng, depth + 1) for _index in range(rng.randrange(4))}
    return [None, rng.random() < 0.5, rng.randint(-3, 10 ** 6), rng.uniform(-1, 100), 10 ** 30, rng.choice(INTERESTING),
            rng.choice(INTERESTING), "".join(rng.choice("abz09 :-/*.~") for _index in range(rng.randrange(12)))][kind]


def test_seeded_random_values_never_raise(validator):
    """The same property as the hypothesis test below, with the standard library only, so it always runs."""
    rng = random.Random(20261124)
    for _index in range(150):
        operations = [
            (rng.choice(["replace", "replace", "add", "delete"]), rng.choice(POLICY_PATHS)[0], rng.choice(KEYS), _random_value(rng))
            for _index in range(rng.randrange(1, 4))
        ]
        hosts = fleet(_apply(baseline(), operations))
        _assert_well_formed(validator.validate(hosts), hosts)


def test_random_json_values_never_raise(validator):
    """Random YAML-like values (text with control characters and newlines, digits int() cannot read, keys YAML
    reads as booleans, null or numbers, dates; no NaN) put at random places of a valid policy never make
    validation raise, and every problem is one line that starts with its host."""
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    text = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FFF, blacklist_categories=("Cs",)), max_size=20)
    numbers = st.integers(min_value=-(2 ** 80), max_value=2 ** 80) | st.floats(allow_nan=False)
    interesting = st.sampled_from(INTERESTING) | st.sampled_from(INTERESTING).map(lambda value: value + "\n")
    scalars = st.none() | st.booleans() | numbers | text | interesting | st.dates() | st.datetimes()
    keys = st.sampled_from(KEYS) | text | st.booleans() | st.none() | st.integers(min_value=-3, max_value=10)
    values = st.recursive(scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
                          max_leaves=10)
    operations = st.lists(
        st.tuples(st.sampled_from(["replace", "add", "delete"]), st.sampled_from([p for p, _value in POLICY_PATHS]), keys, values),
        min_size=1, max_size=3,
    )

    @hypothesis.settings(max_examples=300, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(operations)
    def check(operations):
        hosts = fleet(_apply(baseline(), operations))
        _assert_well_formed(validator.validate(hosts), hosts)

    check()


def test_random_calendars_parse_or_raise_calendar_error():
    """Calendars assembled from valid and invalid pieces give a gap, None, or a CalendarError, never anything else."""
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    weekday = st.sampled_from(["", "Mon", "mon", "Mon..Fri", "Sat,Sun", "Fri..Mon", "Foo", "Monday", "Tue,Thu..Sat"])
    date = st.sampled_from(["", "*-*-*", "*-*-01", "*-*-1,15", "2026-*-*", "2025-*-*", "*-02-29", "*-02-30", "*-13-*", "*-*~01", "*-*", "*-1..3-*"])
    number = st.integers(min_value=0, max_value=70).map(str)
    odd = st.sampled_from(["\u00b2", "1" * 5000])  # a digit int() cannot read; more digits than int() reads
    field = st.one_of(st.just("*"), odd, number, st.tuples(number, number).map("..".join), st.tuples(st.sampled_from(["*", "0", "5"]), number).map("/".join))
    time = st.one_of(st.just(""), st.tuples(field, field).map(":".join), st.tuples(field, field, field).map(":".join))
    zone = st.sampled_from(["", "UTC", "Europe/Berlin", "Etc/GMT-1", "Mars/Olympus", "CET"])
    expression = st.tuples(weekday, date, time, zone).map(" ".join)
    minute = st.integers(min_value=0, max_value=DAY_MINUTES - 1)

    @hypothesis.settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @hypothesis.given(expression, st.none() | st.tuples(minute, minute))
    def check(expression, bounds):
        window = Window(*bounds) if bounds else None
        try:
            gap = largest_gap_minutes(expression, window)
        except CalendarError:
            return
        assert gap is None or 1 <= gap <= HORIZON_MINUTES
        if gap is not None and window is not None:
            assert gap >= largest_gap_minutes(expression)

    check()
