# -*- coding: utf-8 -*-
# Private to restorable.backup: the 3-2-1-1-0 rule per dataset. 3 copies (production counts as
# one), 2 kinds of backup media, 1 copy off-site, 1 immutable or offline, 0 errors: a drill proves
# the dataset at least as often as drill_max_age.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .calendar_event import CalendarError, largest_gap_minutes
from ...module_utils.common.durations import parse_duration
from ...module_utils.common.report_html import human_count, human_duration
from ..tiers import Tiers
from ..tiers.base import Copy, Fleet, TierPlanner, target_copy
from .problems import Problem

RULES = ("3 copies", "2 media kinds", "1 off-site", "1 immutable or offline", "0 errors (recent drill)")
DEFAULT_DRILL_MAX_AGE = "31d"  # the longest gap of a monthly drill, so that one counts
MEDIA_KINDS = ("disk", "object storage", "tape")


@dataclass
class ComplianceScore:
    dataset: str
    met: list = field(default_factory=list)
    missing: list = field(default_factory=list)  # rule names, for machines
    gaps: list = field(default_factory=list)  # the same shortfalls in plain words, for people

    @property
    def score(self) -> str:
        return "%d/%d" % (len(self.met), len(RULES))

    def as_dict(self) -> dict:
        return {"score": self.score, "met": self.met, "missing": self.missing, "gaps": self.gaps}


def describe_gap(rule: str, copies: list[Copy], drill_max_age_seconds: int) -> str:
    """What a missing rule means for this dataset, said so that the fix is obvious (no ';' inside:
    a problem line joins the gaps of a dataset with it)."""
    if rule == RULES[0]:
        names = ["production"] + [c.name or "a copy on %s" % c.media for c in copies]
        needed = 3 - len(names)
        return "only %s (%s), %s" % (human_count(len(names), "copy"), _words(names),
                                     "a third is needed" if needed == 1 else "%d more are needed" % needed)
    if rule == RULES[1]:
        kinds = sorted({c.media for c in copies})
        if not kinds:
            return "no backup copy exists, copies on two kinds of media (%s) are needed" % ", ".join(MEDIA_KINDS)
        others = [kind for kind in MEDIA_KINDS if kind not in kinds]
        return "every copy is on %s, a second kind of media (%s) is needed" % (kinds[0], ", ".join(others))
    if rule == RULES[2]:
        return "no copy is off-site"
    if rule == RULES[3]:
        return "no copy is immutable or offline (an S3 target with object_lock, a WORM or vaulted tape pool)"
    return "no drill restores this dataset at least every %s" % _period(drill_max_age_seconds)


def _words(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else "%s and %s" % (", ".join(names[:-1]), names[-1])


def _period(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    if days and not rest:
        return "day" if days == 1 else "%d days" % days
    return human_duration(seconds)


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
            Problem(self.host, ("restorable_datasets", s.dataset), "3-2-1-1-0 score %s: %s" % (s.score, "; ".join(s.gaps)))
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
        copies = [target_copy(self.targets[name], name) for name in dict.fromkeys(names) if name in self.targets]
        export = dataset.get("export")
        library = self.targets.get(export["library"]) if export else None
        if library and library["type"] == "tape_library":
            pool = library["pools"].get(export["pool"], {})
            vaulted = bool(pool.get("vault"))
            copies.append(Copy("tape", vaulted or bool(library.get("offsite")), vaulted or bool(pool.get("worm")),
                               "%s/%s" % (export["library"], export["pool"])))
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
        if score.missing:
            limit = self._drill_max_age()
            score.gaps = [describe_gap(rule, copies, limit) for rule in score.missing]
        return score

    def _drill_max_age(self) -> int:
        return parse_duration(self.settings.get("drill_max_age", DEFAULT_DRILL_MAX_AGE))

    def _drilled_often_enough(self, dataset_name: str) -> bool:
        limit = self._drill_max_age()
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
