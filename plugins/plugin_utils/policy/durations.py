# -*- coding: utf-8 -*-
# Private to restorable.backup: durations as written in the policy ("15m", "26h", "7d").
from __future__ import annotations

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Seconds in a schema-valid duration string."""
    return int(text[:-1]) * _UNIT_SECONDS[text[-1]]


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
