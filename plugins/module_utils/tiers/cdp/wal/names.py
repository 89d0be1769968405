# -*- coding: utf-8 -*-
# Private to restorable.backup: WAL file names and positions (pure, cheap: on the archive path).
"""The files PostgreSQL archives and how they follow each other.

``TTTTTTTTXXXXXXXXYYYYYYYY`` is a segment: timeline T, then its position split in a "log"
number X and a segment number Y within the log (0x100000000 bytes / segment size segments per
log). ``TTTTTTTT.history`` names the timelines a timeline branched from and where;
``<segment>.partial`` is the unfinished last segment of an old timeline after a promotion;
``<segment>.<offset>.backup`` is the backup history file of a base backup starting there.
A position is the segment's number counted from the start of WAL, the same on every timeline.
"""
from __future__ import annotations

import re

WAL_NAME_RE = re.compile(r"^(?:[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$")
SEGMENT_RE = re.compile(r"^[0-9A-F]{24}$")
HISTORY_SUFFIX = ".history"
BACKUP_SUFFIX = ".backup"
PARTIAL_SUFFIX = ".partial"
LOG_BYTES = 0x100000000


def is_wal_name(name: str) -> bool:
    """A name the archiver accepts (never a path: no separator can match)."""
    return bool(WAL_NAME_RE.match(name))


def is_segment(name: str) -> bool:
    return bool(SEGMENT_RE.match(name))


def is_history(name: str) -> bool:
    return is_wal_name(name) and name.endswith(HISTORY_SUFFIX)


def is_backup_history(name: str) -> bool:
    return is_wal_name(name) and name.endswith(BACKUP_SUFFIX)


def timeline_of(name: str) -> int:
    return int(name[:8], 16)


def history_name(timeline: int) -> str:
    return "%08X%s" % (timeline, HISTORY_SUFFIX)


def check_segment_size(size: int) -> int:
    """size, when PostgreSQL allows it (a power of two from 1 MiB to 1 GiB); else ValueError."""
    if size < 1 << 20 or size > 1 << 30 or size & (size - 1):
        raise ValueError("WAL segment size %d is not a power of two from 1 MiB to 1 GiB" % size)
    return size


def position(name: str, segment_size: int) -> int:
    """The segment's position from the start of WAL (the timeline left out)."""
    per_log = LOG_BYTES // check_segment_size(segment_size)
    return int(name[8:16], 16) * per_log + int(name[16:24], 16)


def segment_name(timeline: int, number: int, segment_size: int) -> str:
    per_log = LOG_BYTES // check_segment_size(segment_size)
    return "%08X%08X%08X" % (timeline, number // per_log, number % per_log)


def next_segment(name: str, segment_size: int) -> str:
    return segment_name(timeline_of(name), position(name, segment_size) + 1, segment_size)


def previous_segment(name: str, segment_size: int) -> str | None:
    """The segment before name on its timeline (None for the very first): list(after=it) starts at name."""
    number = position(name, segment_size)
    return segment_name(timeline_of(name), number - 1, segment_size) if number else None


def lsn_value(text: str) -> int:
    """The byte position of an LSN as PostgreSQL prints it (``16/B374D848``)."""
    high, sep, low = text.strip().partition("/")
    if not sep:
        raise ValueError("%r is not an LSN" % text)
    return (int(high, 16) << 32) + int(low, 16)


def lsn_text(value: int) -> str:
    return "%X/%X" % (value >> 32, value & 0xFFFFFFFF)


def continues_past(entries: list[tuple[int, int, str]], timeline: int, lsn: int) -> bool:
    """Whether a timeline with these history entries went on along timeline beyond lsn (it forked
    off later): recovery from a backup taken on timeline at lsn can follow it."""
    return any(parent == timeline and switch > lsn for parent, switch, _reason in entries)


def parse_history(text: str) -> list[tuple[int, int, str]]:
    """(parent timeline, switch LSN, reason) per line of a timeline history file, oldest first."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 2)
        if len(fields) < 2:
            raise ValueError("timeline history line %r has no switch point" % line)
        entries.append((int(fields[0]), lsn_value(fields[1]), fields[2] if len(fields) > 2 else ""))
    return entries
