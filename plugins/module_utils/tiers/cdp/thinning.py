# -*- coding: utf-8 -*-
# Private to restorable.backup: thinning retention of CDP points (btrbk's and sanoid's idea):
# every point is kept for a while, older ones one per interval of their age band, none beyond
# max_age; protected points (the incremental base, what is not replicated yet) are always kept.
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Collection, Sequence, Tuple

from ...core.jobspec import FieldReader

Point = Tuple[str, datetime.datetime]  # (name, UTC time)


@dataclass(frozen=True)
class ThinRule:
    """From older_than seconds of age on, one point per keep_every seconds."""

    older_than: int
    keep_every: int

    def __post_init__(self) -> None:
        if self.older_than < 0:
            raise ValueError("older_than cannot be negative")
        if self.keep_every <= 0:
            raise ValueError("keep_every must be at least one second")


def _band(age: float, rules: Sequence[ThinRule]) -> ThinRule | None:
    """The rule of the oldest band the age has reached (rules sorted by older_than), None when
    the point is still young enough to be kept whatever its neighbours."""
    found = None
    for rule in rules:
        if age >= rule.older_than:
            found = rule
    return found


def keep_points(points: Sequence[Point], now: datetime.datetime, rules: Sequence[ThinRule],
                max_age: float | None = None, protected: Collection[str] = ()) -> set[str]:
    """The names to keep: the newest point, the protected ones, and what the rules keep.

    Within a band, the OLDEST point of each keep_every interval (counted from the epoch) stays:
    it was there first, so the choice does not change as newer points age into the band, and a
    point once kept stays kept until it leaves the band or passes max_age.
    """
    ordered = sorted(points, key=lambda point: (point[1], point[0]))
    kept = {name for name, _when in ordered if name in protected}
    if ordered:
        kept.add(ordered[-1][0])  # the newest point is the dataset's last good state
    bands = sorted(rules, key=lambda rule: rule.older_than)
    seen: set[tuple[int, int]] = set()
    for name, when in ordered:
        age = (now - when).total_seconds()
        if max_age is not None and age > max_age:
            continue
        rule = _band(age, bands)
        if rule is None:
            kept.add(name)
            continue
        bucket = (rule.older_than, int(when.timestamp() // rule.keep_every))
        if bucket not in seen:
            seen.add(bucket)
            kept.add(name)
    return kept


def points_to_prune(points: Sequence[Point], now: datetime.datetime, rules: Sequence[ThinRule],
                    max_age: float | None = None, protected: Collection[str] = ()) -> list[str]:
    """The names keep_points does not keep, oldest first."""
    kept = keep_points(points, now, rules, max_age, protected)
    return [name for name, _when in sorted(points, key=lambda point: (point[1], point[0])) if name not in kept]


def read_thinning_rules(fields: FieldReader) -> list[ThinRule]:
    """The job options' `thinning` list; ValueError naming the rule's field path."""
    rules = []
    for index, item in enumerate(fields.get("thinning", list, [])):
        rule = FieldReader(item, "%s[%d]" % (fields.name("thinning"), index))
        older_than, keep_every = rule.duration("older_than"), rule.duration("keep_every")
        rule.done()
        if older_than is None or keep_every is None:
            raise ValueError("%s: older_than and keep_every are required" % rule.path)
        try:
            rules.append(ThinRule(older_than, keep_every))
        except ValueError as exc:
            raise ValueError("%s: %s" % (rule.path, exc)) from None
    return rules
