# -*- coding: utf-8 -*-
"""Backup window math (incl. midnight and time zones) and the load gate."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.gate import (
    LoadGate, TimeWindow, wait_for_gate)

UTC = datetime.timezone.utc


def at(text: str, tz=UTC) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)


@pytest.mark.parametrize("clock, inside", [
    ("00:59", False), ("01:00", True), ("03:00", True), ("04:59", True), ("05:00", False), ("23:00", False)])
def test_same_day_window(clock, inside):
    window = TimeWindow.parse("01:00", "05:00", "UTC")
    assert window.contains(at("2026-03-10 " + clock)) is inside


@pytest.mark.parametrize("clock, inside", [
    ("21:59", False), ("22:00", True), ("23:59", True), ("00:00", True), ("05:59", True), ("06:00", False),
    ("12:00", False)])
def test_window_spanning_midnight(clock, inside):
    window = TimeWindow.parse("22:00", "06:00", "UTC")
    assert window.contains(at("2026-03-10 " + clock)) is inside


def test_equal_start_and_end_is_open_all_day():
    window = TimeWindow.parse("03:00", "03:00", "UTC")
    assert all(window.contains(at("2026-03-10 %02d:17" % h)) for h in range(24))
    assert window.closes_at(at("2026-03-10 12:00")) is None


def test_window_in_another_time_zone():
    window = TimeWindow.parse("01:00", "05:00", "Europe/Berlin")
    # 00:30 UTC is 01:30 in Berlin in winter (UTC+1) but 02:30 in summer (UTC+2).
    assert window.contains(at("2026-01-15 00:30"))
    assert window.contains(at("2026-07-15 00:30"))
    # 03:30 UTC is 04:30 in winter (inside) and 05:30 in summer (outside).
    assert window.contains(at("2026-01-15 03:30"))
    assert not window.contains(at("2026-07-15 03:30"))
    # 23:30 UTC on 14 Jan is 00:30 on 15 Jan in Berlin: outside 01:00-05:00.
    assert not window.contains(at("2026-01-14 23:30"))


def test_closes_at_across_midnight_and_zones():
    window = TimeWindow.parse("22:00", "06:00", "America/New_York")
    # 2026-01-15 04:00 UTC is 23:00 on the 14th in New York (UTC-5): closes 06:00 NY = 11:00 UTC.
    closes = window.closes_at(at("2026-01-15 04:00"))
    assert closes.astimezone(UTC) == at("2026-01-15 11:00")
    opens = window.opens_at(at("2026-01-15 12:00"))
    assert opens.astimezone(UTC) == at("2026-01-16 03:00")


def test_closes_at_on_a_dst_change_night():
    # Europe/Berlin springs forward on 2026-03-29 at 02:00 -> 03:00: the night is an hour shorter.
    window = TimeWindow.parse("22:00", "06:00", "Europe/Berlin")
    closes = window.closes_at(at("2026-03-28 22:00"))  # 23:00 Berlin, still UTC+1
    assert closes.astimezone(UTC) == at("2026-03-29 04:00")  # 06:00 CEST (UTC+2)


def test_host_time_zone_when_none_given():
    window = TimeWindow.parse("00:00", "23:59")
    assert window.timezone is None and window.describe() == "00:00-23:59 host time"


@pytest.mark.parametrize("start", ["25:00", "1:00", "aa:bb", "12:60", ""])
def test_bad_clock_names_the_field(start):
    with pytest.raises(ValueError, match=r"^schedule.window.start: expected a time HH:MM"):
        TimeWindow.parse(start, "06:00", "UTC", "schedule.window")


def test_unknown_time_zone():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        TimeWindow.parse("01:00", "02:00", "Mars/Olympus")


class FakeClock:
    """Monotonic time, wall time and sleep that only move when the gate sleeps."""

    def __init__(self, start: datetime.datetime) -> None:
        self.start = start
        self.elapsed = 0.0
        self.sleeps: list = []

    def now(self) -> datetime.datetime:
        return self.start + datetime.timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapsed += seconds


def gate_with(loads, limit=0.5, check_every=60.0, max_deferral=None, cpus=2):
    values = iter(loads)
    last = [0.0]

    def loadavg():
        try:
            last[0] = next(values)
        except StopIteration:
            pass
        return (last[0], 0.0, 0.0)
    return LoadGate(limit, check_every, max_deferral, loadavg=loadavg, cpu_count=lambda: cpus)


def test_outside_window_never_starts_and_says_when_it_opens():
    clock = FakeClock(at("2026-03-10 12:00"))
    decision = wait_for_gate(TimeWindow.parse("22:00", "06:00", "UTC"), gate_with([0.0]), clock.now, clock.sleep,
                             clock.monotonic)
    assert not decision.proceed
    assert decision.reason == "outside the backup window 22:00-06:00 UTC (now 12:00 UTC; it opens at 22:00 UTC)"
    assert clock.sleeps == []


def test_idle_host_proceeds_at_once():
    clock = FakeClock(at("2026-03-10 23:00"))
    decision = wait_for_gate(TimeWindow.parse("22:00", "06:00", "UTC"), gate_with([0.2]), clock.now, clock.sleep,
                             clock.monotonic)
    assert decision.proceed and decision.waited == 0 and clock.sleeps == []


def test_waits_while_busy_then_proceeds():
    clock = FakeClock(at("2026-03-10 23:00"))
    # 2 CPUs: 3.0 is 1.5 per CPU (busy), 0.8 is 0.4 (fine).
    decision = wait_for_gate(None, gate_with([3.0, 3.0, 0.8], check_every=60, max_deferral=3600), clock.now,
                             clock.sleep, clock.monotonic)
    assert decision.proceed and decision.waited == 120
    assert clock.sleeps == [60, 60]


def test_gives_up_after_max_deferral():
    clock = FakeClock(at("2026-03-10 23:00"))
    decision = wait_for_gate(None, gate_with([4.0], check_every=60, max_deferral=150), clock.now, clock.sleep,
                             clock.monotonic)
    assert not decision.proceed
    assert decision.reason == "load 2.00 per CPU is above 0.5 after waiting 150s (max_deferral 150s)"
    assert clock.sleeps == [60, 60, 30]  # the last pause stops at the deadline


def test_gives_up_when_the_window_closes_while_waiting():
    clock = FakeClock(at("2026-03-11 05:58"))
    decision = wait_for_gate(TimeWindow.parse("22:00", "06:00", "UTC"), gate_with([4.0], check_every=60),
                             clock.now, clock.sleep, clock.monotonic)
    assert not decision.proceed
    assert "the backup window 22:00-06:00 UTC closed after waiting 120s" in decision.reason
    assert clock.sleeps == [60, 60]


def test_without_window_or_max_deferral_a_default_limit_applies():
    clock = FakeClock(at("2026-03-10 12:00"))
    decision = wait_for_gate(None, gate_with([4.0], check_every=600), clock.now, clock.sleep, clock.monotonic)
    assert not decision.proceed and decision.waited == 3600
