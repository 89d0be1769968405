# -*- coding: utf-8 -*-
"""A 2-volume PostgreSQL 15 group (data directory on one subvolume, the application database in a
tablespace on the other) under write load: one quiesce window (the backup API) around both
snapshots, exported through the real Runner across small cartridges, restored from tape and
started; a drill that recalls a vaulted cartridge and starts the restored server itself."""
from __future__ import annotations

import os
from pathlib import Path

from array_helpers import tree_bytes
from db_helpers import APP_DB, gap_free_prefix

from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import run_drill
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.restore import restore_point


def layer(record: dict, name: str) -> dict:
    return next(item for item in record["layers"] if item["name"] == name)


def group_dataset(dataset, pg_group):
    """An array dataset over the session's PostgreSQL volumes (its own name, status and library)."""
    ds = dataset()
    ds.volumes = list(pg_group.volumes)
    return ds


def three_cartridges(pg_group) -> int:
    """A capacity that makes the group's full export span three cartridges."""
    return int(tree_bytes(pg_group.volumes) / 2.5)


def test_postgresql_group_exported_across_three_cartridges_restores_and_starts(
        dataset, pg_group, pg_write_load, libraries, sandboxes, restored_servers):
    ds = group_dataset(dataset, pg_group)
    load = pg_write_load("tape_rows")
    load.wait_for(300)
    library = libraries.make(three_cartridges(pg_group))
    config = ds.config(library, consistency=pg_group.consistency())
    before = load.committed
    record = ds.run(config)
    after = load.committed
    load.wait_for(after + 50)  # the server kept taking writes
    load.stop()
    assert record.ok, record.reason

    assert record.consistency["profile"] == "postgresql" and record.consistency["consistent"]
    snapshot = record.details["snapshot"]
    assert 0 < record.consistency["seconds"] == snapshot["freeze"]["seconds"] < 30
    assert sorted(snapshot["volumes"]) == sorted(str(v) for v in pg_group.volumes)
    (export,) = record.details["export"]
    assert export["kind"] == "full" and export["position"] == 1
    assert len(export["cartridges"]) == 3, export
    assert export["bytes"] > 0 and export["mb_per_second"] > 0

    sandbox = sandboxes.new()
    result = restore_point(open_library(str(library)), ds.name, "latest", str(sandbox))
    assert result["point"] == record.snapshot_id and result["cartridges"] == export["cartridges"]
    assert len(result["relocated"]["tablespaces"]) == 1 and result["relocated"]["pg_wal"] is None
    datadir = Path(result["copies"][str(pg_group.data_volume)]) / "data"
    label = result["manifest"]["label"]
    assert label and "backup_label" in label
    restored = restored_servers(datadir)
    log = restored.log_path.read_text(errors="replace")
    assert "consistent recovery state reached" in log and "starting backup recovery" in log
    (link,) = os.listdir(datadir / "pg_tblspc")
    assert os.readlink(datadir / "pg_tblspc" / link).startswith(str(sandbox) + "/")  # never production's
    restored.run(["pg_amcheck", "-d", APP_DB, "--heapallindexed", "--parent-check"])
    count, low, high = restored.psql("SELECT count(*), min(n), max(n) FROM tape_rows", APP_DB).split("|")
    rows = gap_free_prefix(int(count), int(low) if low else None, int(high) if high else None)
    assert before <= rows <= after + 1  # a committed row is counted only when its reply came back
    assert restored.psql("SELECT count(*) FROM seed", APP_DB) == "50000"


def test_a_drill_recalls_the_vaulted_cartridges_and_starts_the_restored_server(
        dataset, pg_group, libraries, sandboxes):
    ds = group_dataset(dataset, pg_group)
    pools = {"daily": {"retention_days": 35, "barcode_prefix": "VA", "vault": True}}
    library = libraries.make(three_cartridges(pg_group), pools=pools)
    record = ds.run(ds.config(library, consistency=pg_group.consistency()))
    assert record.ok, record.reason
    vaulted = record.details["library"]["vaulted"]
    assert vaulted and set(vaulted) <= set(record.details["export"][0]["cartridges"])

    params = ds.drill_params(library, sandboxes.new(), profile=pg_group.consistency(),
                             checks=["catalog", "media", "freshness", "content", "application"])
    refused = run_drill(params)
    assert refused["result"] == "failed"
    assert "in the vault" in refused["reason"] and all(barcode in refused["reason"] for barcode in vaulted)

    drill = run_drill(dict(params, recall=True, sandbox=str(sandboxes.new())))
    assert drill["result"] == "passed", drill["reason"]
    assert drill["recovery_point"]["id"] == record.snapshot_id
    media = layer(drill, "media")
    assert sorted(media["details"]["recalled"]) == sorted(vaulted)
    content = layer(drill, "content")
    assert "backup_label is the one recorded" in content["message"] and "the very snapshot exported" in content["message"]
    assert content["details"]["identical_to_snapshot"] == sorted(v.name for v in pg_group.volumes)
    application = layer(drill, "application")
    assert application["status"] == "ok" and "pg_amcheck" in application["message"]
    assert drill["rto"]["seconds"] > 0 and drill["rto"]["met"] is True
    locations = {c["barcode"]: c["location"]["kind"] for c in open_library(str(library)).inventory()["cartridges"]}
    assert all(locations[barcode] == "slot" for barcode in vaulted)
