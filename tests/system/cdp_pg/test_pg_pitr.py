# -*- coding: utf-8 -*-
"""Base backups stream into restic; point-in-time restores into a sandbox land exactly: at three
times, at a named restore point (older than the newest base backup: the restore falls back to
the one before it), at an LSN, and at the latest archived WAL. The heartbeat rows prove where:
the newest restored row is production's newest row at or before the target, and none is newer."""
from __future__ import annotations

import datetime
import time

from cdp_pg_helpers import DATASET, heartbeats

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.pitr import RecoveryTarget

UTC = datetime.timezone.utc


def newest_at_or_before(cdp_pg, target: float) -> float:
    """Production's newest heartbeat row at or before target (seconds since the epoch)."""
    return float(cdp_pg.psql("SELECT extract(epoch FROM max(at)) FROM restorable_heartbeat WHERE dataset = '%s' "
                             "AND at <= to_timestamp(%r)" % (DATASET, target)))


def test_a_base_backup_is_a_tar_in_restic_with_its_facts_beside_it(cdp_pg, first_base_backup):
    facts = first_base_backup.details["base_backup"]
    assert first_base_backup.snapshot_id == facts["id"] and facts["meta_id"]
    assert facts["start_wal"] <= facts["stop_wal"] and facts["timeline"] == 1
    base = next(b for b in cdp_pg.bases() if b.id.startswith(facts["id"]))
    assert base.segment_size == 1 << 20 and base.start_lsn == facts["start_lsn"]
    stored = cdp_pg.store().list()
    assert facts["start_wal"] in stored and facts["stop_wal"] in stored
    assert any(name.startswith(facts["start_wal"]) and name.endswith(".backup") for name in stored)
    files = cdp_pg.repo().list_files(base.id)
    assert files == ["/postgresql/base.tar"]


def test_restores_to_three_times_land_exactly(cdp_pg, first_base_backup, restored):
    rows = []
    for _row in range(7):
        rows.append(cdp_pg.heartbeat())
        time.sleep(0.3)
    cdp_pg.switch()
    for index in (1, 3, 5):
        target = rows[index] + 0.15  # after row index committed, before row index + 1 began
        server = cdp_pg.pitr(RecoveryTarget("time", time=datetime.datetime.fromtimestamp(target, UTC)),
                             "time-%d" % index)
        restored.append(server)
        found = heartbeats(server, target)
        assert found["after"] == 0, "no row newer than the target"
        assert abs(found["newest"] - rows[index]) < 1e-6, "the row just before the target"
        assert abs(newest_at_or_before(cdp_pg, target) - rows[index]) < 1e-6
        assert server.timeline == 2, "promoted on a new timeline of its own"
        server.stop()


def test_restores_to_a_named_restore_point_and_to_an_lsn(cdp_pg, first_base_backup, restored):
    before = cdp_pg.heartbeat()
    cdp_pg.psql("SELECT pg_create_restore_point('restorable-before-release')")
    second = cdp_pg.run("base_backup")  # newer than the restore point: the restore must use the first
    assert second.ok, second.reason
    during = cdp_pg.heartbeat()
    lsn = cdp_pg.psql("SELECT pg_current_wal_lsn()")
    after = cdp_pg.heartbeat()
    cdp_pg.switch()

    named = cdp_pg.pitr(RecoveryTarget("name", name="restorable-before-release"), "named")
    restored.append(named)
    found = heartbeats(named, before)
    assert found["after"] == 0 and abs(found["newest"] - before) < 1e-6
    assert [a["result"] for a in named.attempts][-1] == "reached" and len(named.attempts) >= 2
    assert named.attempts[0]["base_backup"] == second.snapshot_id[:8]
    assert "ends before name restorable-before-release" in named.attempts[0]["result"]
    named.stop()

    at_lsn = cdp_pg.pitr(RecoveryTarget("lsn", lsn=lsn), "lsn")
    restored.append(at_lsn)
    found = heartbeats(at_lsn, during)
    assert found["after"] == 0 and abs(found["newest"] - during) < 1e-6, "the row before the LSN, not the one after"
    assert at_lsn.base.id.startswith(second.snapshot_id), "the newest base backup that stopped before the LSN"
    assert after > during


def test_a_restore_to_the_latest_archived_wal_has_the_newest_heartbeat(cdp_pg, first_base_backup, restored):
    cdp_pg.switch()  # its heartbeat row is the newest
    newest = newest_at_or_before(cdp_pg, time.time() + 60)
    server = cdp_pg.pitr(RecoveryTarget(), "latest")
    restored.append(server)
    found = heartbeats(server, newest)
    assert found["after"] == 0 and abs(found["newest"] - newest) < 1e-6
    assert server.psql("SELECT count(*) FROM pgbench_accounts", "app") == "100000"
