# -*- coding: utf-8 -*-
"""core.retention.keep_by_rules: the keep rules of restic forget, applied by the host tier itself
(it must keep whole chains, which restic cannot know)."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.retention import keep_by_rules

DAY = 86400


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)


def points(*times: str) -> list[tuple[str, datetime.datetime]]:
    """Points named after their time; given newest last, handed over shuffled."""
    made = [(t, at(t)) for t in times]
    return made[1::2] + made[0::2]


def test_last_keeps_the_newest_points():
    given = points("2026-12-01T01:00", "2026-12-01T02:00", "2026-12-01T03:00", "2026-12-01T04:00")
    assert keep_by_rules(given, {"last": 2}) == {"2026-12-01T03:00", "2026-12-01T04:00"}


def test_daily_keeps_the_newest_point_of_each_of_the_newest_days():
    given = points("2026-11-29T23:00", "2026-11-30T01:00", "2026-11-30T22:00", "2026-12-01T01:00", "2026-12-01T05:00")
    assert keep_by_rules(given, {"daily": 2}) == {"2026-11-30T22:00", "2026-12-01T05:00"}
    assert keep_by_rules(given, {"daily": 10}) == {"2026-11-29T23:00", "2026-11-30T22:00", "2026-12-01T05:00"}


def test_hourly_buckets_are_clock_hours():
    given = points("2026-12-01T01:59", "2026-12-01T02:00", "2026-12-01T02:30", "2026-12-01T03:10")
    assert keep_by_rules(given, {"hourly": 2}) == {"2026-12-01T02:30", "2026-12-01T03:10"}


def test_weekly_buckets_are_iso_weeks():
    # Sunday 29 Nov and Monday 30 Nov are two weeks; 31 Dec 2026 and 1 Jan 2027 are one (2026-W53).
    given = points("2026-11-29T12:00", "2026-11-30T12:00", "2026-12-31T12:00", "2027-01-01T12:00")
    assert keep_by_rules(given, {"weekly": 3}) == {"2026-11-29T12:00", "2026-11-30T12:00", "2027-01-01T12:00"}


def test_monthly_and_yearly_buckets_are_calendar_months_and_years():
    given = points("2025-06-01T00:00", "2026-11-15T00:00", "2026-11-30T00:00", "2026-12-31T00:00", "2027-01-01T00:00")
    assert keep_by_rules(given, {"monthly": 3}) == {"2026-11-30T00:00", "2026-12-31T00:00", "2027-01-01T00:00"}
    assert keep_by_rules(given, {"yearly": 3}) == {"2025-06-01T00:00", "2026-12-31T00:00", "2027-01-01T00:00"}


def test_max_age_counts_back_from_the_newest_point_not_from_now():
    given = points("2020-01-01T00:00", "2020-01-05T00:01", "2020-01-07T00:00", "2020-01-08T00:00")
    assert keep_by_rules(given, {"max_age": 3 * DAY}) == {"2020-01-05T00:01", "2020-01-07T00:00", "2020-01-08T00:00"}


def test_a_point_exactly_max_age_old_goes_as_restic_keep_within_forgets_it():
    given = points("2026-11-25T01:00", "2026-11-25T01:01", "2026-12-02T01:00")
    assert keep_by_rules(given, {"max_age": 7 * DAY}) == {"2026-11-25T01:01", "2026-12-02T01:00"}


def test_the_rules_keep_the_union_of_what_each_keeps():
    given = points("2026-10-10T00:00", "2026-11-20T00:00", "2026-12-01T01:00", "2026-12-01T02:00", "2026-12-02T01:00")
    assert keep_by_rules(given, {"last": 1}) == {"2026-12-02T01:00"}
    assert keep_by_rules(given, {"last": 1, "daily": 2, "monthly": 3}) == {
        "2026-12-02T01:00", "2026-12-01T02:00", "2026-11-20T00:00", "2026-10-10T00:00"}


@pytest.mark.parametrize("rules", [{}, {"last": 0, "daily": 0}, {"max_age": None}])
def test_no_rule_keeps_nothing(rules):
    assert keep_by_rules(points("2026-12-01T01:00", "2026-12-02T01:00"), rules) == set()
    assert keep_by_rules([], {"last": 3, "max_age": DAY}) == set()
