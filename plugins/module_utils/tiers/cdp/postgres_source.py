# -*- coding: utf-8 -*-
# Private to restorable.backup: the PostgreSQL source of the CDP tier: continuous WAL archiving
# (PostgreSQL's archive_command runs the agent's archive-wal), checked every interval, and
# base backups on their own schedule, with point-in-time restore drills.
"""``PostgresSource``: a CDP dataset that is a PostgreSQL cluster.

Two jobs of the dataset run it, told apart by ``options.action``:

``points`` (every ``interval_minutes``): reads ``pg_stat_archiver`` and the WAL position, writes
the heartbeat row and switches WAL files when nothing was archived for longer than the interval
(so a recovery point exists every interval), records the RPO (``details.rpo``: the age of the
newest archived WAL, at risk when archiving fails or lags beyond ``rpo``: then also a warning)
and verifies the WAL archived since the last run (continuity.py): a gap fails the run, naming
the missing segment.

``base_backup`` (on ``base_backup_schedule``): streams a base backup into the job's repository
(basebackup.py), then applies ``retention`` to the base backups and removes the WAL no kept
base backup needs.

Options (``config.options``; unknown keys are errors)::

    {"source": {"type": "postgresql", "data_directory": "/var/lib/postgresql/15/main",
                "port": 5432, "host": "/var/run/postgresql", "user": "postgres", "database": "postgres"},
     "interval_minutes": 1, "rpo": 300, "action": "points",
     "archiver_config": "/etc/restorable/wal/pgmain.json",
     "wal_store": {"type": "s3", ...: as in the archiver configuration (archiver.py)}}

The archiving itself is PostgreSQL's: settings.configure_archiving() sets it up on apply.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from ...core.driver import RunContext, RunFailed, iso
from ...consistency.postgresql import socket_dir_of
from ...core.jobspec import DATASET_TAG_PREFIX, FieldReader
from ...storage.factory import open_job_repository
from ...storage.repository import Repository
from .source import CdpSource
from .wal.archiver import ArchiverConfigError, load_archiver_config
from .wal.archiving import ArchiverStatus, assess_rpo, write_heartbeat
from .wal.basebackup import BaseBackupError, apply_retention, take_base_backup
from .wal.continuity import Verifier, VerifyState, floor_path, raise_floor, read_floor, state_path
from .wal.drill import run_pg_drill
from .wal.factory import open_store
from .wal.server import PgServer, ServerError
from .wal.store import Store, StoreError, parse_store

log = logging.getLogger(__name__)

ACTIONS = ("points", "base_backup")
DEFAULT_RPO = 300


class PostgresSource(CdpSource):
    """options.source.type postgresql (see the module docstring)."""

    kind = "postgresql"

    def parse_options(self, fields: FieldReader) -> None:
        source = fields.sub("source")
        kind = source.get("type", str, required=True)
        if kind != self.kind:
            raise ValueError("options.source.type: expected %s, got %r" % (self.kind, kind))
        self.data_directory: str = source.get("data_directory", str, required=True)
        self.port: int | None = source.get("port", int)
        self.host: str | None = source.get("host", str)
        self.user: str | None = source.get("user", str)
        self.database: str | None = source.get("database", str)
        source.done()
        self.interval_minutes: int = fields.get("interval_minutes", int, 1)
        if self.interval_minutes < 1:
            raise ValueError("options.interval_minutes: at least 1")
        self.rpo: int = fields.duration("rpo", DEFAULT_RPO) or DEFAULT_RPO
        self.action: str = fields.get("action", str, "points")
        if self.action not in ACTIONS:
            raise ValueError("options.action: expected one of %s, got %r" % (", ".join(ACTIONS), self.action))
        self.archiver_config: str = fields.get("archiver_config", str, required=True)
        # The base backup job is a job of its own (its own lock: a long base backup never blocks the
        # points) that carries the dataset's tag; archive, heartbeat and state files are the dataset's.
        self.dataset: str = next((t[len(DATASET_TAG_PREFIX):] for t in self.config.tags if t.startswith(DATASET_TAG_PREFIX)),
                                 self.config.dataset)
        self.store_settings = parse_store(fields.get("wal_store", dict, required=True), "options.wal_store")
        self.server: PgServer | None = None
        self.store: Store | None = None
        self.repo: Repository | None = None
        self.status: ArchiverStatus | None = None

    def record_details(self) -> dict[str, Any]:
        return {"action": self.action, "rpo": None, "archiver": None, "heartbeat": None, "verify": None,
                "base_backup": None, "retention": None}

    # -- before the hooks -----------------------------------------------------------------------

    def preflight(self, run: RunContext) -> None:
        config = self.config
        # Without a host, the socket the cluster itself announces (a socket directory of its own is common).
        self.server = PgServer(self.host or socket_dir_of(self.data_directory), self.port, self.user, self.database, config.files.staging)
        try:
            self.store = open_store(self.store_settings)
            self.status = ArchiverStatus.read(self.server)
        except (ServerError, StoreError) as exc:
            raise RunFailed(str(exc)) from None
        if self.status.in_recovery:
            raise RunFailed("%s is a standby: CDP archiving and base backups run on the primary" % self.server.describe())
        self._check_configuration()
        if self.action == "base_backup":
            self.repo = open_job_repository(config, run.redact, run.command_prefix)
            if run.interrupted or int(run.previous.get("consecutive_failures") or 0) > 0:
                self.repo.unlock()

    def _check_configuration(self) -> None:
        """The server is the cluster of options.source.data_directory, and its archiver writes
        where this job verifies: a mix-up would verify (and drill) the wrong archive."""
        served = self.status.data_directory
        if served and os.path.realpath(served) != os.path.realpath(self.data_directory):
            raise RunFailed("%s serves %s, not options.source.data_directory %s" % (
                self.server.describe(), served, self.data_directory))
        try:
            archiver = load_archiver_config(self.archiver_config)
        except ArchiverConfigError as exc:
            raise RunFailed(str(exc)) from None
        if archiver.dataset != self.dataset or archiver.store != self.store_settings:
            raise RunFailed("the archiver configuration %s names dataset %s and %s, this job dataset %s and %s" % (
                self.archiver_config, archiver.dataset, archiver.open_store().describe(), self.dataset,
                self.store.describe()))

    # -- the recovery point ---------------------------------------------------------------------

    def capture(self, run: RunContext) -> None:
        self._by_action(run, self._base_backup, self._point)

    def _by_action(self, run: RunContext, base_backup: Callable[[RunContext], None],
                   points: Callable[[RunContext], None]) -> None:
        """The step of the job's action; expected failures of servers, stores and base backups fail the run."""
        try:
            (base_backup if self.action == "base_backup" else points)(run)
        except (ServerError, StoreError, BaseBackupError) as exc:
            raise RunFailed(str(exc)) from None

    def _point(self, run: RunContext) -> None:
        """The heartbeat (and a WAL switch when the archive is idle), and the RPO of the status before."""
        status = self.status
        idle = status.idle_seconds()
        switch = idle is None or idle > self.interval_minutes * 60
        heartbeat = write_heartbeat(self.server, self.dataset, switch)
        rpo = assess_rpo(status, float(self.rpo))
        details = run.record.details
        details.update(heartbeat=heartbeat, archiver=status.to_dict(), rpo=rpo)
        if rpo["at_risk"]:
            run.record.warnings.append("RPO at risk: %s" % rpo["reason"])
        run.record.snapshot_id = status.last_archived_wal

    def _base_backup(self, run: RunContext) -> None:
        config = self.config
        log.info("streaming a base backup of %s into %s", self.server.describe(), config.repository)
        base, summary = take_base_backup(self.repo, self.server, self.store, self.dataset, config.host,
                                         timeout=run.time_left())
        run.record.snapshot_id = base.id
        run.record.bytes_processed = summary.total_bytes_processed
        run.record.bytes_added = summary.data_added
        run.record.details["base_backup"] = base.to_dict()

    # -- after a good point ---------------------------------------------------------------------

    def maintain(self, run: RunContext) -> None:
        self._by_action(run, self._retention, self._verify)

    def _verify(self, run: RunContext) -> None:
        config = self.config
        path = state_path(config.status_dir, self.dataset)
        state = VerifyState.load(path, read_floor(floor_path(config.status_dir, self.dataset)))
        report = Verifier(self.store, self.status.segment_size).incremental(state)
        state.verified_at = iso(run.now())
        state.save(path)
        run.record.details["verify"] = report.to_dict()
        if not report.ok:
            raise RunFailed("WAL continuity: %s" % "; ".join(report.problems))

    def _retention(self, run: RunContext) -> None:
        rules = {key: value for key, value in self.config.retention.items() if value}
        if not rules:
            return
        path = floor_path(self.config.status_dir, self.dataset)
        run.record.details["retention"] = apply_retention(
            self.repo, self.store, self.dataset, rules, timeout=run.time_left(),
            on_floor=lambda segment: raise_floor(path, segment, self.status.segment_size))

    @classmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        return run_pg_drill(params, check_only)
