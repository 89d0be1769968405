# -*- coding: utf-8 -*-
"""Drills of the CDP PostgreSQL dataset through the tier's drill entry: the latest point in time
restored into the sandbox passes every layer (restic check and WAL continuity, restore, the
archive's freshness, the heartbeat proving the time, pg_amcheck and the profile's SQL checks);
a heartbeat row from the wrong time fails the content layer."""
from __future__ import annotations

import os

from cdp_pg_helpers import DATASET


def layers(record: dict) -> dict:
    return {layer["name"]: layer for layer in record["layers"]}


def test_a_drill_restores_the_latest_point_and_proves_its_time(cdp_pg, first_base_backup):
    assert cdp_pg.run().ok  # the points job: heartbeat, switch when idle, verify
    cdp_pg.switch()
    record = cdp_pg.drill(application={"checks": ["SELECT count(*) = 100000 FROM pgbench_accounts"],
                                       "databases": ["app"]}, rto="10m")
    found = layers(record)
    assert record["result"] == "passed", record["reason"]
    assert list(found) == ["sandbox", "recovery_point", "integrity", "restore", "freshness", "content", "application",
                           "rto"]
    assert "no errors" in found["integrity"]["message"] and "continuous" in found["integrity"]["message"]
    assert found["integrity"]["details"]["wal"]["ok"]
    assert found["content"]["details"]["after"] == 0 and found["content"]["details"]["rows"] >= 1
    assert "none after the restore" in found["content"]["message"]
    assert found["application"]["details"]["checks"][0]["ok"] and "pg_amcheck" in found["application"]["message"]
    assert record["rto"]["met"] is True and record["rpo"]["met"] is True
    assert record["recovery_point"]["id"] == "latest" and record["cleaned"] is True
    assert not os.path.exists(record["restore_path"])


def test_a_drill_whose_heartbeat_proves_another_time_fails(cdp_pg, first_base_backup):
    cdp_pg.psql("INSERT INTO restorable_heartbeat (dataset, at) VALUES ('%s', now() + interval '1 hour')" % DATASET)
    try:
        cdp_pg.switch()
        record = cdp_pg.drill(checks=["content"])
    finally:
        cdp_pg.psql("DELETE FROM restorable_heartbeat WHERE at > now()")
    found = layers(record)
    assert record["result"] == "failed"
    assert found["content"]["status"] == "failed"
    assert "heartbeat row(s) are newer than the restore" in found["content"]["message"]
    assert found["restore"]["status"] == "ok", "the restore itself worked; the time it reached is wrong"
