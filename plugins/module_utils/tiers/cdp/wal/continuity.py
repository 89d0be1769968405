# -*- coding: utf-8 -*-
# Private to restorable.backup: is the archived WAL whole? Incrementally, as pgBackRest and
# WAL-G verify: each points run looks at what was archived since the last verified segment.
"""WAL continuity of a store.

Segments of one timeline must follow each other without a gap. A new timeline is legal when
its ``.history`` file is in the store and names the branch point in its parent timeline: its
first segment is the one holding the branch point, and the parent's WAL reaches the branch
point. With ``read_checksums`` each new file is read back from the store and compared with its
checksum. The state (``<status dir>/<dataset>.wal-verify.json``, written by points runs only)
keeps the last verified segment of each timeline and the verified history files. The retention
floor (``<dataset>.wal-floor.json``, written by base backup runs only, so that the two jobs of a
dataset never overwrite each other's facts) is the position below which WAL was deleted on
purpose (no kept base backup needs it): a gap there is no finding.
A finding stops the timeline at the last good segment, so the next run finds it again until
it is repaired.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ....common.fileio import atomic_write_json, read_json
from .names import (continues_past, history_name, is_history, is_segment, is_wal_name, next_segment, parse_history,
                    position, segment_name, timeline_of)
from .store import Store, StoreError

STATE_FORMAT = 1
STATE_SUFFIX = ".wal-verify.json"
FLOOR_SUFFIX = ".wal-floor.json"


def state_path(status_dir: str, dataset: str) -> str:
    return os.path.join(status_dir, dataset + STATE_SUFFIX)


def floor_path(status_dir: str, dataset: str) -> str:
    return os.path.join(status_dir, dataset + FLOOR_SUFFIX)


def read_floor(path: str) -> str | None:
    try:
        document = read_json(path)
    except ValueError:
        return None
    return document.get("floor") if isinstance(document, dict) else None


def raise_floor(path: str, segment: str, segment_size: int) -> None:
    """Record that WAL before segment goes away on purpose; the floor only ever moves forward."""
    floor = read_floor(path)
    if floor is None or position(segment, segment_size) > position(floor, segment_size):
        atomic_write_json(path, {"format": STATE_FORMAT, "floor": segment}, mode=0o644)


@dataclass
class VerifyState:
    """Where the last verification ended (see the module docstring)."""

    timelines: dict[int, str] = field(default_factory=dict)
    histories: list[str] = field(default_factory=list)
    floor: str | None = None
    verified_at: str | None = None

    @classmethod
    def load(cls, path: str, floor: str | None = None) -> "VerifyState":
        try:
            document = read_json(path)
        except ValueError:
            document = None  # damaged: verify from the start again rather than not at all
        if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
            return cls(floor=floor)
        return cls({int(k): v for k, v in (document.get("timelines") or {}).items()},
                   list(document.get("histories") or []), floor, document.get("verified_at"))

    def save(self, path: str) -> None:
        """The verification's own facts (the floor is the base backup runs')."""
        atomic_write_json(path, {"format": STATE_FORMAT, "timelines": {str(k): v for k, v in self.timelines.items()},
                                 "histories": sorted(set(self.histories)), "verified_at": self.verified_at}, mode=0o644)

    def listing_start(self) -> str | None:
        """List after this name: everything newer than the least advanced timeline."""
        return min(self.timelines.values()) if self.timelines else None


@dataclass
class Report:
    """What one verification found."""

    checked: int = 0  # files read back and compared with their checksum
    segments: int = 0  # segments found in sequence
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    new_timelines: list[int] = field(default_factory=list)
    last: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "segments": self.segments, "missing": self.missing,
                "problems": self.problems, "new_timelines": self.new_timelines,
                "last": {str(k): v for k, v in sorted(self.last.items())}}


class Verifier:
    """Walks a store's listing timeline by timeline (see the module docstring)."""

    def __init__(self, store: Store, segment_size: int, read_checksums: bool = True) -> None:
        self.store = store
        self.segment_size = segment_size
        self.read_checksums = read_checksums

    def incremental(self, state: VerifyState) -> Report:
        """Verify what was archived since state; state moves to the last good segments."""
        names = self.store.list(state.listing_start())
        before = dict(state.timelines)
        report = self.walk(names, state)
        self._check_other_files(names, before, state, report)
        report.last = dict(state.timelines)
        return report

    def from_segment(self, start: str, names: list[str] | None = None) -> Report:
        """The WAL a restore from a base backup starting at segment start reads: start's timeline
        from start on, and the timelines branching from it (names only: restores verify checksums)."""
        timeline = timeline_of(start)
        listed = self.store.list() if names is None else names
        lsn = position(start, self.segment_size) * self.segment_size
        wanted = {timeline} | {other for other in {timeline_of(n) for n in listed if is_segment(n)}
                               if other > timeline and self._continues(other, timeline, lsn, listed)}
        chosen = [n for n in listed if (is_segment(n) and n >= start and timeline_of(n) in wanted) or is_history(n)]
        state = VerifyState()
        report = self.walk(chosen, state, {timeline: start})
        if not report.segments and not report.problems:
            report.missing.append(start)
            report.problems.append("WAL segment %s, where the base backup starts, is not in %s" % (
                start, self.store.describe()))
        report.last = dict(state.timelines)
        return report

    # -- the walk -------------------------------------------------------------------------------

    def walk(self, names: list[str], state: VerifyState, first: dict[int, str] | None = None) -> Report:
        """Follow each timeline's segments in names from where state left it (or from first)."""
        first = first or {}
        report = Report()
        segments: dict[int, list[str]] = {}
        for name in names:
            if is_segment(name):
                segments.setdefault(timeline_of(name), []).append(name)
        histories = {timeline_of(name) for name in names if is_history(name)} | {
            timeline_of(name) for name in state.histories}
        lowest = min(list(segments) + list(state.timelines)) if segments or state.timelines else None
        for timeline in sorted(segments):
            last = state.timelines.get(timeline)
            new = [name for name in segments[timeline] if last is None or name > last]
            if not new:
                continue
            if last is not None:
                expected: str | None = next_segment(last, self.segment_size)
            elif timeline in first:
                expected = first[timeline]
            elif timeline in histories:
                expected = self._branch_start(timeline, segments, state, report)
                report.new_timelines.append(timeline)
            elif timeline == lowest:
                expected = None  # the oldest WAL there is: nothing before it to check
            else:
                report.problems.append("timeline %d appears in %s without its history file %s" % (
                    timeline, self.store.describe(), history_name(timeline)))
                continue
            self._follow(timeline, new, expected, state, report)
        return report

    def _follow(self, timeline: int, new: list[str], expected: str | None, state: VerifyState, report: Report) -> None:
        for name in new:
            if expected is not None and name != expected:
                expected = self._past_floor(expected, name, state)
            if expected is not None and name != expected:
                self._gap(expected, name, report)
                return
            if self.read_checksums and not self._checksum_ok(name, report):
                return
            state.timelines[timeline] = name
            report.segments += 1
            expected = next_segment(name, self.segment_size)

    def _past_floor(self, expected: str, found: str, state: VerifyState) -> str | None:
        """The first segment that must be there, when retention removed the ones before the floor."""
        if state.floor is None:
            return expected
        floor = position(state.floor, self.segment_size)
        if position(found, self.segment_size) <= floor:
            return None  # all that is missing lies below the floor
        if position(expected, self.segment_size) < floor:
            return segment_name(timeline_of(expected), floor, self.segment_size)
        return expected

    def _gap(self, expected: str, found: str, report: Report) -> None:
        count = position(found, self.segment_size) - position(expected, self.segment_size)
        if count <= 0:
            report.problems.append("WAL segment %s is out of sequence in %s (expected %s)" % (
                found, self.store.describe(), expected))
            return
        report.missing.append(expected)
        span = " (and %d more before %s)" % (count - 1, found) if count > 1 else ""
        report.problems.append("WAL segment %s is missing from %s%s" % (expected, self.store.describe(), span))

    def _checksum_ok(self, name: str, report: Report) -> bool:
        try:
            self.store.check(name)
        except StoreError as exc:
            report.problems.append(str(exc))
            return False
        report.checked += 1
        return True

    def _branch_start(self, timeline: int, segments: dict[int, list[str]], state: VerifyState,
                      report: Report) -> str | None:
        """The first segment of a new timeline: the one holding its branch point."""
        parent, switch = self._branch(timeline)
        size = self.segment_size
        parent_needs = (switch - 1) // size
        parent_last = max(segments.get(parent, []) + ([state.timelines[parent]] if parent in state.timelines else []),
                          default=None)
        floor = position(state.floor, size) if state.floor else -1
        if parent_needs >= floor and (parent_last is None or position(parent_last, size) < parent_needs):
            wanted = segment_name(parent, parent_needs, size)
            report.missing.append(wanted)
            report.problems.append("timeline %d branches from timeline %d at %X/%X, but %s ends before %s" % (
                timeline, parent, switch >> 32, switch & 0xFFFFFFFF, self.store.describe(), wanted))
        return segment_name(timeline, switch // size, size)

    def _branch(self, timeline: int) -> tuple[int, int]:
        """(parent timeline, switch LSN) from the timeline's history file in the store."""
        name = history_name(timeline)
        try:
            entries = parse_history(self.store.read(name).decode("utf-8", "replace"))
        except ValueError as exc:
            raise StoreError("%s in %s is damaged: %s" % (name, self.store.describe(), exc)) from None
        if not entries:
            raise StoreError("%s in %s names no parent timeline" % (name, self.store.describe()))
        return entries[-1][0], entries[-1][1]

    def _continues(self, timeline: int, ancestor: int, lsn: int, names: list[str]) -> bool:
        """Whether timeline forked off ancestor after lsn (recovery from lsn can follow it)."""
        if history_name(timeline) not in names:
            return False
        try:
            entries = parse_history(self.store.read(history_name(timeline)).decode("utf-8", "replace"))
        except ValueError:
            return True  # walked anyway: the walk reports the damaged file
        return continues_past(entries, ancestor, lsn)

    def _check_other_files(self, names: list[str], before: dict[int, str], state: VerifyState, report: Report) -> None:
        """History files (once each), and backup history and partial files newer than the last run."""
        for name in names:
            if is_segment(name) or not is_wal_name(name) or name in state.histories:
                continue
            if not is_history(name) and name[:24] <= before.get(timeline_of(name), ""):
                continue
            if self.read_checksums and not self._checksum_ok(name, report):
                continue
            if is_history(name):
                state.histories.append(name)
