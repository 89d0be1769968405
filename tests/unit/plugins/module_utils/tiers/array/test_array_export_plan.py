# -*- coding: utf-8 -*-
"""When a point is due, full or incremental, and which snapshots thinning may delete."""
from __future__ import annotations

import datetime

from ansible_collections.restorable.backup.plugins.module_utils.snapshot.group import recovery_point_id
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.export import plan_export
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.state import ExportState, Exported
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.thin import point_time, snapshots_to_delete
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.thinning import ThinRule

NOW = datetime.datetime(2026, 12, 3, 18, 0, tzinfo=datetime.timezone.utc)


def point(minutes_ago: float) -> str:
    return recovery_point_id(NOW - datetime.timedelta(minutes=minutes_ago))


P1, P2, P3 = point(30), point(20), point(10)


def test_the_first_export_starts_a_chain_named_after_its_full_point():
    plan = plan_export(P1, None, 7, [P1], [])
    assert (plan.kind, plan.chain, plan.position, plan.base) == ("full", P1, 1, None)
    assert plan.reason == "no point of the dataset was exported yet"


def test_incremental_against_the_last_exported_point_while_the_chain_allows():
    plan = plan_export(P2, Exported(P1, P1, 1), 3, [P1, P2], [P1])
    assert (plan.kind, plan.chain, plan.position, plan.base) == ("incremental", P1, 2, P1)
    plan = plan_export(P3, Exported(P2, P1, 2), 3, [P2, P3], [P1, P2])
    assert (plan.kind, plan.position, plan.base) == ("incremental", 3, P2)


def test_a_chain_at_chain_length_starts_a_new_full():
    plan = plan_export(P3, Exported(P2, P1, 3), 3, [P2, P3], [P1, P2])
    assert (plan.kind, plan.chain, plan.position) == ("full", P3, 1)
    assert plan.reason == "chain %s reached chain_length 3" % P1


def test_a_parent_missing_locally_or_on_tape_makes_a_full():
    assert plan_export(P3, Exported(P2, P1, 2), 7, [P3], [P1, P2]).reason == \
        "the last exported point %s is no longer on the storage host" % P2
    assert plan_export(P3, Exported(P2, P1, 2), 7, [P2, P3], [P1]).reason == \
        "the last exported point %s is not in the library's catalog" % P2


def test_every_nth_snapshot_is_due_and_a_failed_one_stays_due(tmp_path):
    state = ExportState.load(str(tmp_path / "d.array.json"))
    due = [state.count_snapshot(p, 3) for p in (P1, P2, P3)]
    assert due == [False, False, True] and state.pending == [P3]
    state.save()
    again = ExportState.load(state.path)  # the export failed: the next run still has it due
    assert again.pending == [P3] and again.since_export == 0 and again.last is None
    again.exported(Exported(P3, P3, 1))
    again.save()
    done = ExportState.load(state.path)
    assert done.pending == [] and done.last == Exported(P3, P3, 1)


def test_every_one_makes_each_snapshot_due(tmp_path):
    state = ExportState.load(str(tmp_path / "d.array.json"))
    assert state.count_snapshot(P1, 1) and state.count_snapshot(P2, 1) and state.pending == [P1, P2]


def test_an_unreadable_state_starts_afresh(tmp_path):
    path = tmp_path / "d.array.json"
    path.write_text("{not json")
    state = ExportState.load(str(path))
    assert state.pending == [] and state.last is None


def test_point_ids_are_the_group_snapshot_times():
    assert point_time(P1) == NOW - datetime.timedelta(minutes=30)


def test_without_rules_nothing_is_deleted():
    assert snapshots_to_delete([P1, P2, P3], NOW, {}, [], set()) == []


def test_keep_rules_delete_the_rest_but_never_the_newest():
    assert snapshots_to_delete([P1, P2, P3], NOW, {"last": 1}, [], set()) == [P1, P2]
    assert snapshots_to_delete([P1, P2, P3], NOW, {"last": 0, "max_age": 1}, [], set()) == [P1, P2]


def test_thinning_never_deletes_the_incremental_base_nor_a_point_due_for_export():
    points = [point(m) for m in (300, 240, 180, 120, 60, 5)]
    rules = [ThinRule(60, 86400)]  # older than a minute: one point a day
    doomed = snapshots_to_delete(points, NOW, {}, rules, set())
    assert doomed == points[1:5]  # the oldest of the day stays, and the newest
    base, due = points[2], points[4]
    assert snapshots_to_delete(points, NOW, {}, rules, {base, due}) == [points[1], points[3]]


def test_keep_rules_and_thinning_keep_what_either_keeps():
    points = [point(m) for m in (300, 240, 180, 5)]
    assert snapshots_to_delete(points, NOW, {"last": 2}, [ThinRule(60, 86400)], set()) == [points[1]]
