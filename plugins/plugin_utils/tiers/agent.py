# -*- coding: utf-8 -*-
# Private to restorable.backup: the agent tier's planner in the registry: restic on each host,
# jobs and repositories from agent_jobs, restore drills from agent_drills.
from __future__ import annotations

from .agent_drills import AgentDrills
from .agent_jobs import TIER, AgentPlanner
from .base import Copy, Fleet, TierPlanner, target_copy


class AgentTierPlanner(TierPlanner):
    """The agent tier in the registry: restic jobs to the dataset's targets, one per target."""

    tier = TIER

    def __init__(self, host: str, fleet: Fleet) -> None:
        super().__init__(host, fleet)
        self.agent = AgentPlanner(host, self.policy, fleet.root(host), fleet.site(host))

    def plan(self) -> dict[str, list]:
        return dict(super().plan(), repositories=self.agent.repositories())

    def jobs(self) -> list[dict]:
        return self.agent.jobs()

    def secrets(self) -> list[dict]:
        return self.agent.secrets()

    def drills(self) -> list[dict]:
        return AgentDrills(self.agent, self.fleet).entries()

    def describe(self, dataset: dict) -> str:
        return "restic backup of %s" % ", ".join(dataset["paths"])

    def copies(self, dataset: dict) -> list[Copy]:
        targets = self.agent.targets
        return [target_copy(targets[name], name) for name in dataset.get("targets", []) if name in targets]
