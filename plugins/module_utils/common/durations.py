# -*- coding: utf-8 -*-
# Private to restorable.backup: durations as written in the policy ("15m", "26h", "7d"), and the
# times status, drill and evidence records carry.
from __future__ import annotations

import datetime
import functools
import re

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_RE = re.compile(r"^([0-9]{1,7})([smhdw])$")


def parse_duration(value: object, field: str = "duration") -> int:
    """Seconds in a policy duration ("15m") or a plain number of seconds.

    Raises ValueError naming the field, so configuration errors point at the option.
    """
    if isinstance(value, bool):
        raise ValueError("%s: expected a duration such as 30s, 15m, 2h, got %r" % (field, value))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("%s: a duration cannot be negative (%r)" % (field, value))
        return int(value)
    seconds = _text_seconds(value.strip()) if isinstance(value, str) else None
    if seconds is None:
        raise ValueError("%s: expected a duration such as 30s, 15m, 2h, got %r" % (field, value))
    return seconds


@functools.lru_cache(maxsize=1024)  # policies repeat a handful of durations across a whole fleet
def _text_seconds(text: str) -> int | None:
    match = _DURATION_RE.match(text)
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None


def format_duration(seconds: float) -> str:
    """The largest whole unit that fits, so messages read like the policy does; from two days
    on, days with one decimal (58.3d reads better than 1400h) unless that would look whole."""
    seconds = int(seconds)
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return "%d%s" % (seconds // size, unit)
        if unit == "d" and seconds >= 2 * size and not ("%.1f" % (seconds / size)).endswith(".0"):
            return "%.1fd" % (seconds / size)
    if seconds >= 3600:
        return "%.1fh" % (seconds / 3600)
    if seconds >= 60:
        return "%dm%ds" % divmod(seconds, 60)
    return "%ds" % seconds


def parse_time(text: object) -> datetime.datetime | None:
    """An ISO 8601 time of a record ('2026-12-03T10:00:00Z'), aware; None when absent or bad."""
    if not text or not isinstance(text, str):
        return None
    try:
        value = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
