# -*- coding: utf-8 -*-
# Private to restorable.backup: keep rules (last, hourly ... yearly, max_age) applied to points,
# with restic forget's semantics, for tiers that decide themselves what goes: the host tier
# must keep whole chains, which restic cannot know.
from __future__ import annotations

import datetime
from typing import Callable, Sequence, Tuple

Point = Tuple[str, datetime.datetime]  # (id, time)

_BUCKETS: dict[str, Callable[[datetime.datetime], tuple]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


def keep_by_rules(points: Sequence[Point], rules: dict[str, int]) -> set[str]:
    """The ids the rules keep: for each rule, the newest point of each of its newest N buckets;
    max_age (seconds) keeps every point younger than that, counted back from the newest point."""
    # Buckets in the host's local time, as restic forget makes them for the agent tier.
    ordered = sorted(((i, when.astimezone()) for i, when in points), key=lambda p: p[1], reverse=True)
    kept: set[str] = {point_id for point_id, _when in ordered[:int(rules.get("last") or 0)]}
    for rule, bucket in _BUCKETS.items():
        count = int(rules.get(rule) or 0)
        seen: set[tuple] = set()
        for point_id, when in ordered:
            if len(seen) >= count:
                break
            key = bucket(when)
            if key not in seen:
                seen.add(key)
                kept.add(point_id)
    max_age = rules.get("max_age")
    if max_age and ordered:
        newest = ordered[0][1]
        kept.update(i for i, when in ordered if (newest - when).total_seconds() < float(max_age))
    return kept
