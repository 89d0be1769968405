# -*- coding: utf-8 -*-
# Private to restorable.backup: the tiers this host engine runs, by name. A tier is a TierDriver
# class: its runs (scheduled and on demand) and its restore drills. Adding a tier is one line
# here, and whatever it imports ships to hosts by itself (see standalone.py).
from __future__ import annotations

from typing import Any

from ..core.driver import TierDriver
from ..core.runner import RunOptions, Runner
from ..tiers.agent.driver import AgentDriver
from ..tiers.cdp.driver import CdpDriver
from ..tiers.host.driver import HostDriver


class UnsupportedTier(Exception):
    """A job or drill names a tier this version does not run."""


TIERS: dict[str, type[TierDriver]] = {
    AgentDriver.tier: AgentDriver,
    HostDriver.tier: HostDriver,
    CdpDriver.tier: CdpDriver,
}


def tier(name: str) -> type[TierDriver]:
    try:
        return TIERS[name]
    except KeyError:
        raise UnsupportedTier("tier %s is not supported by this version (it runs: %s)"
                              % (name, ", ".join(sorted(TIERS)))) from None


def runner_for(config: Any, options: RunOptions | None = None, **clocks: Any) -> Runner:
    """The Runner of a job, with its tier's driver."""
    return Runner(config, tier(config.tier)(config), options, **clocks)


def run_drill(params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    """The drill record of one dataset, by its tier's restore side."""
    return tier(params.get("tier") or "agent").drill(params, check_only)
