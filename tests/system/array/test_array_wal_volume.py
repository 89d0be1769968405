# -*- coding: utf-8 -*-
"""PostgreSQL 15 with pg_wal on a second volume of the group (initdb -X) under write load: the
backup API's WAL goes into the WAL volume's snapshot (consistency/postgresql.py
snapshot_wal_directory), the 2-volume group is exported through the real Runner across small
cartridges, restored from tape and started; the restored server writes its WAL into the restored
WAL volume in the sandbox, never into production's."""
from __future__ import annotations

import os
from pathlib import Path

from array_helpers import tree_bytes
from db_helpers import APP_DB, gap_free_prefix

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.restore import restore_point


def test_postgresql_with_pg_wal_on_a_second_volume_is_restored_from_tape_and_starts(
        dataset, pg_wal_group, pg_wal_write_load, libraries, sandboxes, restored_servers):
    ds = dataset()
    ds.volumes = list(pg_wal_group.volumes)
    load = pg_wal_write_load("wal_rows")
    load.wait_for(300)
    # The stream of both volumes is larger than the volumes' files: at least three cartridges.
    library = libraries.make(int(tree_bytes(ds.volumes) / 2.5))
    before = load.committed
    record = ds.run(ds.config(library, consistency=pg_wal_group.consistency()))
    after = load.committed
    load.wait_for(after + 50)  # the server kept taking writes
    load.stop()
    assert record.ok, record.reason

    assert record.consistency["profile"] == "postgresql" and record.consistency["consistent"]
    snapshot = record.details["snapshot"]
    assert sorted(snapshot["volumes"]) == sorted(str(v) for v in ds.volumes)
    # The WAL that completes the backup was copied into the WAL volume's snapshot, nothing into the data one's.
    wal_snapshot = ds.snapshot(pg_wal_group.wal_volume, record.snapshot_id) / "wal"
    data_snapshot = ds.snapshot(pg_wal_group.data_volume, record.snapshot_id) / "data"
    assert os.readlink(data_snapshot / "pg_wal") == str(pg_wal_group.wal_directory)
    assert (data_snapshot / "backup_label").is_file()
    assert any(len(name) == 24 for name in os.listdir(wal_snapshot))
    (export,) = record.details["export"]
    assert export["kind"] == "full" and export["position"] == 1
    assert len(export["cartridges"]) >= 3, export

    sandbox = sandboxes.new()
    result = restore_point(open_library(str(library)), ds.name, "latest", str(sandbox))
    assert result["point"] == record.snapshot_id and result["cartridges"] == export["cartridges"]
    restored_wal = Path(result["copies"][str(pg_wal_group.wal_volume)]) / "wal"
    assert restored_wal.is_relative_to(sandbox)
    assert result["relocated"] == {"tablespaces": {}, "pg_wal": str(restored_wal)}
    datadir = Path(result["copies"][str(pg_wal_group.data_volume)]) / "data"
    assert os.readlink(datadir / "pg_wal") == str(restored_wal)  # never production's

    restored = restored_servers(datadir)
    log = restored.log_path.read_text(errors="replace")
    assert "consistent recovery state reached" in log and "starting backup recovery" in log
    # The WAL the restored server writes now is in the sandbox's copy of the WAL volume.
    restored.psql("CREATE TABLE after_restore AS SELECT 1 AS n", APP_DB)
    current = restored.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    assert (restored_wal / current).is_file()
    restored.run(["pg_amcheck", "-d", APP_DB, "--heapallindexed", "--parent-check"])
    count, low, high = restored.psql("SELECT count(*), min(n), max(n) FROM wal_rows", APP_DB).split("|")
    rows = gap_free_prefix(int(count), int(low) if low else None, int(high) if high else None)
    assert before <= rows <= after + 1  # a committed row is counted only when its reply came back
