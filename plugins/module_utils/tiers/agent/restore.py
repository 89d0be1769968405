# -*- coding: utf-8 -*-
# Private to restorable.backup: the agent tier's restore driver (restic).
# Points are the dataset's snapshots (tag dataset:<job>, the source host); the restore is
# `restic restore <id> --target <dir> --verify` (with --include per sampled file), whose restore
# time alone is the RTO (restic times its verification); layers are
# integrity (`restic check --read-data-subset`), freshness (the canary the backup wrote) and
# content (restic's own verification of every restored file against the repository).
from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any, Sequence

from ...core.jobspec import DATASET_TAG_PREFIX
from ...storage.repository import Repository, RepositoryError, RestoreResult
from ...drill.application import CHECKS, database_layer
from ...drill.engine import (FAILED, OK, SKIPPED, DrillError, Layer, RecoveryPoint, RestoreDriver, RestoreStats,
                             parse_time, sample_items)
from ..drill_params import integrity_layer
from .streams import STREAM_TAG_PREFIX, RunStreams

# The runner writes the canary, then starts restic, which stamps the snapshot with its start.
CANARY_MAX_LEAD = 900
CANARY_CLOCK_SLACK = 5


class AgentRestoreDriver(RestoreDriver):
    """Restores a restic snapshot of one agent dataset."""

    tier = "agent"

    def __init__(self, repository: Repository, dataset: str, source_host: str,
                 status: dict[str, Any] | None = None, read_data_subset: str | None = "5%",
                 sample_seed: int | None = None, timeout: float | None = None,
                 application: dict[str, Any] | None = None, canary_path: str | None = None) -> None:
        self.application_profile = dict(application or {})
        self.planned_canary_path = canary_path  # where the source writes it, for drills without its status
        self.sampled = False
        self.repo = repository
        self.dataset = dataset
        self.source_host = source_host
        self.status = status or {}
        self.read_data_subset = read_data_subset
        self.sample_seed = sample_seed
        self.timeout = timeout
        self.restored: RestoreResult | None = None

    def points(self) -> list[RecoveryPoint]:
        try:
            snapshots = self.repo.snapshots(host=self.source_host, tags=[DATASET_TAG_PREFIX + self.dataset])
        except RepositoryError as exc:
            raise DrillError(exc.message) from None
        points = []
        for snap in snapshots:
            if any(str(tag).startswith(STREAM_TAG_PREFIX) for tag in snap.get("tags") or []):
                # A dump stream of a consistency profile: part of a run, not a point of its own.
                # Each run's file snapshot (with the canary) is the point; the application layer
                # finds the streams beside it.
                continue
            try:
                when = parse_time(snap["time"])
            except (KeyError, ValueError):
                continue
            points.append(RecoveryPoint(snap["id"], when, snap.get("short_id") or snap["id"][:8],
                                        list(snap.get("paths") or []), {"tags": snap.get("tags") or []}))
        return points

    # -- restore ------------------------------------------------------------------------------

    def files_of(self, point: RecoveryPoint) -> list[str]:
        try:
            return self.repo.list_files(point.id, timeout=self.timeout)
        except RepositoryError as exc:
            raise DrillError(exc.message) from None

    def canary_path(self) -> str | None:
        return self.status.get("canary_path") or self.planned_canary_path or None

    def restore(self, point: RecoveryPoint, target: str, sample: dict[str, Any]) -> RestoreStats:
        stats = RestoreStats()
        includes: list[str] = []
        if sample.get("mode", "all") != "all":
            canary = self.canary_path()
            everything = self.files_of(point)
            files = [path for path in everything if path != canary]
            # Same seed and same point: same files; without a seed, the point's id seeds the choice.
            includes = sample_items(files, sample, "%s:%s" % (self.sample_seed if self.sample_seed is not None else "",
                                                              point.id))
            if canary and canary in everything:
                includes.append(canary)  # freshness needs it, whatever the sample
            stats.sampled, stats.sample_size, stats.population = True, len(includes), len(files)
            self.sampled = True
        try:
            restored = self.repo.restore(point.id, target, includes, timeout=self.timeout)
        except RepositoryError as exc:
            raise DrillError(exc.message) from None
        # The verification of the same command belongs to the content layer, not to the RTO.
        self.restored = restored
        stats.seconds = restored.seconds
        return stats

    # -- layers -------------------------------------------------------------------------------

    def repository_layers(self, checks: Sequence[str]) -> list[Layer]:
        return [self.integrity()] if "integrity" in checks else []

    def verify_layers(self, point: RecoveryPoint, target: str, checks: Sequence[str]) -> list[Layer]:
        layers = []
        if "freshness" in checks:
            layers.append(self.freshness(point, target))
        if "content" in checks:
            layers.append(self.content(point, target))
        return layers

    def integrity(self) -> Layer:
        return integrity_layer(self.repo, self.read_data_subset, self.timeout)

    def freshness(self, point: RecoveryPoint, target: str) -> Layer:
        canary = self.canary_path()
        token = self.status.get("canary_token")
        if not canary:
            return Layer("freshness", SKIPPED, "the source status records no canary")
        restored = os.path.join(target, canary.lstrip("/"))
        try:
            with open(restored, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError) as exc:
            return Layer("freshness", FAILED, "canary %s missing or unreadable in the restore: %s" % (
                canary, getattr(exc, "strerror", None) or exc))
        if not token:
            return self._canary_written_with_point(document, point)
        found = str(document.get("token") or "")
        recorded = self.status.get("snapshot_id")
        if recorded and not (point.id.startswith(recorded) or recorded.startswith(point.id)):
            # The status knows the token of its own snapshot only: an older point holds an older canary.
            if document.get("dataset") != self.dataset:
                return Layer("freshness", FAILED, "the restored canary belongs to dataset %s, not %s" % (
                    document.get("dataset"), self.dataset))
            return Layer("freshness", OK, "canary present, written %s (token recorded only for point %s)" % (
                document.get("written"), recorded[:8]), details={"written": document.get("written")})
        if found == token:
            return Layer("freshness", OK, "canary token matches the one recorded by the backup of %s" % (
                self.status.get("finished") or "?"), details={"written": document.get("written")})
        return Layer("freshness", FAILED, "canary token %s... differs from the one the backup recorded %s..." % (
            found[:8], token[:8]), details={"written": document.get("written")})

    def _canary_written_with_point(self, document: dict[str, Any], point: RecoveryPoint) -> Layer:
        """Without the source's status (a drill on another host) the token is unknown; the canary
        must still be this dataset's, from the source host, written by the run that took the
        point: restic stamps a snapshot with its start, just after the runner writes the canary."""
        written = str(document.get("written") or "")
        details = {"written": written, "token_known": False}
        if document.get("dataset") != self.dataset or document.get("host") != self.source_host:
            return Layer("freshness", FAILED, "the restored canary belongs to %s on %s, not %s on %s" % (
                document.get("dataset"), document.get("host"), self.dataset, self.source_host), details=details)
        try:
            lead = (point.time - parse_time(written)).total_seconds()
        except ValueError:
            return Layer("freshness", FAILED, "the restored canary has no readable write time: %r" % written, details=details)
        if not -CANARY_CLOCK_SLACK <= lead <= CANARY_MAX_LEAD:
            return Layer("freshness", FAILED, "stale canary: written %s, %.0fs before the point's backup started "
                         "(at most %ds expected)" % (written, lead, CANARY_MAX_LEAD), details=details)
        return Layer("freshness", OK, "canary of this dataset written %.1fs before the point was taken (token recorded "
                     "only on the source host)" % max(lead, 0.0), details=details)

    def content(self, point: RecoveryPoint, target: str) -> Layer:
        restored = self.restored
        if restored is None or restored.verified_files is None:
            return Layer("content", FAILED, "restic restore --verify reported no verification: %s" % (
                (restored.detail if restored else "") or "no output"))
        details = {"verified_files": restored.verified_files}
        if restored.problems:
            return Layer("content", FAILED, "restic verified %d file(s) with errors: %s" % (
                restored.verified_files, "; ".join(restored.problems[:5])), details=details)
        return Layer("content", OK, "restic verified %d restored file(s) against the repository" % restored.verified_files,
                     restored.verify_seconds or 0.0, details=details)

    # -- application --------------------------------------------------------------------------

    def application(self, point: RecoveryPoint, target: str) -> Layer:
        """Prove the restored data opens in its application, by consistency profile type.

        sqlite: every database of the profile, restored (its consistent copy below the staging
        directory when there is one, else the file itself), opens read-only and passes
        PRAGMA integrity_check. postgresql and mariadb: the run's streams start in a scratch
        server below the restore directory, which must pass its integrity check and the
        profile's SQL checks (see application.py).
        """
        kind = self.application_profile.get("type")
        if kind == "sqlite":
            return self._sqlite(target)
        if kind in CHECKS:
            streams = RunStreams(self.repo, self.dataset, self.source_host, point.time, self.timeout)
            return database_layer(streams, self.application_profile, point, target, self.timeout)
        if not kind or kind == "none":
            return Layer("application", SKIPPED, "the dataset has no consistency profile to check")
        return Layer("application", SKIPPED, "no application check for %s profiles yet" % kind)

    def _sqlite(self, target: str) -> Layer:
        began = time.monotonic()
        databases = list((self.application_profile.get("sqlite") or {}).get("databases") or [])
        restored = []
        for directory, _dirs, names in os.walk(target):
            restored += [os.path.join(directory, name) for name in names]
        checked, problems, missing = [], [], []
        for database in databases:
            suffix = "/" + database.lstrip("/")
            found = [path for path in restored if path.endswith(suffix)]
            if not found:
                missing.append(database)
                continue
            # The staged copy (".../sqlite/<path>") is the consistent one; prefer it.
            path = max(found, key=lambda p: ("/sqlite" + suffix in p, len(p)))
            problem = sqlite_problem(path)
            if problem:
                problems.append("%s: %s" % (database, problem))
            else:
                checked.append(database)
        seconds = time.monotonic() - began
        details = {"checked": checked, "missing": missing}
        if problems:
            return Layer("application", FAILED, "; ".join(problems), seconds, details)
        if missing and not self.sampled:
            return Layer("application", FAILED, "not in the restored point: %s" % ", ".join(missing), seconds, details)
        if not checked:
            return Layer("application", SKIPPED, "no database of the profile in the restored sample", seconds, details)
        return Layer("application", OK, "%d SQLite database(s) open and pass integrity_check" % len(checked),
                     seconds, details)


def sqlite_problem(path: str) -> str:
    """Why the SQLite database at path is not usable, or '' when integrity_check passes."""
    try:
        connection = sqlite3.connect("file:%s?mode=ro" % path.replace("?", "%3f").replace("#", "%23"), uri=True)
        try:
            rows = [row[0] for row in connection.execute("PRAGMA integrity_check").fetchall()]
            tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return "does not open as SQLite: %s" % exc
    if rows != ["ok"]:
        return "integrity_check: %s" % "; ".join(str(r) for r in rows[:5])
    if not tables:
        return "opens but holds no table"
    return ""
