# -*- coding: utf-8 -*-
"""Snapshot providers and the group engine: command lines, layout, manifest (no btrfs needed)."""
from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import FreezeRecord
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.btrfs import (
    BtrfsSnapshotProvider, provider_from_name)
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.group import (
    ConsistencyGroupSnapshot, SnapshotGroup, build_manifest, consistency_with_passwords, group_snapshot_from_config,
    recovery_point_id)
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.provider import SnapshotError
from ansible_collections.restorable.backup.plugins.modules.status_info import snapshot_groups

BTRFS = BtrfsSnapshotProvider(program="/usr/bin/btrfs")


def test_btrfs_command_lines_snapshot_writable_then_seal_then_delete():
    assert BTRFS.create_argv("/srv/db", "/srv/.restorable-snapshots/db/1") == [
        "/usr/bin/btrfs", "subvolume", "snapshot", "/srv/db", "/srv/.restorable-snapshots/db/1"]
    assert BTRFS.read_only_argv("/s/1") == ["/usr/bin/btrfs", "property", "set", "-ts", "/s/1", "ro", "true"]
    assert BTRFS.delete_argv("/s/1") == ["/usr/bin/btrfs", "subvolume", "delete", "/s/1"]


def test_snapshot_root_beside_the_volume_or_below_the_configured_dir():
    assert BTRFS.snapshot_root("/srv/db/") == "/srv/.restorable-snapshots/db"
    assert BTRFS.snapshot_root("/srv/db", "/srv/snaps") == "/srv/snaps/db"


def test_create_refuses_an_existing_destination(tmp_path):
    # btrfs would put the snapshot INSIDE an existing directory.
    (tmp_path / "rp").mkdir()
    with pytest.raises(SnapshotError, match="exists already"):
        BTRFS.create(str(tmp_path), str(tmp_path / "rp"))


def test_check_volume_needs_an_existing_absolute_directory(tmp_path):
    with pytest.raises(SnapshotError, match="absolute"):
        BTRFS.check_volume("srv/db")
    with pytest.raises(SnapshotError, match="does not exist"):
        BTRFS.check_volume(str(tmp_path / "missing"))
    BTRFS.check_volume(str(tmp_path))


def test_only_btrfs_is_available_on_hosts():
    assert provider_from_name("btrfs").name == "btrfs"
    with pytest.raises(SnapshotError, match="ebs is not available"):
        provider_from_name("ebs")


@pytest.mark.parametrize("name, volumes, message", [
    ("", ["/a"], "cannot name files"), ("../x", ["/a"], "cannot name files"), (".hidden", ["/a"], "cannot name"),
    ("g", [], "no volumes"), ("g", ["/a", "/a/"], "twice")])
def test_group_refuses_bad_names_and_volumes(name, volumes, message):
    with pytest.raises(SnapshotError, match=message):
        SnapshotGroup(name, volumes)


def engine(tmp_path, volumes, snapshot_dir=None, consistency=None) -> ConsistencyGroupSnapshot:
    return group_snapshot_from_config(SnapshotGroup("g", volumes, snapshot_dir), BTRFS, consistency or {"type": "none"},
                                      str(tmp_path / "status"))


def test_volumes_sharing_a_configured_snapshot_dir_need_different_names(tmp_path):
    with pytest.raises(SnapshotError, match="share the snapshot directory"):
        engine(tmp_path, ["/a/data", "/b/data"], snapshot_dir="/snaps")
    assert engine(tmp_path, ["/a/data", "/b/data"]).roots == {
        "/a/data": "/a/.restorable-snapshots/data", "/b/data": "/b/.restorable-snapshots/data"}


def test_plan_lists_destinations_and_creates_nothing(tmp_path):
    volume = tmp_path / "vol"
    volume.mkdir()
    plan = engine(tmp_path, [str(volume)]).plan("20261125T010000.000000Z")
    assert plan == {"id": "20261125T010000.000000Z", "group": "g", "provider": "btrfs", "profile": "none",
                    "volumes": [{"volume": str(volume),
                                 "snapshot": str(tmp_path / ".restorable-snapshots" / "vol" / "20261125T010000.000000Z")}]}
    assert not (tmp_path / ".restorable-snapshots").exists() and not (tmp_path / "status").exists()


def test_recovery_point_ids_sort_by_time():
    early = recovery_point_id(datetime.datetime(2026, 11, 25, 1, 2, 3, 4000, tzinfo=datetime.timezone.utc))
    assert early == "20261125T010203.004000Z"
    assert early < recovery_point_id(datetime.datetime(2026, 11, 25, 10, 0, 0, tzinfo=datetime.timezone.utc))


def test_manifest_keeps_the_freeze_record_and_the_label():
    record = FreezeRecord("postgresql", started="2026-11-25T01:00:00.000Z", ended="2026-11-25T01:00:00.080Z",
                          seconds=0.08, label=json.dumps({"backup_label": "START WAL LOCATION: 0/2000028"}))
    group = SnapshotGroup("g", ["/srv/db", "/srv/logs"])
    manifest = build_manifest(group, "btrfs", "rp1", {"/srv/logs": "/s/logs/rp1", "/srv/db": "/s/db/rp1"}, record)
    assert manifest["volumes"] == [{"volume": "/srv/db", "snapshot": "/s/db/rp1"},
                                   {"volume": "/srv/logs", "snapshot": "/s/logs/rp1"}]
    assert manifest["freeze_seconds"] == 0.08 and manifest["freeze"] == record.to_dict()
    assert manifest["consistent"] and manifest["label"] == record.label and manifest["time"] == record.started
    assert json.loads(json.dumps(manifest)) == manifest


def test_passwords_come_separately_never_inside_the_profile():
    config = consistency_with_passwords({"type": "postgresql", "postgresql": {"user": "backup"}},
                                        {"postgresql": "s3cret-pw", "mariadb": None})
    assert config["postgresql"] == {"user": "backup", "password": "s3cret-pw"} and "mariadb" not in config
    with pytest.raises(SnapshotError, match="mariadb_password"):
        consistency_with_passwords({"type": "mariadb", "mariadb": {"password": "inline"}}, {"mariadb": None})
    assert consistency_with_passwords(None, {}) == {"type": "none"}


def test_delete_refuses_ids_that_are_paths(tmp_path):
    with pytest.raises(SnapshotError, match="not a recovery point id"):
        engine(tmp_path, ["/srv/db"]).delete("../db")


def test_every_run_of_a_group_is_in_its_status_and_metrics_with_its_tier(tmp_path):
    # status_info reads it back among the host's snapshot groups.
    group = group_snapshot_from_config(SnapshotGroup("g", [str(tmp_path / "absent")]), BTRFS, {"type": "none"},
                                       str(tmp_path / "status"), str(tmp_path / "metrics"))
    with pytest.raises(SnapshotError):
        group.take()  # the volume does not exist: a failed run, recorded like any other
    status = snapshot_groups(str(tmp_path / "status"))["g"]
    assert status["result"] == "failed" and status["tier"] == "snapshot" and status["consecutive_failures"] == 1
    metrics = (tmp_path / "metrics" / "restorable_snapshot-g.prom").read_text()
    assert 'restorable_job_info{dataset="g",host="%s",tier="snapshot"} 1' % status["host"] in metrics
    assert 'restorable_backup_last_result{dataset="g",host="%s",result="failed"} 1' % status["host"] in metrics
