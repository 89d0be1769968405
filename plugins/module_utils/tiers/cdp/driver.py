# -*- coding: utf-8 -*-
# Private to restorable.backup: the CDP tier inside a run: the source the job names (btrfs
# snapshots replicated over SSH, or PostgreSQL WAL archiving) does the work; the Runner around it
# is every tier's.
from __future__ import annotations

from typing import Any

from ...core.driver import RunContext, RunRecord, TierDriver
from ...core.jobspec import ConfigError
from ..drill_params import check_only_record, spec_from_params
from .btrfs_source import BtrfsSource
from .postgres_source import PostgresSource
from .source import CdpSource

SOURCES: dict[str, type[CdpSource]] = {BtrfsSource.kind: BtrfsSource, PostgresSource.kind: PostgresSource}


def source_class(kind: Any, where: str) -> type[CdpSource]:
    if kind not in SOURCES:
        raise ConfigError("%s: source type %r is not one of %s" % (where, kind, ", ".join(sorted(SOURCES))))
    return SOURCES[kind]


class CdpDriver(TierDriver):
    """Minute-level recovery points of one CDP dataset, by its source kind."""

    tier = "cdp"
    takes_freezing_profiles = True

    def __init__(self, config: Any) -> None:
        source = config.options.get("source") if isinstance(config.options, dict) else None
        kind = source.get("type") if isinstance(source, dict) else None
        self.source = source_class(kind, "job config %s: options.source.type" % (config.source or config.dataset))(config)

    def record_details(self) -> dict[str, Any]:
        return dict(self.source.record_details(), source=self.source.kind, rpo_target_seconds=self.source.config.rpo_seconds)

    def preflight(self, run: RunContext) -> None:
        self.source.preflight(run)

    def capture(self, run: RunContext) -> None:
        self.source.capture(run)

    def maintain(self, run: RunContext) -> None:
        self.source.maintain(run)

    @classmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        try:
            source = source_class(params.get("source_type"), "drill %s dataset %s: source_type"
                                  % (params.get("drill"), params.get("dataset")))
        except ConfigError as exc:
            record = check_only_record(spec_from_params(params))
            record.update(result="failed", reason=str(exc))
            return record
        return source.drill(params, check_only)

    def summary(self, record: RunRecord) -> str:
        return "dataset %s: %s, %s point %s in %.1fs" % (
            record.dataset, record.result, self.source.kind, record.snapshot_id, record.duration_seconds)
