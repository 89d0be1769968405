# -*- coding: utf-8 -*-
"""Thinning of CDP points: young points all kept, older ones one per interval of their band,
nothing beyond max_age, the newest and the protected ones always."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.thinning import (
    ThinRule, keep_points, points_to_prune)

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc)


def every_minute(count: int, end: datetime.datetime = NOW) -> list[tuple[str, datetime.datetime]]:
    """count points a minute apart, the newest at end; named by their minutes before NOW."""
    points = []
    for back in range(count):
        when = end - datetime.timedelta(minutes=back)
        points.append(("m%04d" % int((NOW - when).total_seconds() // 60), when))
    return points


def test_without_rules_every_point_is_kept():
    points = every_minute(30)
    assert keep_points(points, NOW, []) == {name for name, _when in points}


def test_young_points_are_all_kept_older_ones_one_per_interval():
    points = every_minute(180)  # three hours, a point a minute
    kept = keep_points(points, NOW, [ThinRule(older_than=3600, keep_every=900)])
    young = {name for name, when in points if (NOW - when).total_seconds() < 3600}
    old = sorted(when for name, when in points if name in kept and name not in young)
    assert young <= kept
    # Ages 60 to 179 minutes (11:00 back to 09:01): the first point of each quarter of an hour,
    # 09:01 for the quarter that began before the oldest point.
    assert [w.strftime("%H:%M") for w in old] == [
        "09:01", "09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45", "11:00"]


def test_each_band_has_its_own_interval():
    points = every_minute(24 * 60)  # one day
    rules = [ThinRule(3600, 900), ThinRule(6 * 3600, 3600)]
    kept = keep_points(points, NOW, rules)
    ages = sorted((NOW - when).total_seconds() / 3600 for name, when in points if name in kept)
    hourly = [a for a in ages if a >= 6]
    quarterly = [a for a in ages if 1 <= a < 6]
    assert len([a for a in ages if a < 1]) == 60
    # 11:00 back to 06:15 by quarters, and 06:01: the first point of the 06:00 quarter in that band.
    assert len(quarterly) == 21
    # 06:00 back to 13:00 of the day before by hours, and 12:01 (the oldest point).
    assert len(hourly) == 19


def test_max_age_drops_everything_older_but_the_newest_and_the_protected():
    points = every_minute(60)
    kept = keep_points(points, NOW, [], max_age=600, protected={"m0059"})
    assert kept == {name for name, when in points if (NOW - when).total_seconds() <= 600} | {"m0059"}
    # The newest point stays even when it is beyond max_age itself (the job was stopped for a while).
    stale = every_minute(3, end=NOW - datetime.timedelta(days=30))
    assert keep_points(stale, NOW, [], max_age=600) == {stale[0][0]}


def test_the_choice_is_stable_as_points_age():
    """A point kept once stays kept while it ages through its band: no cascade of deletions."""
    rules = [ThinRule(600, 300)]
    points = every_minute(40)
    kept_now = keep_points(points, NOW, rules)
    later = NOW + datetime.timedelta(minutes=7)
    survivors = [(n, w) for n, w in points if n in kept_now]
    kept_later = keep_points(survivors, later, rules)
    older_than_band = {n for n, w in survivors if (NOW - w).total_seconds() >= 600}
    assert older_than_band <= kept_later


def test_points_to_prune_is_the_rest_oldest_first():
    points = every_minute(10)
    doomed = points_to_prune(points, NOW, [ThinRule(0, 3600)], protected={"m0009"})
    assert doomed == sorted(doomed, reverse=True)  # names count minutes back: oldest first
    assert "m0009" not in doomed and "m0000" not in doomed


def test_rules_are_checked():
    with pytest.raises(ValueError, match="keep_every"):
        ThinRule(60, 0)
    with pytest.raises(ValueError, match="negative"):
        ThinRule(-1, 60)
