# -*- coding: utf-8 -*-
"""Continuity of archived WAL: incremental (only what is new is read back), gaps named, new
timelines legal with their history file, the retention floor, and the range a restore reads."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.continuity import (
    Verifier, VerifyState, floor_path, raise_floor, read_floor, state_path)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.local import LocalStore
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.names import segment_name

SIZE = 16 << 20


def seg(number: int, timeline: int = 1) -> str:
    return segment_name(timeline, number, SIZE)


class CountingStore(LocalStore):
    """A local store that counts the files read back."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.checked: list[str] = []

    def check(self, name: str) -> str:
        self.checked.append(name)
        return super().check(name)


@pytest.fixture
def store(tmp_path):
    return CountingStore(str(tmp_path / "store"))


def archive(store: LocalStore, tmp_path, *names: str, data: dict | None = None) -> None:
    for name in names:
        source = tmp_path / "src"
        source.write_bytes((data or {}).get(name, name.encode() * 8))
        store.put(name, str(source))


def test_each_run_reads_back_only_what_was_archived_since_the_last(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2), seg(3))
    state = VerifyState()
    report = Verifier(store, SIZE).incremental(state)
    assert report.ok and report.checked == 3 and state.timelines == {1: seg(3)}
    archive(store, tmp_path, seg(4), seg(5))
    store.checked.clear()
    report = Verifier(store, SIZE).incremental(state)
    assert report.ok and store.checked == [seg(4), seg(5)] and state.timelines == {1: seg(5)}


def test_a_missing_segment_fails_by_name_and_holds_the_state_before_it(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2))
    state = VerifyState()
    Verifier(store, SIZE).incremental(state)
    archive(store, tmp_path, seg(3), seg(5), seg(6))
    report = Verifier(store, SIZE).incremental(state)
    assert not report.ok and report.missing == [seg(4)]
    assert report.problems == ["WAL segment %s is missing from %s" % (seg(4), store.describe())]
    assert state.timelines == {1: seg(3)}, "verified up to the gap, not past it"
    again = Verifier(store, SIZE).incremental(state)
    assert again.missing == [seg(4)], "found again by the next run"
    archive(store, tmp_path, seg(4))
    assert Verifier(store, SIZE).incremental(state).ok and state.timelines == {1: seg(6)}


def test_a_gap_of_several_segments_says_how_many(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(5))
    report = Verifier(store, SIZE).incremental(VerifyState())
    assert report.problems == ["WAL segment %s is missing from %s (and 2 more before %s)" % (
        seg(2), store.describe(), seg(5))]


def test_a_damaged_segment_is_named(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2), seg(3))
    with open(store.path + "/" + seg(2), "r+b") as handle:
        handle.write(b"!")
    state = VerifyState()
    report = Verifier(store, SIZE).incremental(state)
    assert not report.ok and seg(2) in report.problems[0] and "does not match its checksum" in report.problems[0]
    assert state.timelines == {1: seg(1)}


def test_a_new_timeline_with_its_history_is_legal(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2), seg(3), seg(4))
    state = VerifyState()
    Verifier(store, SIZE).incremental(state)
    # Promoted at 0/3000158: inside segment 3, which timeline 2 starts with.
    archive(store, tmp_path, "00000002.history", seg(3, 2), seg(4, 2), seg(5),
            data={"00000002.history": b"1\t0/3000158\tno recovery target specified\n"})
    report = Verifier(store, SIZE).incremental(state)
    assert report.ok, report.problems
    assert report.new_timelines == [2] and state.timelines == {1: seg(5), 2: seg(4, 2)}
    assert state.histories == ["00000002.history"]


def test_a_new_timeline_must_start_at_its_branch_point(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2), seg(3), "00000002.history", seg(4, 2),
            data={"00000002.history": b"1\t0/3000158\tx\n"})
    report = Verifier(store, SIZE).incremental(VerifyState())
    assert report.missing == [seg(3, 2)]


def test_a_timeline_without_its_history_file_is_a_problem(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2), seg(3, 2))
    report = Verifier(store, SIZE).incremental(VerifyState())
    assert report.problems == ["timeline 2 appears in %s without its history file 00000002.history" % store.describe()]


def test_a_branch_from_wal_the_parent_never_archived_is_a_gap(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2), "00000002.history", seg(6, 2), data={"00000002.history": b"1\t0/6000000\tx\n"})
    report = Verifier(store, SIZE).incremental(VerifyState())
    assert report.missing == [seg(5)] and "branches from timeline 1 at 0/6000000" in report.problems[0]


def test_wal_removed_below_the_retention_floor_is_no_gap(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2))
    state = VerifyState()
    Verifier(store, SIZE).incremental(state)
    archive(store, tmp_path, seg(3), seg(4), seg(5), seg(6))
    store.delete([seg(3), seg(4)])
    state.floor = seg(5)
    report = Verifier(store, SIZE).incremental(state)
    assert report.ok and state.timelines == {1: seg(6)}
    state.floor = seg(8)
    archive(store, tmp_path, seg(9))
    assert Verifier(store, SIZE).incremental(state).missing == [seg(8)], "below the floor only"


def test_the_state_survives_a_round_trip_and_a_damaged_one_restarts(tmp_path):
    path = state_path(str(tmp_path), "pgmain")
    VerifyState({1: seg(7), 2: seg(3, 2)}, ["00000002.history"], None, "2026-12-03T10:00:00Z").save(path)
    loaded = VerifyState.load(path, floor=seg(2))
    assert loaded.timelines == {1: seg(7), 2: seg(3, 2)} and loaded.floor == seg(2)
    assert loaded.listing_start() == seg(7)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("{broken")
    assert VerifyState.load(path).timelines == {}


def test_the_range_of_a_restore_follows_the_base_backups_timeline_and_its_branches(store, tmp_path):
    archive(store, tmp_path, seg(1), seg(2), seg(3), seg(4), seg(5), "00000002.history", seg(4, 2), seg(5, 2),
            "00000003.history", seg(2, 3), data={"00000002.history": b"1\t0/4000000\tx\n",
                                                 "00000003.history": b"1\t0/2000000\tx\n"})
    report = Verifier(store, SIZE, read_checksums=False).from_segment(seg(3))
    assert report.ok, report.problems
    assert report.last == {1: seg(5), 2: seg(5, 2)}, "timeline 3 branched before the base backup: not read"
    assert store.checked == []
    store.delete([seg(4)])
    assert Verifier(store, SIZE, read_checksums=False).from_segment(seg(3)).missing == [seg(4)]
    assert Verifier(store, SIZE, read_checksums=False).from_segment(seg(9)).missing == [seg(9)]


def test_the_floor_is_a_file_of_its_own_and_only_moves_forward(tmp_path):
    path = floor_path(str(tmp_path), "pgmain")
    assert read_floor(path) is None
    raise_floor(path, seg(9), SIZE)
    raise_floor(path, seg(4), SIZE)
    assert read_floor(path) == seg(9)
    VerifyState({1: seg(12)}).save(state_path(str(tmp_path), "pgmain"))
    assert read_floor(path) == seg(9), "a points run's save leaves it alone"
