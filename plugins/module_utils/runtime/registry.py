# -*- coding: utf-8 -*-
# Private to restorable.backup: the tiers this host engine runs, by name. A tier is a
# TierDriver for scheduled and on-demand runs and a drill entry for restore drills; adding a
# tier is one line here (and whatever it imports ships to hosts by itself, see standalone.py).
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.driver import TierDriver
from ..core.runner import RunOptions, Runner
from ..tiers.agent.driver import AgentDriver
from ..tiers.agent.drill import run_agent_drill


class UnsupportedTier(Exception):
    """A job or drill names a tier this version does not run."""


@dataclass(frozen=True)
class Tier:
    driver: Callable[[Any], TierDriver]  # from the job specification
    drill: Callable[[dict[str, Any], bool], dict[str, Any]]  # (drill parameters, check_only) -> record


TIERS: dict[str, Tier] = {
    "agent": Tier(AgentDriver, run_agent_drill),
}


def tier(name: str) -> Tier:
    try:
        return TIERS[name]
    except KeyError:
        raise UnsupportedTier("tier %s is not supported by this version (it runs: %s)"
                              % (name, ", ".join(sorted(TIERS)))) from None


def runner_for(config: Any, options: RunOptions | None = None, **clocks: Any) -> Runner:
    """The Runner of a job, with its tier's driver."""
    return Runner(config, tier(config.tier).driver(config), options, **clocks)


def run_drill(params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    """The drill record of one dataset, by the restore side of its tier."""
    return tier(params.get("tier") or "agent").drill(params, check_only)
