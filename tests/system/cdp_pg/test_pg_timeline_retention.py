# -*- coding: utf-8 -*-
"""A restored copy promoted on a new timeline and archiving into the same store does not break
the next verification, and restores keep following production's timeline. Then base-backup
retention forgets old base backups and deletes only WAL no kept base backup needs (history files
stay), the next verification is clean, and a drill to just after the oldest kept base backup
still restores. (This module runs last: retention deletes old WAL.)"""
from __future__ import annotations

import datetime
import time

from cdp_pg_helpers import DATASET, SEGMENT_SIZE, heartbeats

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.names import (
    is_history, is_segment, position, timeline_of)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.pitr import RecoveryTarget
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.settings import archive_command

COPY = "pgmain-copy"


def archived_on(server, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while server.psql("SELECT coalesce(last_archived_wal, '') >= '%s' FROM pg_stat_archiver" % name) != "t":
        assert time.monotonic() < deadline, server.psql("SELECT row_to_json(a) FROM pg_stat_archiver a")
        time.sleep(0.05)


def test_a_promoted_copy_archiving_into_the_same_store_does_not_break_verification(cdp_pg, first_base_backup,
                                                                                   restored):
    assert cdp_pg.run().ok
    command = archive_command(str(cdp_pg.archiver_config), str(cdp_pg.agent_dir))
    copy = cdp_pg.pitr(RecoveryTarget(), "promoted-copy", settings={"archive_mode": "on", "archive_command": command})
    restored.append(copy)
    copy.psql("INSERT INTO restorable_heartbeat (dataset, at) VALUES ('%s', now())" % COPY)
    last = copy.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    copy.psql("SELECT pg_switch_wal()")
    archived_on(copy, last)
    assert timeline_of(last) == copy.timeline == 2
    copy.stop()
    stored = cdp_pg.store().list()
    assert "00000002.history" in stored and last in stored

    record = cdp_pg.run()
    assert record.ok, record.reason
    assert record.details["verify"]["new_timelines"] == [2] and record.details["verify"]["ok"]
    assert cdp_pg.verify_state()["timelines"]["2"] == last

    time.sleep(1.1)  # S3 keeps times to the second: production's next segment is the newer one
    cdp_pg.switch()
    newest = float(cdp_pg.psql("SELECT extract(epoch FROM max(at)) FROM restorable_heartbeat"))
    again = cdp_pg.pitr(RecoveryTarget(), "after-the-copy")
    restored.append(again)
    assert heartbeats(again, newest + 1, COPY)["rows"] == 0, "production's timeline, not the copy's"
    found = heartbeats(again, newest + 1)
    assert found["after"] == 0 and abs(found["newest"] - newest) < 1e-6


def test_retention_keeps_the_wal_the_oldest_kept_base_backup_needs(cdp_pg, first_base_backup):
    assert cdp_pg.run("base_backup").ok
    record = cdp_pg.run("base_backup", retention={"last": 2})
    assert record.ok, record.reason
    retention = record.details["retention"]
    kept = cdp_pg.bases()
    assert retention["kept"] == len(kept) == 2 and retention["forgot"]
    assert not any(base.id.startswith(gone) for gone in retention["forgot"] for base in kept)
    floor = min(kept, key=lambda base: base.start_wal).start_wal
    assert retention["floor"] == floor and retention["wal_deleted"] > 0

    stored = cdp_pg.store().list()
    segments = [name for name in stored if is_segment(name)]
    assert all(position(name, SEGMENT_SIZE) >= position(floor, SEGMENT_SIZE) for name in segments)
    assert floor in segments and "00000002.history" in stored and any(is_history(name) for name in stored)
    assert cdp_pg.floor() == floor

    cdp_pg.switch()
    assert cdp_pg.run().ok, "WAL removed below the floor is no gap"
    oldest = min(kept, key=lambda base: base.stop_time)
    at = oldest.stop_time + datetime.timedelta(seconds=2)
    drill = cdp_pg.drill(recovery_point={"choice": "at", "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
                         checks=["integrity", "content"])
    assert drill["result"] == "passed", drill["reason"]
    assert DATASET in drill["dataset"]
