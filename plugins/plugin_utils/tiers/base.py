# -*- coding: utf-8 -*-
# Private to restorable.backup: the contract every tier's planner fulfils on the controller.
# One planner per (host, tier): what apply schedules and places, what a drill restores, what plan
# prints and what 3-2-1-1-0 counts all come from it, so nothing is promised that is not done.
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import ClassVar, NamedTuple

from ..site_profile import SiteProfile, site_roster
from ..evidence_plan import EvidencePlan

MEDIA = {"local": "disk", "sftp": "disk", "replica": "disk", "s3": "object storage", "tape_library": "tape"}


class Copy(NamedTuple):  # a tuple: made for every dataset of a fleet, it must be cheap
    media: str
    offsite: bool
    immutable_or_offline: bool
    name: str = ""  # the target's name, so a shortfall can say which copies exist


def target_copy(target: dict, name: str = "") -> Copy:
    """A copy in a repository-like target (disk, S3); tape pools are a tier's own business."""
    immutable = target["type"] == "s3" and "object_lock" in target
    return Copy(MEDIA[target["type"]], bool(target.get("offsite")), immutable, name)


@dataclass
class Fleet:
    """Policies (restorable_* variables, plain data) and roots by inventory host name."""

    policies: Mapping[str, dict]  # may read a host only when a planner asks for it
    roots: Mapping[str, str] = field(default_factory=dict)
    _sites: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)

    def root(self, host: str) -> str:
        return self.roots.get(host) or "/"

    def sites(self) -> dict[str, list[str]]:
        """Site name: its hosts, sorted; read from every host once, when a site is first asked for."""
        if self._sites is None:
            self._sites = site_roster(self.policies)
        return self._sites

    def site(self, host: str) -> SiteProfile:
        """The host's site profile, with the hosts of its site across the fleet."""
        policy = self.policies[host]
        site = SiteProfile(host, policy)
        # Only staggering needs the other hosts: without a concurrency no other host is read.
        return SiteProfile(host, policy, self.sites().get(site.name, [])) if site.concurrency else site


class TierPlanner(ABC):
    """The datasets of one tier on one host, and everything the controller derives from them."""

    tier: ClassVar[str]

    def __init__(self, host: str, fleet: Fleet) -> None:
        self.host = host
        self.fleet = fleet
        self.policy = fleet.policies[host]

    def plans(self, dataset: dict) -> bool:
        """Whether the dataset gets jobs and drills from this planner: its tier, and enabled."""
        return dataset.get("tier") == self.tier and dataset.get("enabled", True)

    def plan(self) -> dict[str, list]:
        """What the tier's role converges on the host (with restorable_evidence in every job)."""
        evidence = EvidencePlan(self.host, self.policy, self.fleet.root(self.host))
        return evidence.add_to_jobs(self.tier, {"jobs": self.jobs(), "secrets": self.secrets()})

    @abstractmethod
    def jobs(self) -> list[dict]:
        """Scheduled jobs, one configuration each."""

    @abstractmethod
    def secrets(self) -> list[dict]:
        """Private files ({path, content}) the jobs read."""

    @abstractmethod
    def drills(self) -> list[dict]:
        """One entry per dataset of this tier in each drill the host declares, in drill order."""

    @abstractmethod
    def describe(self, dataset: dict) -> str:
        """What a backup of the dataset does, in words (the plan)."""

    @abstractmethod
    def copies(self, dataset: dict) -> list[Copy]:
        """The copies the jobs of the dataset produce, for 3-2-1-1-0."""
