# -*- coding: utf-8 -*-
# Private to restorable.backup: enough of systemd.time(7) calendar events to tell how far apart
# runs can be, so the controller can check a schedule against an RPO before any host is touched.
from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass

_SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
}
_WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_WEEKDAY_RE = re.compile(r"^[A-Za-z]{3}[A-Za-z]*((\.\.|,)[A-Za-z]{3}[A-Za-z]*)*$")
# Two years of days cover yearly events, leap days aside.
_HORIZON_DAYS = 800
_DAY_MINUTES = 1440


class CalendarError(ValueError):
    """The expression is outside what this parser understands or is not a calendar event."""

    verb = "cannot read"


class NonRecurringCalendar(CalendarError):
    """A valid event limited to some years: it stops firing, which no schedule may do."""

    verb = "cannot use"


@dataclass(frozen=True)
class CalendarEvent:
    weekdays: frozenset
    months: frozenset
    days: frozenset
    minutes_of_day: tuple
    timezone: str | None = None  # the zone the times are in; None: the host's

    def fires_on(self, day: datetime.date) -> bool:
        return day.weekday() in self.weekdays and day.month in self.months and day.day in self.days

    def firing_days(self, start: datetime.date) -> list:
        return [n for n in range(_HORIZON_DAYS) if self.fires_on(start + datetime.timedelta(days=n))]


def _expand(field: str, low: int, high: int, names: dict | None = None) -> frozenset:
    """Values of one component: '*', 'a,b', 'a..b', 'a/step', '*/step'."""
    values: set = set()
    for part in field.split(","):
        step, stepped = 1, "/" in part
        if stepped:
            part, step_text = part.split("/", 1)
            step = _number(step_text, 1, high)
        if part == "*":
            first, last = low, high
        elif ".." in part:
            first_text, last_text = part.split("..", 1)
            first, last = _value(first_text, low, high, names), _value(last_text, low, high, names)
        else:
            first = _value(part, low, high, names)
            last = high if stepped else first  # 'a/step' repeats from a, also with step 1 ('0/1': every minute)
        if first > last:
            raise CalendarError("range %s runs backwards" % part)
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, low: int, high: int, names: dict | None) -> int:
    if names is not None:
        key = text[:3].lower()
        if key not in names:
            raise CalendarError("unknown weekday %r" % text)
        return names[key]
    return _number(text, low, high)


def _number(text: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()):  # isdigit() alone is true for '\u00b2', which int() rejects
        raise CalendarError("%r is not a number" % text)
    value = int(text) if len(text) <= 9 else high + 1  # int() refuses very long digit strings
    if not low <= value <= high:
        raise CalendarError("%s is outside %d..%d" % (text, low, high))
    return value


def _is_time_zone(part: str) -> bool:
    """UTC or an area/location name; dates and times hold no letters, and times hold ':'."""
    return part.upper() == "UTC" or ("/" in part and ":" not in part and any(c.isalpha() for c in part))


@functools.lru_cache(maxsize=4096)
def parse_calendar(expression: str) -> CalendarEvent:
    """Parse 'DOW MM-DD HH:MM[:SS] [ZONE]' with optional parts; seconds are ignored. A year
    (YYYY-MM-DD) is refused: the event would stop firing, so it cannot be a schedule."""
    if not expression.strip():
        raise CalendarError("the calendar is empty")
    text = _SHORTHANDS.get(expression.strip().lower(), expression.strip())
    parts = text.split()
    weekdays = frozenset(range(7))
    if parts and _WEEKDAY_RE.match(parts[0]) and parts[0].lower() not in ("utc",):
        weekdays = _expand(parts.pop(0), 0, 6, _WEEKDAYS)
    timezone = None
    if parts and _is_time_zone(parts[-1]):
        timezone = parts.pop()  # shifts wall time, not gaps; the caller decides what it means for a window
    date_part, time_part = "*-*-*", "00:00:00"
    for part in parts:
        if "-" in part and ":" not in part:
            date_part = part
        elif ":" in part:
            time_part = part
        else:
            raise CalendarError("cannot read %r" % part)
    if len(parts) > 2:
        raise CalendarError("too many parts")
    date_fields = date_part.split("-")
    if len(date_fields) == 2:
        date_fields.insert(0, "*")
    if len(date_fields) != 3 or "~" in date_part:
        raise CalendarError("cannot read date %r" % date_part)
    if date_fields[0] != "*":
        years = _expand(date_fields[0], 1970, 2199)
        raise NonRecurringCalendar("it fires only in %s; a schedule must repeat" % _years_text(date_fields[0], years))
    time_fields = time_part.split(":")
    if len(time_fields) not in (2, 3):
        raise CalendarError("cannot read time %r" % time_part)
    hours = _expand(time_fields[0], 0, 23)
    minutes = _expand(time_fields[1], 0, 59)
    return CalendarEvent(
        weekdays=weekdays,
        months=_expand(date_fields[1], 1, 12),
        days=_expand(date_fields[2], 1, 31),
        minutes_of_day=tuple(sorted(h * 60 + m for h in hours for m in minutes)),
        timezone=timezone,
    )


def _years_text(field: str, years: frozenset) -> str:
    """'2026', '2026 and 2027', '2026..2030', or the field as written for anything longer."""
    ordered = sorted(years)
    if len(ordered) == 1:
        return str(ordered[0])
    if len(ordered) == 2:
        return "%d and %d" % tuple(ordered)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return "%d..%d" % (ordered[0], ordered[-1])
    return "the years %s" % field


def calendar_timezone(expression: str) -> str | None:
    """The time zone a calendar names (its times are in that zone), or None."""
    return parse_calendar(expression).timezone


@dataclass(frozen=True)
class Window:
    start_minute: int
    end_minute: int

    @classmethod
    def from_policy(cls, window: dict) -> "Window":
        return cls(_clock_minutes(window["start"]), _clock_minutes(window["end"]))

    @property
    def length_minutes(self) -> int:
        return (self.end_minute - self.start_minute) % _DAY_MINUTES or _DAY_MINUTES

    def contains(self, minute_of_day: int) -> bool:
        return (minute_of_day - self.start_minute) % _DAY_MINUTES < self.length_minutes


def _clock_minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@functools.lru_cache(maxsize=4096)
def largest_gap_minutes(expression: str, window: Window | None = None) -> int | None:
    """Longest time between two runs, counting only starts inside the window; None if it never runs."""
    event = parse_calendar(expression)
    times = [m for m in event.minutes_of_day if window is None or window.contains(m)]
    days = event.firing_days(datetime.date(2026, 1, 1))
    if not times or not days:
        return None
    if len(days) == 1 and len(times) == 1:
        return _HORIZON_DAYS * _DAY_MINUTES
    within_day = max((b - a for a, b in zip(times, times[1:])), default=0)
    across_days = max(
        ((d2 - d1) * _DAY_MINUTES - times[-1] + times[0] for d1, d2 in zip(days, days[1:])),
        default=0,
    )
    return max(within_day, across_days)
