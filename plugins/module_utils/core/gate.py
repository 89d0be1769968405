# -*- coding: utf-8 -*-
# Private to restorable.backup: when a run may start (backup window) and the load gate.
from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from typing import Callable

_ONE_DAY = datetime.timedelta(days=1)


def load_timezone(name: str | None) -> datetime.tzinfo | None:
    """The zoneinfo zone for an IANA name; None means the host's local time."""
    if not name:
        return None
    try:
        import zoneinfo  # Python 3.9+; imported here so the rest works on older hosts
    except ImportError:
        raise ValueError("time zone %s needs Python 3.9 or later (zoneinfo)" % name) from None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("unknown time zone %r (is tzdata installed?)" % name) from None


def parse_clock(text: str, field_name: str) -> datetime.time:
    """A HH:MM wall-clock time."""
    try:
        hours, minutes = text.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return datetime.time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise ValueError("%s: expected a time HH:MM (24 hours), got %r" % (field_name, text)) from None


@dataclass(frozen=True)
class TimeWindow:
    """Time of day runs may start: [start, end) in a time zone; end <= start spans midnight.

    start == end means the window is open all day.
    """

    start: datetime.time
    end: datetime.time
    timezone: str | None = None
    tz: datetime.tzinfo | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, start: str, end: str, timezone: str | None = None, field_name: str = "window") -> "TimeWindow":
        return cls(parse_clock(start, field_name + ".start"), parse_clock(end, field_name + ".end"),
                   timezone, load_timezone(timezone))

    def describe(self) -> str:
        zone = self.timezone or "host time"
        return "%s-%s %s" % (self.start.strftime("%H:%M"), self.end.strftime("%H:%M"), zone)

    def local(self, when: datetime.datetime) -> datetime.datetime:
        """when (aware) as wall-clock time of the window's zone."""
        return when.astimezone(self.tz) if self.tz is not None else when.astimezone()

    def contains(self, when: datetime.datetime) -> bool:
        if self.start == self.end:
            return True
        clock = self.local(when).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def closes_at(self, when: datetime.datetime) -> datetime.datetime | None:
        """The first closing time after `when` (aware), or None for an all-day window."""
        if self.start == self.end:
            return None
        return self._next(when, self.end)

    def opens_at(self, when: datetime.datetime) -> datetime.datetime | None:
        """The next opening time after `when` (aware), or None for an all-day window."""
        if self.start == self.end:
            return None
        return self._next(when, self.start)

    def _next(self, when: datetime.datetime, clock: datetime.time) -> datetime.datetime:
        local = self.local(when)
        tz = local.tzinfo
        candidate = datetime.datetime.combine(local.date(), clock).replace(tzinfo=tz)
        if _to_utc(candidate) <= _to_utc(when):
            candidate = datetime.datetime.combine(local.date() + _ONE_DAY, clock).replace(tzinfo=tz)
        return candidate


def _to_utc(when: datetime.datetime) -> datetime.datetime:
    # Comparing aware datetimes across zoneinfo zones is exact only in UTC (PEP 495 folds).
    return when.astimezone(datetime.timezone.utc)


@dataclass
class LoadGate:
    """Defer while the 1-minute load average per CPU is above a threshold."""

    max_load_per_cpu: float
    check_every: float = 60.0
    max_deferral: float | None = None
    loadavg: Callable[[], tuple] = os.getloadavg
    cpu_count: Callable[[], int | None] = os.cpu_count

    def load_per_cpu(self) -> float:
        return self.loadavg()[0] / max(1, self.cpu_count() or 1)

    def busy(self) -> bool:
        return self.load_per_cpu() > self.max_load_per_cpu


@dataclass
class GateDecision:
    proceed: bool
    reason: str = ""
    waited: float = 0.0


# Without a window or an explicit max_deferral, a busy host is waited for at most this long.
DEFAULT_MAX_DEFERRAL = 3600.0


def wait_for_gate(window: TimeWindow | None, load_gate: LoadGate | None,
                  now: Callable[[], datetime.datetime] | None = None,
                  sleep: Callable[[float], None] = time.sleep,
                  monotonic: Callable[[], float] = time.monotonic) -> GateDecision:
    """Decide whether a run starts now, waiting for the load gate within the window.

    Outside the window nothing starts. While the host is busy the run waits, looking
    every check_every, until the load drops (proceed), the window closes or max_deferral
    passes (deferred with the reason).
    """
    now = now or _utcnow
    if window is not None:
        current = now()
        if not window.contains(current):
            opens = window.opens_at(current)
            return GateDecision(False, "outside the backup window %s (now %s; it opens at %s)" % (
                window.describe(), _clock(window.local(current)), _clock(window.local(opens))))
    if load_gate is None:
        return GateDecision(True)
    started = monotonic()
    limit = load_gate.max_deferral
    if limit is None and window is None:
        limit = DEFAULT_MAX_DEFERRAL
    while True:
        load = load_gate.load_per_cpu()
        waited = monotonic() - started
        if load <= load_gate.max_load_per_cpu:
            return GateDecision(True, "", waited)
        busy = "load %.2f per CPU is above %.4g" % (load, load_gate.max_load_per_cpu)
        current = now()
        if window is not None and not window.contains(current):
            return GateDecision(False, "%s and the backup window %s closed after waiting %ds" % (
                busy, window.describe(), waited), waited)
        if limit is not None and waited >= limit:
            return GateDecision(False, "%s after waiting %ds (max_deferral %ds)" % (busy, waited, limit), waited)
        pause = load_gate.check_every
        if limit is not None:
            pause = min(pause, max(0.0, limit - waited))
        if window is not None:
            closes = window.closes_at(current)
            if closes is not None:
                pause = min(pause, max(0.0, (_to_utc(closes) - _to_utc(current)).total_seconds()))
        # Never spin: a zero pause still yields at least a short sleep.
        sleep(max(pause, 0.05))


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _clock(when: datetime.datetime | None) -> str:
    if when is None:
        return "-"
    return when.strftime("%H:%M %Z").strip()
