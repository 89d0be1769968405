# -*- coding: utf-8 -*-
# Private to restorable.backup: restore drills of CDP PostgreSQL datasets, run by the DrillEngine.
"""A drill restores a point in time into the sandbox and proves it landed there.

Points: every base backup (at its stop time) and the newest archived WAL file (at the time it
was stored: the newest point a restore reaches, whose age is the RPO). The drill's point in
time follows the engine's choice rules over the archive's time range: ``latest`` restores all
archived WAL; ``random`` picks a time (seeded) between the oldest base backup and the newest
archived WAL, within the last N days; ``at`` restores to a given time inside that range.

Layers: ``integrity`` is restic's check of the repository plus the WAL continuity from the chosen
base backup's start segment to the end of the archive (names and timeline histories; every file
PostgreSQL reads is verified against its checksum by restore-wal anyway). ``restore`` is the
point-in-time restore itself (base backup, replay, promotion: the RTO). ``freshness`` is the age
of the newest archived WAL against the RPO. ``content`` is the proof of the time: the restored
heartbeat table has rows up to the target time, none after it, and its newest row lies within
one job interval (plus a minute of scheduling slack) before the target. ``application`` runs
pg_amcheck and the profile's SQL checks (drill/application.py) on the restored server, which is
then stopped.
"""
from __future__ import annotations

import datetime
import json
import os
import pwd
import random
import shutil
import tempfile
import time
from typing import Any, Sequence

from ....core.layout import HostLayout
from ....drill.application import PG_SUPERUSER, SCRATCH_DIR, PostgreSQLApplicationCheck, check_settings
from ....drill.engine import (FAILED, OK, DrillEngine, DrillError, Layer, RecoveryPoint, RestoreDriver, RestoreStats,
                              hours, iso, parse_time)
from ....drill.restored import CheckFailed
from ....storage.repository import Repository, RepositoryError
from ...drill_params import check_only_record, integrity_layer, open_drill_repository, spec_from_params
from .archiver import ArchiverConfigError, archiver_document, load_archiver_config
from .archiving import heartbeat_query
from .basebackup import BaseBackup, BaseBackupError, list_base_backups
from .continuity import Verifier
from .factory import open_store
from .pitr import STOP_MARGIN, PitrError, RecoveryTarget, SandboxServer, candidate_bases, newest_wal, restore
from .settings import restore_command
from .store import Store, StoreError

HEARTBEAT_SLACK = 60.0
DEFAULT_INTERVAL_MINUTES = 1
DEFAULT_DATABASE = "postgres"


class PgRestoreDriver(RestoreDriver):
    """Points in time of one dataset: its base backups in repo, its WAL in store."""

    tier = "cdp"

    def __init__(self, repo: Repository, store: Store, dataset: str, restore_command_text: str,
                 protected: Sequence[str] = (), interval_minutes: float = DEFAULT_INTERVAL_MINUTES,
                 rpo_seconds: float | None = None, database: str = DEFAULT_DATABASE,
                 application: dict[str, Any] | None = None, read_data_subset: str | None = None,
                 timeout: float | None = None) -> None:
        self.repo = repo
        self.store = store
        self.dataset = dataset
        self.restore_command = restore_command_text
        self.protected = list(protected)
        self.interval_seconds = float(interval_minutes) * 60.0
        self.rpo_seconds = rpo_seconds
        self.database = database
        self.application_settings = dict(application or {})
        self.read_data_subset = read_data_subset
        self.timeout = float(timeout) if timeout else None
        self.bases: list[BaseBackup] = []
        self.newest: tuple[str, datetime.datetime] | None = None
        self.chosen: RecoveryPoint | None = None
        self.server: SandboxServer | None = None

    # -- points ---------------------------------------------------------------------------------

    def points(self) -> list[RecoveryPoint]:
        try:
            self.bases = list_base_backups(self.repo, self.dataset)[0]
            self.newest = newest_wal(self.store)
        except (RepositoryError, BaseBackupError, StoreError) as exc:
            raise DrillError(str(exc)) from None
        if not self.bases:
            raise DrillError("dataset %s has no base backup in the repository" % self.dataset)
        points = [RecoveryPoint(base.id, base.stop_time, base.short_id, [], {"base": base}) for base in self.bases]
        if self.newest is not None:
            name, when = self.newest
            points.append(RecoveryPoint("wal:" + name, when, name, [], {"latest": True}))
        return points

    def choose_point(self, points: Sequence[RecoveryPoint], choice: dict[str, Any],
                     now: datetime.datetime) -> RecoveryPoint | None:
        """A point in time in the archive's range (see the module docstring)."""
        latest = next((p for p in points if p.extra.get("latest")), None)
        if latest is None:
            return None
        earliest = min(base.stop_time for base in self.bases) + STOP_MARGIN
        kind = choice.get("choice", "latest")
        if kind == "latest":
            when = latest.time
            self.chosen = RecoveryPoint("latest", when, "latest", [], {"target": RecoveryTarget()})
            return self.chosen
        if kind == "random":
            days = int(choice.get("within_days") or 0)
            if days < 1:
                raise DrillError("recovery_point.within_days must be at least 1 for choice random")
            low = max(earliest, now - datetime.timedelta(days=days))
            if low > latest.time:
                return None
            seed = choice.get("seed")
            fraction = random.Random(seed if seed is not None else None).random()
            when = low + (latest.time - low) * fraction
        elif kind == "at":
            if not choice.get("at"):
                raise DrillError("recovery_point.at is required for choice at")
            when = parse_time(str(choice["at"]))
            if not earliest <= when <= latest.time:
                return None
        else:
            raise DrillError("unknown recovery point choice %r (latest, random or at)" % kind)
        self.chosen = RecoveryPoint("time:" + iso(when), when, when.strftime("%H:%M:%S"), [],
                                    {"target": RecoveryTarget("time", time=when)})
        return self.chosen

    def chosen_base(self) -> BaseBackup | None:
        if self.chosen is None:
            return None
        candidates = candidate_bases(self.bases, self.chosen.extra["target"])
        return candidates[0] if candidates else None

    # -- layers ---------------------------------------------------------------------------------

    def repository_layers(self, checks: Sequence[str]) -> list[Layer]:
        if "integrity" not in checks:
            return []
        layer = integrity_layer(self.repo, self.read_data_subset, self.timeout)
        began = time.monotonic()
        base = self.chosen_base()
        if base is None:
            return [layer]
        try:
            report = Verifier(self.store, base.segment_size, read_checksums=False).from_segment(base.start_wal)
        except StoreError as exc:
            return [Layer("integrity", FAILED, "%s; WAL: %s" % (layer.message, exc), layer.seconds, layer.details)]
        layer.details["wal"] = report.to_dict()
        layer.seconds += time.monotonic() - began
        if not report.ok:
            return [Layer("integrity", FAILED, "%s; WAL: %s" % (layer.message, "; ".join(report.problems)),
                          layer.seconds, layer.details)]
        last = max(report.last.values()) if report.last else base.start_wal
        message = "%s; WAL: %d segment(s) from %s to %s continuous" % (
            layer.message, report.segments, base.start_wal, last)
        return [Layer("integrity", layer.status, message, layer.seconds, layer.details)]

    def restore(self, point: RecoveryPoint, target: str, sample: dict[str, Any]) -> RestoreStats:
        try:
            self.server = restore(self.repo, self.bases, point.extra["target"], target, self.restore_command,
                                  self.protected, self.store, durable=False, timeout=self.timeout or 900.0)
        except PitrError as exc:
            raise DrillError("point-in-time restore to %s: %s" % (point.extra["target"].describe(), exc)) from None
        return RestoreStats()

    def verify_layers(self, point: RecoveryPoint, target: str, checks: Sequence[str]) -> list[Layer]:
        layers = []
        if "freshness" in checks:
            layers.append(self.freshness())
        if "content" in checks:
            layers.append(self.heartbeat(point))
        if "application" not in checks:
            self.close()
        return layers

    def freshness(self) -> Layer:
        if self.newest is None:
            return Layer("freshness", FAILED, "no WAL is archived in %s" % self.store.describe())
        name, when = self.newest
        age = max(0.0, (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
        details = {"newest_wal": name, "stored": iso(when), "age_seconds": round(age, 1)}
        if self.rpo_seconds is not None and age > self.rpo_seconds:
            return Layer("freshness", FAILED, "the newest archived WAL %s is %s old, more than the RPO of %s" % (
                name, hours(age), hours(self.rpo_seconds)), details=details)
        return Layer("freshness", OK, "the newest archived WAL %s is %s old" % (name, hours(age)), details=details)

    def heartbeat(self, point: RecoveryPoint) -> Layer:
        """The restored heartbeat rows prove the time the restore reached.

        A time target: no row after it, the newest within one interval before it. The latest
        point: no row after the restore itself (the store's times are only as precise as the
        store: S3 to the second, SFTP to the minute), the newest within one interval of the
        newest archived WAL."""
        began = time.monotonic()
        latest = point.extra["target"].kind == "latest"
        limit = datetime.datetime.now(datetime.timezone.utc) if latest else point.time
        tolerance = self.interval_seconds + HEARTBEAT_SLACK
        server = self.server
        try:
            row = json.loads(server.psql(heartbeat_query(self.dataset, limit.timestamp()), self.database))
        except (PitrError, ValueError) as exc:
            return Layer("content", FAILED, "cannot read the heartbeat of the restored server: %s" % exc,
                         time.monotonic() - began)
        details = dict(row, target=iso(point.time), limit=iso(limit), replay_lsn=server.replay_lsn,
                       timeline=server.timeline, base_backup=server.base.short_id, tolerance_seconds=tolerance)
        if row.get("newest") is not None:
            details["newest"] = iso(datetime.datetime.fromtimestamp(row["newest"], datetime.timezone.utc))
        seconds = time.monotonic() - began
        if not row.get("rows"):
            return Layer("content", FAILED, "the restored database %s has no heartbeat row of dataset %s" % (
                self.database, self.dataset), seconds, details)
        if row["after"]:
            return Layer("content", FAILED, "%d heartbeat row(s) are newer than %s %s (the newest at %s): the restore "
                         "is not at its point in time" % (row["after"], "the restore" if latest else "the target",
                                                          iso(limit), details["newest"]), seconds, details)
        behind = point.time.timestamp() - row["newest"]
        if behind > tolerance:
            return Layer("content", FAILED, "the newest heartbeat row (%s) is %s before %s %s, more than one interval: "
                         "the restore stopped short" % (details["newest"], hours(behind), "the newest archived WAL"
                                                        if latest else "the target", iso(point.time)), seconds, details)
        return Layer("content", OK, "restored to %s (LSN %s, timeline %d): newest heartbeat row %s, none after %s" % (
            "the latest archived WAL" if latest else iso(point.time), server.replay_lsn, server.timeline,
            details["newest"], "the restore" if latest else "the target"), seconds, details)

    def application(self, point: RecoveryPoint, target: str) -> Layer:
        """pg_amcheck and the profile's SQL checks on the restored server; then it stops."""
        began = time.monotonic()
        server = self.server
        check = PostgreSQLApplicationCheck(check_settings({"postgresql": self.application_settings}, "postgresql"),
                                           os.path.join(target, SCRATCH_DIR), self.timeout, server.bindir)
        check.port, check.run_dir = server.port, server.socket_dir
        check.details["mode"] = "point-in-time"
        try:
            self._scratch(check.scratch)
            databases = check.list_databases()
            problems = check.amcheck()
            database = check.check_database(databases)
            problems += check.run_queries(lambda query: check.query(database, query))
        except CheckFailed as exc:
            return Layer("application", FAILED, str(exc), time.monotonic() - began, check.details)
        finally:
            self.close()
        check.details["databases"] = databases
        if problems:
            return Layer("application", FAILED, "; ".join(problems), time.monotonic() - began, check.details)
        return Layer("application", OK, "restored server passes pg_amcheck on %d database(s)%s" % (
            len(databases), ", %d check(s) true" % len(check.checks) if check.checks else ""),
            time.monotonic() - began, check.details)

    @staticmethod
    def _scratch(path: str) -> None:
        os.makedirs(path, mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_SUPERUSER)
            os.chown(path, user.pw_uid, user.pw_gid)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


# -- from the drill's parameters ----------------------------------------------------------------

def drill_store(params: dict[str, Any], directory: str) -> tuple[Store, str]:
    """(the dataset's WAL store, an archiver configuration restore-wal can read): the one the
    parameters name, or one written below directory (owned by the cluster's OS user)."""
    if params.get("archiver_config"):
        config = load_archiver_config(params["archiver_config"])
        return config.open_store(), config.path
    try:
        document = archiver_document(params["dataset"], params.get("wal_store") or {})
    except ValueError as exc:
        raise DrillError("wal_store: %s" % exc) from None
    path = os.path.join(directory, "archiver.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    if os.geteuid() == 0:
        user = pwd.getpwnam(PG_SUPERUSER)
        os.chmod(directory, 0o711)
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(path, 0o600)
    return open_store(document["store"]), path


def run_pg_drill(params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    """The drill record of a CDP PostgreSQL dataset (check_only: the sandbox test alone)."""
    source = params.get("source") or {}
    protected = list(params.get("protected_paths") or []) + ([source["data_directory"]]
                                                             if source.get("data_directory") else [])
    spec = spec_from_params(dict(params, tier=params.get("tier") or "cdp", protected_paths=protected))
    if check_only:
        return check_only_record(spec)
    secrets_dir = tempfile.mkdtemp(prefix="restorable-drill-")
    driver = None
    try:
        repo = open_drill_repository(params, secrets_dir)
        store, config_path = drill_store(params, secrets_dir)
        command = restore_command(config_path, params.get("install_dir") or HostLayout().install_dir)
        driver = PgRestoreDriver(repo, store, spec.dataset, command, protected,
                                 params.get("interval_minutes") or DEFAULT_INTERVAL_MINUTES, spec.rpo_seconds,
                                 source.get("database") or DEFAULT_DATABASE, params.get("application") or {},
                                 params.get("read_data_subset"), params.get("timeout"))
        return DrillEngine(spec, driver).run()
    except (ArchiverConfigError, StoreError, PitrError) as exc:
        raise DrillError(str(exc)) from None
    finally:
        if driver is not None:
            driver.close()
        shutil.rmtree(secrets_dir, ignore_errors=True)
