# -*- coding: utf-8 -*-
"""Point-in-time restore planning: the recovery settings of each target kind, the base backup
chosen for a target, the timeline followed, and the drill's choice of a point in time."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import DrillError
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.basebackup import BaseBackup
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.drill import PgRestoreDriver
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.local import LocalStore
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.names import segment_name
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.pitr import (
    PitrError, RecoveryTarget, Restorer, candidate_bases, recovery_timeline)

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SIZE = 16 << 20


def base(ident: str, minutes: int, start: int, timeline: int = 1) -> BaseBackup:
    """A base backup taken `minutes` after T0, starting at segment `start`, 30 s long."""
    began = T0 + datetime.timedelta(minutes=minutes)
    return BaseBackup(ident, "m" + ident, "restorable-x", timeline, segment_name(timeline, start, SIZE),
                      "0/%X" % (start * SIZE + 0x28), segment_name(timeline, start, SIZE), "0/%X" % (start * SIZE + 0x138),
                      began, began + datetime.timedelta(seconds=30), SIZE)


BASES = [base("a" * 64, 0, 2), base("b" * 64, 60, 9), base("c" * 64, 120, 20)]


def test_each_kind_sets_its_own_target_and_empties_the_others():
    settings = dict(RecoveryTarget("time", time=T0).settings("1"))
    assert settings["recovery_target_time"] == "2026-12-01 12:00:00.000000+00"
    assert settings["recovery_target_lsn"] == settings["recovery_target_name"] == settings["recovery_target"] == ""
    assert settings["recovery_target_action"] == "promote" and settings["recovery_target_timeline"] == "1"
    names = [name for name, _value in RecoveryTarget("lsn", lsn="0/3000158").settings("latest")]
    assert names.index("recovery_target_lsn") > names.index("recovery_target_time"), "emptied first, then set"
    assert "recovery_target_time" not in [n for n, v in RecoveryTarget().settings("latest") if v]


def test_a_target_is_checked_when_made():
    with pytest.raises(PitrError, match="time zone"):
        RecoveryTarget("time", time=datetime.datetime(2026, 12, 1))
    with pytest.raises(ValueError):
        RecoveryTarget("lsn", lsn="nonsense")
    with pytest.raises(PitrError, match="kind 'xid'"):
        RecoveryTarget("xid")


def test_the_base_backup_is_the_newest_that_stopped_before_the_target():
    def chosen(target):
        return [b.id[0] for b in candidate_bases(BASES, target)]
    assert chosen(RecoveryTarget("time", time=T0 + datetime.timedelta(minutes=90))) == ["b"]
    assert chosen(RecoveryTarget("time", time=T0 + datetime.timedelta(seconds=30))) == [], "the same second: not yet"
    assert chosen(RecoveryTarget("time", time=T0 + datetime.timedelta(seconds=31))) == ["a"]
    assert chosen(RecoveryTarget("lsn", lsn="0/%X" % (15 * SIZE))) == ["b"]
    assert chosen(RecoveryTarget()) == ["c"]
    assert chosen(RecoveryTarget("name", name="before-upgrade")) == ["c", "b", "a"], "newest first, then older"


def test_a_sandbox_inside_the_production_data_directory_is_refused(tmp_path):
    production = tmp_path / "pgdata"
    restorer = Restorer(None, "true", str(production / "restore"), [str(production)])
    with pytest.raises(PitrError, match="is inside protected path"):
        restorer.run(BASES, RecoveryTarget())
    with pytest.raises(PitrError, match="contains protected path"):
        Restorer(None, "true", str(tmp_path), [str(production)]).run(BASES, RecoveryTarget())
    assert not production.exists(), "nothing was written"


def test_no_base_backup_before_the_target_is_said_plainly(tmp_path):
    with pytest.raises(PitrError, match="no base backup ends before time 2026-12-01 11:00"):
        Restorer(None, "true", str(tmp_path / "s")).run(BASES, RecoveryTarget("time", time=T0 - datetime.timedelta(hours=1)))


def archive(store: LocalStore, tmp_path, name: str, data: bytes = b"x") -> None:
    source = tmp_path / "src"
    source.write_bytes(data)
    store.put(name, str(source))


def test_the_timeline_followed_is_the_one_still_archived_when_it_continues_the_backup(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    archive(store, tmp_path, segment_name(1, 20, SIZE))
    # Timeline 2 forked off at segment 5 (a restored copy archiving here): before base c.
    archive(store, tmp_path, "00000002.history", b"1\t0/5000000\tcopy\n")
    archive(store, tmp_path, segment_name(2, 5, SIZE))
    assert recovery_timeline(store, BASES[2]) == 1, "timeline 2 forked off before the backup"
    assert recovery_timeline(store, BASES[0]) == 2, "the newest archived, and it continues base a"
    archive(store, tmp_path, segment_name(1, 21, SIZE))
    assert recovery_timeline(store, BASES[0]) == 1, "timeline 1 is the one still archived"
    # Production itself moved to timeline 3, forked off after base c.
    archive(store, tmp_path, "00000003.history", b"1\t0/16000000\tfailover\n")
    archive(store, tmp_path, segment_name(3, 22, SIZE))
    assert recovery_timeline(store, BASES[2]) == 3


def test_a_drill_picks_its_point_in_time_inside_the_archive_with_the_engine_rules(tmp_path):
    driver = PgRestoreDriver(None, LocalStore(str(tmp_path)), "pgmain", "true")
    driver.bases = BASES
    newest = T0 + datetime.timedelta(hours=3)
    points = [driver_point(b) for b in BASES] + [latest_point(newest)]
    now = newest + datetime.timedelta(minutes=1)
    latest = driver.choose_point(points, {"choice": "latest"}, now)
    assert latest.time == newest and latest.extra["target"].kind == "latest"
    first = driver.choose_point(points, {"choice": "random", "within_days": 1, "seed": 7}, now)
    again = driver.choose_point(points, {"choice": "random", "within_days": 1, "seed": 7}, now)
    assert first.time == again.time and BASES[0].stop_time < first.time <= newest
    assert first.extra["target"].kind == "time"
    at = driver.choose_point(points, {"choice": "at", "at": "2026-12-01T13:30:00Z"}, now)
    assert at.time == T0 + datetime.timedelta(minutes=90)
    assert driver.choose_point(points, {"choice": "at", "at": "2026-12-01T11:00:00Z"}, now) is None
    with pytest.raises(DrillError, match="within_days must be at least 1"):
        driver.choose_point(points, {"choice": "random"}, now)


def driver_point(backup: BaseBackup):
    from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import RecoveryPoint
    return RecoveryPoint(backup.id, backup.stop_time, backup.short_id, [], {"base": backup})


def latest_point(when: datetime.datetime):
    from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import RecoveryPoint
    return RecoveryPoint("wal:x", when, "x", [], {"latest": True})
