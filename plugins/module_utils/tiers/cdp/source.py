# -*- coding: utf-8 -*-
# Private to restorable.backup: what a CDP source does inside a run. The tier's driver picks the
# source by `options.source.type` and hands it the Runner's calls; lock, hooks, consistency
# profile, status and metrics stay the Runner's.
from __future__ import annotations

import abc
from typing import Any

from ...core.driver import RunContext
from ...core.jobspec import ConfigError, FieldReader


class CdpSource(abc.ABC):
    """One kind of CDP source (btrfs, postgresql), built from a job configuration."""

    kind: str = ""

    def __init__(self, config: Any) -> None:
        self.config = config
        try:
            fields = FieldReader(config.options, "options")
            self.parse_options(fields)
            fields.done()
        except ValueError as exc:
            raise ConfigError("job config %s: %s" % (config.source or config.dataset, exc)) from None

    @abc.abstractmethod
    def parse_options(self, fields: FieldReader) -> None:
        """Read the source's options (every key of `options`, `source` included); ValueError names the field."""

    def record_details(self) -> dict[str, Any]:
        return {}

    @abc.abstractmethod
    def preflight(self, run: RunContext) -> None:
        """Before any hook: can the source and its storage be used at all?"""

    @abc.abstractmethod
    def capture(self, run: RunContext) -> None:
        """Take the recovery point (inside the hooks and the consistency profile)."""

    def maintain(self, run: RunContext) -> None:
        """After a good capture: replication, thinning, verification, RPO."""

    @classmethod
    @abc.abstractmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        """The drill record of a dataset of this source kind (see drill/engine.py)."""
