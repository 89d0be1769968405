# -*- coding: utf-8 -*-
# Private to restorable.backup: the 3-2-1-1-0 rule per dataset. 3 copies (production counts as
# one), 2 kinds of backup media, 1 copy off-site, 1 immutable or offline, 0 errors: a drill proves
# the dataset at least as often as drill_max_age.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .calendar_event import CalendarError, largest_gap_minutes
from ...module_utils.common.durations import parse_duration
from ..tiers import Tiers
from ..tiers.base import Copy, Fleet, TierPlanner, target_copy
from .problems import Problem

RULES = ("3 copies", "2 media kinds", "1 off-site", "1 immutable or offline", "0 errors (recent drill)")
DEFAULT_DRILL_MAX_AGE = "31d"  # the longest gap of a monthly drill, so that one counts


@dataclass
class ComplianceScore:
    dataset: str
    met: list = field(default_factory=list)
    missing: list = field(default_factory=list)

    @property
    def score(self) -> str:
        return "%d/%d" % (len(self.met), len(RULES))

    def as_dict(self) -> dict:
        return {"score": self.score, "met": self.met, "missing": self.missing}


class ComplianceScorer:
    """Scores every dataset of one host; enforcement turns shortfalls into errors.

    Without tiers, the policy as written: every dataset, every copy it declares. With tiers,
    what this version does: a dataset whose tier has no planner scores nothing, and a copy
    counts only where the tier's planner makes it.
    """

    def __init__(self, host: str, policy: dict, tiers: Optional[Tiers] = None) -> None:
        self.host = host
        self.policy = policy
        self.settings = policy.get("restorable_compliance", {})
        self.targets = policy.get("restorable_targets", {})
        self.tiers = tiers
        self._planners: dict = {}  # tier: its planner for this host

    @property
    def mode(self) -> str:
        return self.settings.get("rule_3_2_1_1_0", "report")

    def scores(self) -> list:
        if self.mode == "ignore":
            return []
        return [self._score(name, dataset) for name, dataset in self.policy.get("restorable_datasets", {}).items()
                if self.tiers is None or self.tiers.supports(dataset["tier"])]

    def problems(self, scores: list) -> list:
        if self.mode != "enforce":
            return []
        return [
            Problem(self.host, ("restorable_datasets", s.dataset), "3-2-1-1-0 score %s, missing: %s" % (s.score, "; ".join(s.missing)))
            for s in scores
            if s.missing
        ]

    def _planned(self, dataset: dict) -> bool:
        return self._planner(dataset["tier"]).plans(dataset)

    def _planner(self, tier: str) -> TierPlanner:
        if tier not in self._planners:
            self._planners[tier] = self.tiers.planner(self.host, Fleet({self.host: self.policy}), tier)
        return self._planners[tier]

    def _copies(self, dataset: dict) -> list[Copy]:
        if self.tiers is None:
            return self._declared_copies(dataset)
        return self._planner(dataset["tier"]).copies(dataset) if self._planned(dataset) else []

    def _declared_copies(self, dataset: dict) -> list[Copy]:
        names = list(dataset.get("targets", [])) + [dataset[k] for k in ("replica", "wal_archive") if k in dataset]
        # A target named twice (targets and wal_archive) is one copy.
        copies = [target_copy(self.targets[name]) for name in dict.fromkeys(names) if name in self.targets]
        export = dataset.get("export")
        library = self.targets.get(export["library"]) if export else None
        if library and library["type"] == "tape_library":
            pool = library["pools"].get(export["pool"], {})
            vaulted = bool(pool.get("vault"))
            copies.append(Copy("tape", vaulted or bool(library.get("offsite")), vaulted or bool(pool.get("worm"))))
        return copies

    def _score(self, name: str, dataset: dict) -> ComplianceScore:
        copies = self._copies(dataset)
        checks = (
            len(copies) + 1 >= 3,
            len({c.media for c in copies}) >= 2,
            any(c.offsite for c in copies),
            any(c.immutable_or_offline for c in copies),
            (self.tiers is None or self._planned(dataset)) and self._drilled_often_enough(name),
        )
        score = ComplianceScore(name)
        for rule, ok in zip(RULES, checks):
            (score.met if ok else score.missing).append(rule)
        return score

    def _drilled_often_enough(self, dataset_name: str) -> bool:
        limit = parse_duration(self.settings.get("drill_max_age", DEFAULT_DRILL_MAX_AGE))
        for drill in self.policy.get("restorable_drills", {}).values():
            if dataset_name not in drill["datasets"] or "calendar" not in drill:
                continue
            try:
                gap = largest_gap_minutes(drill["calendar"])
            except CalendarError:
                continue
            if gap is not None and gap * 60 <= limit:
                return True
        return False
