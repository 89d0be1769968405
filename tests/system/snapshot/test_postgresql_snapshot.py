# -*- coding: utf-8 -*-
"""PostgreSQL backup API around a btrfs snapshot: the snapshot alone restores, on another port."""
from __future__ import annotations

import json
import os

import pytest

from db_helpers import APP_DB, chown_tree, gap_free_prefix, pg_start
from snapshot_helpers import copy_tree, group_snapshot, is_read_only, status_of

from ansible_collections.restorable.backup.plugins.module_utils.consistency.postgresql import start_wal_file
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.provider import SnapshotError


def pg_consistency(pg, **extra) -> dict:
    cluster = pg.cluster
    return {"type": "postgresql", "max_freeze": "30s", **extra,
            "postgresql": {"mode": "backup_api", "host": str(cluster.socket_dir), "port": cluster.port,
                           "user": pg.role, "password": pg.password}}


def restore_copy(manifest: dict, sandboxes, break_wal: bool = False):
    """Copy the data directory's snapshot into a sandbox and start it on another port."""
    snapshot = manifest["volumes"][0]["snapshot"]
    root = sandboxes.new_root()
    datadir = copy_tree(os.path.join(snapshot, "data"), root / "data")
    if break_wal:
        label = json.loads(manifest["label"])["backup_label"]
        os.unlink(datadir / "pg_wal" / start_wal_file(label))
    chown_tree(root, "postgres")
    os.chmod(datadir, 0o700)
    cluster = pg_start(root, datadir)
    sandboxes.servers.append(cluster)
    return cluster


def test_backup_api_snapshot_restores_without_an_archive(pg_on_btrfs, pg_write_load, sandboxes, status_dir):
    load = pg_write_load("snap_rows")
    load.wait_for(300)
    engine = group_snapshot("pg", [pg_on_btrfs.volume], pg_consistency(pg_on_btrfs), status_dir)
    before = load.committed
    manifest = engine.take()
    after = load.committed
    load.wait_for(after + 50)  # the server kept taking writes
    load.stop()

    snapshot = manifest["volumes"][0]["snapshot"]
    assert manifest["consistent"] and manifest["profile"] == "postgresql" and manifest["provider"] == "btrfs"
    assert is_read_only(snapshot)
    label = json.loads(manifest["label"])
    with open(os.path.join(snapshot, "data", "backup_label"), encoding="utf-8") as handle:
        assert handle.read() == label["backup_label"]  # the label in the snapshot is the manifest's
    assert not os.path.exists(os.path.join(snapshot, "data", "postmaster.pid"))

    restored = restore_copy(manifest, sandboxes)
    log = restored.log_path.read_text(errors="replace")
    assert "consistent recovery state reached" in log and "starting backup recovery" in log
    restored.run(["pg_amcheck", "-d", APP_DB, "--heapallindexed", "--parent-check"])
    count, low, high = restored.psql("SELECT count(*), min(n), max(n) FROM snap_rows", APP_DB).split("|")
    rows = gap_free_prefix(int(count), int(low) if low else None, int(high) if high else None)
    assert before <= rows <= after + 1  # a committed row is counted only when its reply came back
    assert restored.psql("SELECT count(*) FROM seed", APP_DB) == "20000"

    status = status_of(status_dir, "pg")
    assert status["result"] == "success" and status["snapshot_id"] == manifest["id"]
    assert status["consistency"]["seconds"] == manifest["freeze_seconds"] > 0
    assert list((status_dir / "staging").iterdir()) == []  # the passfile is gone
    assert [rp["id"] for rp in engine.recovery_points()] == [manifest["id"]]
    assert engine.delete(manifest["id"]) and not os.path.exists(snapshot)


def test_restore_fails_without_the_copied_wal(pg_on_btrfs, sandboxes, status_dir):
    """The label path is what makes the copy start: without the WAL it names, the copy does not."""
    engine = group_snapshot("pg-broken", [pg_on_btrfs.volume], pg_consistency(pg_on_btrfs), status_dir)
    pg_on_btrfs.cluster.psql("INSERT INTO seed SELECT g, 'x' FROM generate_series(20001, 20100) g", APP_DB)
    manifest = engine.take()
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            restore_copy(manifest, sandboxes, break_wal=True)
    finally:
        engine.delete(manifest["id"])


def test_failed_snapshot_leaves_no_snapshot_and_no_backup_mode(pg_on_btrfs, btrfs, status_dir):
    plain = btrfs.root / "plain-dir"  # not a subvolume: its snapshot fails inside the window
    plain.mkdir(exist_ok=True)
    engine = group_snapshot("pg-fault", [pg_on_btrfs.volume, plain], pg_consistency(pg_on_btrfs), status_dir)
    left_before = btrfs.snapshots()
    with pytest.raises(SnapshotError, match="plain-dir"):
        engine.take()
    assert btrfs.snapshots() == left_before  # the data directory's snapshot was taken, then removed
    assert engine.recovery_points() == []
    cluster = pg_on_btrfs.cluster
    assert cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'restorable'") == "0"
    # Backup mode is over: a new backup can start and stop in one session.
    probe = cluster.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c",
                         "SELECT pg_backup_start('probe', true)", "-c", "SELECT 1 FROM pg_backup_stop(false)"])
    assert probe.stdout.strip().splitlines()[-1] == "1"
    status = status_of(status_dir, "pg-fault")
    assert status["result"] == "failed" and "plain-dir" in status["reason"]
    assert status["consistency"]["seconds"] > 0  # the window of the failed attempt is recorded too


def test_check_mode_plan_creates_nothing(pg_on_btrfs, btrfs, status_dir):
    engine = group_snapshot("pg-plan", [pg_on_btrfs.volume], pg_consistency(pg_on_btrfs), status_dir)
    left_before = btrfs.snapshots()
    plan = engine.plan()
    assert plan["volumes"][0]["snapshot"].startswith(str(btrfs.root / ".restorable-snapshots" / "pg") + "/")
    assert btrfs.snapshots() == left_before
    assert not os.path.exists(status_dir / "snapshot-pg-plan.json")
