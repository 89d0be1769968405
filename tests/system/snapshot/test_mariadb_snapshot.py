# -*- coding: utf-8 -*-
"""MariaDB read lock around a btrfs snapshot: the copy starts (InnoDB recovery) and checks clean."""
from __future__ import annotations

import os
import time

import pytest

from db_helpers import APP_DB, chown_tree, gap_free_prefix, mariadb_start
from snapshot_helpers import copy_tree, group_snapshot, is_read_only, status_of

from ansible_collections.restorable.backup.plugins.module_utils.snapshot.provider import SnapshotError


def mariadb_consistency(db) -> dict:
    return {"type": "mariadb", "max_freeze": "30s", "mariadb": {"mode": "read_lock", "socket": str(db.server.socket)}}


def test_read_lock_snapshot_restores_with_innodb_recovery(mariadb_on_btrfs, mariadb_write_load, sandboxes, status_dir):
    load = mariadb_write_load("snap_rows")
    load.wait_for(300)
    engine = group_snapshot("mariadb", [mariadb_on_btrfs.volume], mariadb_consistency(mariadb_on_btrfs), status_dir)
    before = load.committed
    manifest = engine.take()
    after = load.committed
    load.wait_for(after + 50)  # writers went on after the unlock
    load.stop()

    snapshot = manifest["volumes"][0]["snapshot"]
    assert manifest["consistent"] and manifest["profile"] == "mariadb" and is_read_only(snapshot)
    assert 0 < manifest["freeze_seconds"] < 30
    assert status_of(status_dir, "mariadb")["consistency"]["seconds"] == manifest["freeze_seconds"]

    root = sandboxes.new_root()
    datadir = copy_tree(os.path.join(snapshot, "data"), root / "data")
    chown_tree(root, "mysql")
    restored = mariadb_start(root, datadir)
    sandboxes.servers.append(restored)
    for table in ("seed", "snap_rows"):
        checked = restored.sql("CHECK TABLE %s.%s" % (APP_DB, table))
        assert checked.splitlines()[-1].split("\t")[-1] == "OK", checked
    count, low, high = restored.sql("SELECT count(*), min(n), max(n) FROM snap_rows", db=APP_DB).split("\t")
    rows = gap_free_prefix(int(count), None if low == "NULL" else int(low), None if high == "NULL" else int(high))
    assert before <= rows <= after + 1
    assert restored.sql("SELECT count(*) FROM seed", db=APP_DB) == "20000"
    engine.delete(manifest["id"])


def test_failed_snapshot_releases_the_lock(mariadb_on_btrfs, mariadb_write_load, btrfs, status_dir):
    plain = btrfs.root / "plain-dir-mariadb"
    plain.mkdir(exist_ok=True)
    load = mariadb_write_load("fault_rows")
    load.wait_for(50)
    engine = group_snapshot("mariadb-fault", [mariadb_on_btrfs.volume, plain], mariadb_consistency(mariadb_on_btrfs),
                            status_dir)
    left_before = btrfs.snapshots()
    with pytest.raises(SnapshotError, match="plain-dir-mariadb"):
        engine.take()
    assert btrfs.snapshots() == left_before
    committed = load.committed
    deadline = time.monotonic() + 5
    while load.committed < committed + 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert load.committed >= committed + 50, "the writer is still blocked: %s" % load.error
    load.stop()
    status = status_of(status_dir, "mariadb-fault")
    assert status["result"] == "failed" and status["consistency"]["profile"] == "mariadb"
