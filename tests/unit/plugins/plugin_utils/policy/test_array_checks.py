# -*- coding: utf-8 -*-
"""Validation of the array tier and its tape libraries: what cannot run in this version is refused
naming host and field path, exports name a pool of a tape library on the exporting host, media
capacity in GB or MB, and minute calendars are schedules like any other."""
from __future__ import annotations

import copy

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.plugin_utils.policy.calendar_event import largest_gap_minutes  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS  # noqa: E402

SECRET = "{{ vault_secret }}"
POLICY = {
    "restorable_targets": {
        "vtl01": {"type": "tape_library", "driver": "directory", "path": "/srv/vtl", "slots": 8, "drives": 1,
                  "media": {"type": "LTO-8", "capacity_mb": 16}, "pools": {"daily": {"retention_days": 14, "barcode_prefix": "DM"}}},
    },
    "restorable_schedules": {"five": {"calendar": "*:0/5"}},
    "restorable_datasets": {
        "files": {"tier": "array", "volumes": ["/srv/a", "/srv/b"], "provider": "btrfs", "schedule": "five", "rpo": "10m",
                  "retention": {"last": 8}, "export": {"library": "vtl01", "pool": "daily", "every": 1, "chain_length": 4}},
    },
}


def lines(changes: dict | None = None, hosts: tuple = ("st01", "st02")) -> list:
    document = copy.deepcopy(POLICY)
    for path, value in (changes or {}).items():
        node = document
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        if value is None:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = value
    fleet = {host: {} for host in hosts}
    fleet[hosts[0]] = document
    return FleetValidator(tiers=TIERS).validate(fleet).lines()


def test_a_minute_schedule_exporting_to_a_small_directory_library_is_valid():
    assert lines() == []


@pytest.mark.parametrize("provider", ["zfs", "lvm_thin", "ebs"])
def test_providers_that_cannot_run_are_refused_naming_host_and_field(provider):
    assert lines({"restorable_datasets.files.provider": provider}) == [
        "st01: restorable_datasets.files.provider: provider %s is not available in this version: only btrfs runs; "
        "see docs/array-tier.md" % provider]


def test_the_mtx_driver_is_refused():
    target = dict(POLICY["restorable_targets"]["vtl01"], driver="mtx", changer="/dev/sg3")
    assert lines({"restorable_targets.vtl01": target}) == [
        "st01: restorable_targets.vtl01.driver: driver mtx is not available in this version: only directory and s3 run; "
        "see docs/tape.md"]


def test_an_unknown_pool_names_the_field():
    assert lines({"restorable_datasets.files.export.pool": "weekly"}) == [
        "st01: restorable_datasets.files.export.pool: pool weekly is not defined in restorable_targets.vtl01.pools (known: daily)"]


def test_the_library_must_be_a_tape_library():
    document = {"restorable_targets.nas": {"type": "local", "path": "/srv/restic", "password": SECRET},
                "restorable_datasets.files.export.library": "nas"}
    assert lines(document) == [
        "st01: restorable_datasets.files.export.library: target nas is of type local, expected tape_library"]


def test_a_library_on_another_host_is_refused():
    assert lines({"restorable_targets.vtl01.host": "st02"}) == [
        "st01: restorable_datasets.files.export.library: library vtl01 names host st02, but a library runs on the host that "
        "exports to it (st01) in this version: drop its host or set it to st01"]
    assert lines({"restorable_targets.vtl01.host": "st01"}) == []


def test_capacity_in_mb_or_gb_exactly_one():
    assert lines({"restorable_targets.vtl01.media": {"type": "LTO-8", "capacity_gb": 12000}}) == []
    for media in ({"type": "LTO-8"}, {"type": "LTO-8", "capacity_gb": 1, "capacity_mb": 16}):
        assert lines({"restorable_targets.vtl01.media": media}) == [
            "st01: restorable_targets.vtl01.media: needs exactly one of: capacity_gb, capacity_mb"]
    assert lines({"restorable_targets.vtl01.media": {"type": "LTO-8", "capacity_mb": 0}}) == [
        "st01: restorable_targets.vtl01.media.capacity_mb: 0 is less than 1"]


def test_pools_of_one_library_draw_barcodes_from_distinct_prefixes():
    pools = {"daily": {"retention_days": 14}, "dark": {"retention_days": 14}, "weekly": {"retention_days": 60, "barcode_prefix": "DA"}}
    assert lines({"restorable_targets.vtl01.pools": pools}) == [
        "st01: restorable_targets.vtl01.pools.dark.barcode_prefix: barcode prefix DA is also pool daily's (taken from the "
        "pool's name): give each pool a barcode_prefix of its own",
        "st01: restorable_targets.vtl01.pools.weekly.barcode_prefix: barcode prefix DA is also pool daily's: give each pool a "
        "barcode_prefix of its own"]


def test_a_vault_is_a_name():
    assert lines({"restorable_targets.vtl01.vault": {"destination": "ironmountain-fra"}}) == []
    assert lines({"restorable_targets.vtl01.vault": {"destination": "/mnt/vault"}}) == [
        "st01: restorable_targets.vtl01.vault.destination: '/mnt/vault': a vault is named with 1-64 letters, digits, '_', "
        "'.' or '-' (the library keeps its cartridges below that name)"]


@pytest.mark.parametrize("calendar, gap", [("*:0/5", 5), ("*:0/1", 1), ("*:00/10", 10), ("minutely", 1), ("*-*-* *:00/5:00", 5)])
def test_minute_calendars(calendar, gap):
    assert largest_gap_minutes(calendar) == gap
    assert lines({"restorable_schedules.five.calendar": calendar}) == []


def test_rpo_against_a_minute_schedule():
    assert lines({"restorable_schedules.five.calendar": "*:0/15"}) == [
        "st01: restorable_datasets.files.rpo: RPO 10m cannot be met: runs can be up to 15m apart (schedule, window and jitter)"]


def test_an_array_drill_needs_an_export_to_restore_from():
    drills = {"weekly": {"datasets": ["files"], "calendar": "weekly"}}
    assert lines({"restorable_drills": drills}) == []
    assert lines({"restorable_drills": drills, "restorable_datasets.files.export": None}) == [
        "st01: restorable_drills.weekly.datasets[0]: dataset files exports to no tape library: an array drill restores from "
        "tape (give the dataset an export)"]
