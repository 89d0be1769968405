# -*- coding: utf-8 -*-
# Private to restorable.backup: the registry of tier planners. Validate, plan, apply, backup and
# drill ask it which tiers this version plans; a dataset or drill of any other tier is reported
# (validated, not applied), never dropped in silence, and scores nothing for 3-2-1-1-0. This
# version plans every tier the schema names; a registry without one (tests) reports it so.
from __future__ import annotations

from collections.abc import Mapping

from ..policy.problems import ERROR, WARNING, Problem
from .agent import AgentTierPlanner
from .array import ArrayTierPlanner
from .base import Fleet, TierPlanner
from .cdp import CdpTierPlanner
from .host import HostTierPlanner

REGISTRY: Mapping[str, type[TierPlanner]] = {AgentTierPlanner.tier: AgentTierPlanner, HostTierPlanner.tier: HostTierPlanner,
                                             CdpTierPlanner.tier: CdpTierPlanner, ArrayTierPlanner.tier: ArrayTierPlanner}
UNSUPPORTED = "validated, not applied: tier %s is not supported by this version"


class Tiers:
    """The planners of a registry, and what becomes of the datasets they do not plan."""

    def __init__(self, registry: Mapping[str, type[TierPlanner]] | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry

    def supports(self, tier: str) -> bool:
        return tier in self.registry

    def planner(self, host: str, fleet: Fleet, tier: str) -> TierPlanner | None:
        cls = self.registry.get(tier)
        return cls(host, fleet) if cls else None

    def planners(self, host: str, fleet: Fleet) -> list[TierPlanner]:
        """One planner per registered tier, in registry order."""
        return [cls(host, fleet) for cls in self.registry.values()]

    def unsupported(self, host: str, policy: dict) -> list[Problem]:
        """A problem per dataset, and per dataset of each drill, whose tier has no planner."""
        severity = ERROR if (policy.get("restorable_compliance") or {}).get("unsupported_tiers") == "error" else WARNING
        datasets = policy.get("restorable_datasets") or {}
        problems = [Problem(host, ("restorable_datasets", name), UNSUPPORTED % dataset["tier"], severity)
                    for name, dataset in datasets.items() if not self.supports(dataset["tier"])]
        for name, drill in (policy.get("restorable_drills") or {}).items():
            for index, dataset_name in enumerate(drill["datasets"]):
                tier = (datasets.get(dataset_name) or {}).get("tier")
                if tier and not self.supports(tier):  # an unknown dataset is a problem of its own
                    problems.append(Problem(host, ("restorable_drills", name, "datasets", index), UNSUPPORTED % tier, severity))
        return problems


TIERS = Tiers()
