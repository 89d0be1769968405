# -*- coding: utf-8 -*-
# Private to restorable.backup: which group snapshots the storage host may delete. A snapshot
# stays while a keep rule (core/retention.py) or a thinning band (tiers/cdp/thinning.py) keeps it;
# the newest snapshot, the newest exported point (the parent of the next `btrfs send -p`) and the
# points due for export that are not on tape yet stay whatever the rules say.
from __future__ import annotations

import datetime
from typing import Any, Collection, Sequence

from ...core.retention import keep_by_rules
from ..cdp.thinning import ThinRule, keep_points

ID_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # snapshot/group.py recovery_point_id


def point_time(point: str) -> datetime.datetime:
    """The UTC time of a group recovery point id; ValueError for anything else."""
    return datetime.datetime.strptime(point, ID_FORMAT).replace(tzinfo=datetime.timezone.utc)


def snapshots_to_delete(points: Sequence[str], now: datetime.datetime, retention: dict[str, Any],
                        rules: Sequence[ThinRule], protected: Collection[str]) -> list[str]:
    """The points no rule keeps and nothing protects, oldest first; none without any rule."""
    if not points or not (retention or rules):
        return []
    timed = [(point, point_time(point)) for point in points]
    kept = set(protected) | {max(points)}
    if retention:
        kept |= keep_by_rules(timed, retention)
    if rules:
        kept |= keep_points(timed, now, rules, retention.get("max_age"))
    return [point for point in sorted(points) if point not in kept]
