# -*- coding: utf-8 -*-
# Private to restorable.backup: the tiers this host engine runs, by name. A tier is a TierDriver
# class: its runs (scheduled and on demand) and its restore drills. Adding a tier is one loader
# here, and whatever it imports ships to hosts by itself (see standalone.py).
#
# A driver is imported when a job or drill of its tier runs, not before: a CDP job runs every
# minute on busy hosts, and importing every tier would cost it more CPU than its own work. The
# imports stay import statements (in functions) so that Ansible's module packer still finds them.
# pylint: disable=import-outside-toplevel
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..core.driver import TierDriver
from ..core.runner import RunOptions, Runner


class UnsupportedTier(Exception):
    """A job or drill names a tier this version does not run."""


def _agent() -> type[TierDriver]:
    from ..tiers.agent.driver import AgentDriver
    return AgentDriver


def _host() -> type[TierDriver]:
    from ..tiers.host.driver import HostDriver
    return HostDriver


def _cdp() -> type[TierDriver]:
    from ..tiers.cdp.driver import CdpDriver
    return CdpDriver


class TierRegistry(Mapping):
    """Tier name: driver class, each imported on first use."""

    def __init__(self, loaders: dict[str, Callable[[], type[TierDriver]]]) -> None:
        self.loaders = loaders

    def __getitem__(self, name: str) -> type[TierDriver]:
        return self.loaders[name]()

    def __iter__(self) -> Iterator[str]:
        return iter(self.loaders)

    def __len__(self) -> int:
        return len(self.loaders)

    def load_all(self) -> list[type[TierDriver]]:
        """Every driver, imported (what the standalone copy must ship)."""
        return [self[name] for name in self.loaders]


def _array() -> type[TierDriver]:
    from ..tiers.array.driver import ArrayDriver
    return ArrayDriver


TIERS = TierRegistry({"agent": _agent, "host": _host, "cdp": _cdp, "array": _array})


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
