# -*- coding: utf-8 -*-
"""Base backups in restic: their facts as tags, pairing a tar with its facts, and retention that
keeps whole chains: forgotten base backups go with their facts, WAL goes only below the oldest
kept start segment, timeline histories always stay."""
from __future__ import annotations

import datetime

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.basebackup import (
    BASE_TAG, BaseBackup, apply_retention, list_base_backups, wal_before, wal_location)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.names import segment_name

UTC = datetime.timezone.utc
SIZE = 16 << 20
T0 = datetime.datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def backup(ident: str, day: int, start: int) -> BaseBackup:
    began = T0 + datetime.timedelta(days=day)
    return BaseBackup(ident * 64, "", "restorable-pgmain-%s" % ident, 1, segment_name(1, start, SIZE), "0/%X" % (start * SIZE),
                      segment_name(1, start + 1, SIZE), "0/%X" % ((start + 1) * SIZE), began,
                      began + datetime.timedelta(minutes=5), SIZE)


class FakeRepo:
    def __init__(self, bases):
        self.snaps = []
        for index, base in enumerate(bases):
            meta = "%064x" % (index + 1)
            self.snaps.append({"id": base.id, "time": base.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "tags": ["dataset:pgmain", BASE_TAG, "label:" + base.label]})
            self.snaps.append({"id": meta, "time": base.stop_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                               "tags": base.tags("pgmain")})
        self.forgotten = []

    def snapshots(self, host=None, tags=()):
        return [s for s in self.snaps if all(t in s["tags"] for t in tags)]

    def forget_points(self, ids, prune=True, timeout=None):
        self.forgotten += list(ids)
        self.snaps = [s for s in self.snaps if s["id"] not in ids]


class FakeStore:
    def __init__(self, names):
        self.names = sorted(names)
        self.deleted = []

    def list(self, first=None):
        return [n for n in self.names if first is None or n > first]

    def delete(self, names):
        self.deleted += names
        self.names = [n for n in self.names if n not in names]


def test_facts_go_into_tags_and_come_back():
    base = backup("a", 0, 4)
    tags = base.tags("pgmain")
    assert "base:" + base.id in tags and "start_wal:%s" % segment_name(1, 4, SIZE) in tags
    assert "stop_time:2026-12-01T00:05:00.000000Z" in tags
    again = BaseBackup.from_meta({"id": "m" * 64, "tags": tags}, base.id)
    assert again.facts() == base.facts() and again.meta_id == "m" * 64


def test_a_tar_without_its_facts_is_no_base_backup():
    repo = FakeRepo([backup("a", 0, 4), backup("b", 1, 9)])
    repo.snaps = [s for s in repo.snaps if "base:" + "b" * 64 not in s["tags"]]
    bases, orphans = list_base_backups(repo, "pgmain")
    assert [b.id[0] for b in bases] == ["a"] and [o["id"][0] for o in orphans] == ["b"]


def test_the_backup_history_file_names_lsn_and_file():
    assert wal_location("0/2000028 (file 000000010000000000000002)") == ("0/2000028", "000000010000000000000002")


def test_wal_below_the_oldest_kept_start_goes_history_files_stay():
    names = [segment_name(1, n, SIZE) for n in range(1, 8)] + ["00000002.history", segment_name(2, 3, SIZE),
                                                               segment_name(1, 4, SIZE) + ".00000028.backup",
                                                               segment_name(1, 2, SIZE) + ".00000060.backup",
                                                               segment_name(1, 3, SIZE) + ".partial"]
    doomed = wal_before(names, segment_name(1, 4, SIZE), SIZE)
    assert sorted(doomed) == sorted([segment_name(1, n, SIZE) for n in (1, 2, 3)] + [
        segment_name(2, 3, SIZE), segment_name(1, 2, SIZE) + ".00000060.backup", segment_name(1, 3, SIZE) + ".partial"])


def test_retention_forgets_whole_base_backups_then_the_wal_only_they_needed():
    bases = [backup("a", 0, 2), backup("b", 1, 9), backup("c", 2, 15)]
    repo = FakeRepo(bases)
    store = FakeStore([segment_name(1, n, SIZE) for n in range(1, 20)] + ["00000002.history"])
    floors = []
    result = apply_retention(repo, store, "pgmain", {"last": 2}, on_floor=floors.append)
    assert result["kept"] == 2 and result["forgot"] == ["a" * 8] and result["floor"] == segment_name(1, 9, SIZE)
    assert set(repo.forgotten) == {"a" * 64, "%064x" % 1}, "the tar and its facts"
    assert store.deleted == [segment_name(1, n, SIZE) for n in range(1, 9)]
    assert "00000002.history" in store.names and floors == [segment_name(1, 9, SIZE)]
    again = apply_retention(repo, store, "pgmain", {"last": 2})
    assert again["forgot"] == [] and again["wal_deleted"] == 0


def test_the_newest_base_backup_is_always_kept():
    repo = FakeRepo([backup("a", 0, 2), backup("b", 1, 9)])
    result = apply_retention(repo, FakeStore([]), "pgmain", {"max_age": 1})
    assert result["kept"] == 1 and result["forgot"] == ["a" * 8]
