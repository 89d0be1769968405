# -*- coding: utf-8 -*-
# Private to restorable.backup: the btrfs source of the CDP tier, backup and restore in one file.
# A run writes a canary into the subvolume, takes a read-only snapshot (inside the freezing
# profile's window when the dataset names one), sends every point the replica lacks, thins both
# sides and measures how old the newest point of each side is. Drills and restores make a
# writable snapshot of a point: in a sandbox, or (asked for) in place of the subvolume.
"""Options (``options`` of the job)::

    source: {type: btrfs, subvolume: /srv/data, snapshot_dir: /srv/.snapshots/data}
    interval_minutes: 1
    thinning: [{older_than: 3600, keep_every: 900}]   # seconds or durations (1h, 15m)
    max_age: 1209600                                   # optional
    rpo: 900                                           # optional, for rpo.at_risk
    replica: {host, port, user, path, identity_file, known_hosts_file, ssh_options, full_resend}

``snapshot_dir`` defaults to ``<parent of subvolume>/.restorable-cdp/<subvolume name>``.
Each point's canary token and the replica's last listing live in
``<status_dir>/<dataset>.cdp-points.json``.
"""
from __future__ import annotations

import datetime
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Sequence

from ...common.fileio import atomic_write_json, read_json
from ...consistency.base import FreezingProfile, QuiesceFailed, quiesce_or_crash_consistent
from ...core.driver import RunContext, RunFailed, iso
from ...core.jobspec import FieldReader
from ...drill.engine import (FAILED, OK, DrillEngine, DrillError, Layer, RecoveryPoint, RestoreDriver, RestoreStats,
                             check_sandbox, choose_point, hours)
from ...snapshot.btrfs import is_read_only, received_uuid
from ...snapshot.provider import SnapshotError
from ..drill_params import check_only_record, spec_from_params
from .points import (CANARY, PointStore, default_snapshot_dir, is_subvolume, point_name, point_time, read_canary,
                     require_btrfs, write_canary)
from .replica import ReplicaError, ReplicaLink, ReplicaOptions, Replication, Replicator, newest_common, protected_points
from .source import CdpSource
from .thinning import ThinRule, points_to_prune, read_thinning_rules

STATE_FORMAT = 1
STATE_SUFFIX = ".cdp-points.json"
POINTS_ON = ("source", "replica")


def _absolute(path: str, where: str) -> str:
    if not os.path.isabs(path):
        raise ValueError("%s: expected an absolute path, got %r" % (where, path))
    return os.path.normpath(path)


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


@dataclass
class BtrfsOptions:
    subvolume: str
    snapshot_dir: str
    interval_minutes: int
    rules: list[ThinRule] = field(default_factory=list)
    max_age: int | None = None
    rpo: int | None = None
    replica: ReplicaOptions | None = None

    @classmethod
    def parse(cls, fields: FieldReader) -> "BtrfsOptions":
        source = fields.sub("source")
        source.get("type", str)  # the tier's driver chose this source by it
        subvolume = _absolute(source.get("subvolume", str, required=True), source.name("subvolume"))
        snapshot_dir = source.get("snapshot_dir", str)
        source.done()
        snapshot_dir = _absolute(snapshot_dir, source.name("snapshot_dir")) if snapshot_dir else default_snapshot_dir(subvolume)
        if _inside(snapshot_dir, subvolume):
            raise ValueError("%s: the points cannot live inside the subvolume they are taken of" % source.name("snapshot_dir"))
        interval = fields.get("interval_minutes", int, required=True)
        if interval < 1:
            raise ValueError("%s: expected at least 1" % fields.name("interval_minutes"))
        options = cls(subvolume, snapshot_dir, interval, read_thinning_rules(fields), fields.duration("max_age"), fields.duration("rpo"))
        replica = fields.sub("replica")
        if replica.data:
            options.replica = ReplicaOptions.parse(replica)
        return options


class PointState:
    """The source's memory between runs: each point's canary token (what a drill on this host can
    check the restored canary against) and the replica's last listing (what a run that cannot
    reach the replica protects from thinning)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            document = read_json(path) or {}
        except ValueError:
            document = {}  # rewritten whole at the end of the run
        self.canaries: dict[str, str] = dict(document.get("canaries") or {})
        self.replica_points: list[str] = list(document.get("replica_points") or [])
        self.replica_listed: str | None = document.get("replica_listed")

    def save(self, names: Collection[str]) -> None:
        """Written with the tokens of the points that still exist on either side."""
        self.canaries = {name: token for name, token in self.canaries.items() if name in names}
        atomic_write_json(self.path, {"format": STATE_FORMAT, "canaries": self.canaries,
                                      "replica_points": self.replica_points, "replica_listed": self.replica_listed},
                          mode=0o600)


def state_path(status_dir: str, dataset: str) -> str:
    return os.path.join(status_dir, dataset + STATE_SUFFIX)


def _age(names: Sequence[str], now: datetime.datetime) -> float | None:
    return round(max(0.0, (now - point_time(max(names))).total_seconds()), 1) if names else None


def _summary(names: Sequence[str]) -> dict[str, Any]:
    ordered = sorted(names)
    return {"count": len(ordered), "oldest": ordered[0] if ordered else None, "newest": ordered[-1] if ordered else None}


class BtrfsSource(CdpSource):
    """Read-only snapshots of one subvolume, replicated by btrfs send/receive over SSH."""

    kind = "btrfs"

    def __init__(self, config: Any) -> None:
        self.options: BtrfsOptions | None = None
        super().__init__(config)
        self.store = PointStore(self.options.snapshot_dir)
        self.state: PointState | None = None  # read in preflight, under the run's lock
        self.replicator: Replicator | None = None

    def parse_options(self, fields: FieldReader) -> None:
        self.options = BtrfsOptions.parse(fields)

    def record_details(self) -> dict[str, Any]:
        options = self.options
        return {"subvolume": options.subvolume, "snapshot_dir": options.snapshot_dir,
                "interval_minutes": options.interval_minutes, "points": None, "rpo": None, "thinning": None,
                "replica": None}

    # -- before the hooks -----------------------------------------------------------------------

    def preflight(self, run: RunContext) -> None:
        options = self.options
        try:
            require_btrfs(options.subvolume, "subvolume")
            if not is_subvolume(options.subvolume):
                raise SnapshotError("%s is not a btrfs subvolume" % options.subvolume)
            os.makedirs(options.snapshot_dir, mode=0o700, exist_ok=True)
            require_btrfs(options.snapshot_dir, "snapshot directory")
        except (SnapshotError, OSError) as exc:
            raise RunFailed(str(exc)) from None
        self.state = PointState(state_path(self.config.status_dir, self.config.dataset))
        if options.replica is not None:
            self.replicator = Replicator(ReplicaLink(options.replica, self.store, run.command_prefix))

    # -- the point ------------------------------------------------------------------------------

    def capture(self, run: RunContext) -> None:
        name = point_name(run.now())
        token = secrets.token_hex(16)
        try:
            write_canary(self.options.subvolume, self.config.dataset, name, token, iso(run.now()))
        except OSError as exc:
            raise RunFailed("cannot write the canary into %s: %s" % (self.options.subvolume, exc.strerror)) from None
        self._snapshot(run, name)
        run.record.snapshot_id = name
        self.state.canaries[name] = token
        self.state.save(set(self.store.names()) | set(self.state.replica_points))

    def _snapshot(self, run: RunContext, name: str) -> None:
        def take() -> str:
            return self.store.take(self.options.subvolume, name, run.command_prefix, run.time_left())

        profile = run.profile
        try:
            if profile is None:
                take()
                return
            if not isinstance(profile, FreezingProfile):
                raise RunFailed("consistency profile %s cannot freeze an application around a snapshot" % profile.kind)
            self._frozen(run, profile, take)
        except SnapshotError as exc:
            if profile is not None and profile.last_record is not None:
                run.record.consistency.update(seconds=profile.last_record.seconds)
            raise RunFailed(str(exc)) from None

    def _frozen(self, run: RunContext, profile: FreezingProfile, take: Callable[[], str]) -> None:
        """The snapshot inside the profile's freeze window; the release always runs (frozen())."""
        try:
            _path, record = quiesce_or_crash_consistent(profile, None, take)
        except QuiesceFailed as exc:
            reason = str(exc)
            if exc.result:  # taken, but not while the application was held: not the point it claims to be
                reason += self._discard(os.path.basename(exc.result))
            run.record.consistency.update(consistent=False, reason=reason, seconds=exc.record.seconds if exc.record else 0.0)
            raise RunFailed("could not make %s consistent: %s" % (profile.kind, reason)) from None
        run.record.consistency.update(consistent=record.consistent, reason=record.reason, seconds=record.seconds)
        if not record.consistent:
            run.record.warnings.append("only crash-consistent: %s" % record.reason)

    def _discard(self, name: str) -> str:
        try:
            self.store.delete([name])
        except SnapshotError as exc:
            return " (and point %s could not be removed: %s)" % (name, exc)
        return " (point %s removed)" % name

    # -- after the point ------------------------------------------------------------------------

    def maintain(self, run: RunContext) -> None:
        try:
            self._maintain(run)
        finally:
            if self.replicator is not None:
                self.replicator.close()

    def _maintain(self, run: RunContext) -> None:
        now = run.now()
        local = self.store.names()
        outcome = self.replicator.replicate(local, run.time_left) if self.replicator else None
        remote = self._remote(outcome, now)
        errors = [outcome.error] if outcome and outcome.error else []
        source_kept, replica_kept = protected_points(local, remote) if outcome else (set(), set())
        thinning = {"source_removed": self._thin_source(run, local, source_kept, now, errors)}
        local = self.store.names()
        if outcome and outcome.reached and not outcome.error:  # a refused or broken replication deletes nothing there
            thinning["replica_removed"] = self._thin_replica(run, outcome, replica_kept, now, errors)
            remote = self._remote(outcome, now)
        run.record.details["thinning"] = thinning
        if outcome and outcome.plan and outcome.plan.resend and outcome.sent:
            run.record.warnings.append("%s; point %s was sent in full, as replica.full_resend allows" % (
                outcome.plan.full_reason, outcome.sent[0]["point"]))
        self._report(run, local, remote, outcome, now)
        self.state.save(set(local) | set(remote))
        if errors:
            pending = len(run.record.details["replica"]["pending"]) if outcome else 0
            raise RunFailed("; ".join(errors) + (" (%d point(s) wait to be replicated)" % pending if pending else ""))

    def _remote(self, outcome: Replication | None, now: datetime.datetime) -> list[str]:
        """The replica's points: as listed this run, else as last listed (an unreachable replica)."""
        if outcome is None:
            return []
        if outcome.reached:
            self.state.replica_points, self.state.replica_listed = list(outcome.remote), iso(now)
        return list(self.state.replica_points)

    def _thin_source(self, run: RunContext, local: list[str], protected: set[str], now: datetime.datetime,
                     errors: list[str]) -> list[str]:
        options = self.options
        doomed = points_to_prune([(n, point_time(n)) for n in local], now, options.rules, options.max_age, protected)
        try:
            self.store.delete(doomed, run.time_left())
        except (SnapshotError, OSError) as exc:
            errors.append("thinning the source's points failed: %s" % exc)
            return []
        return doomed

    def _thin_replica(self, run: RunContext, outcome: Replication, protected: set[str], now: datetime.datetime,
                      errors: list[str]) -> list[str]:
        options = self.options
        doomed = points_to_prune([(n, point_time(n)) for n in outcome.remote], now, options.rules, options.max_age,
                                 protected)
        try:
            self.replicator.prune(outcome, doomed, run.time_left)
        except ReplicaError as exc:
            errors.append("thinning the replica's points failed: %s" % exc)
            return []
        return doomed

    def _report(self, run: RunContext, local: list[str], remote: list[str], outcome: Replication | None,
                now: datetime.datetime) -> None:
        details = run.record.details
        details["points"] = {"source": _summary(local), "replica": _summary(remote) if outcome else None}
        ages = {"source": _age(local, now)}
        if outcome is not None:
            ages["replica"] = _age(remote, now)
            details["replica"] = self._replica_details(outcome, local, remote)
        target = self.options.rpo
        late = {copy: age for copy, age in ages.items() if target and (age is None or age > target)}
        for copy, age in late.items():
            run.record.warnings.append("the %s has %s, beyond the RPO of %s" % (
                copy, "no point" if age is None else "its newest point %s old" % hours(age), hours(target)))
        # The keys ending in _seconds are the copies the metrics export (core/status.py).
        details["rpo"] = dict({"%s_seconds" % copy: age for copy, age in ages.items()},
                              at_risk=bool(late or (outcome and outcome.error)))

    def _replica_details(self, outcome: Replication, local: list[str], remote: list[str]) -> dict[str, Any]:
        replica = self.options.replica
        plan = outcome.plan
        base = newest_common(local, remote)
        full = None
        if plan is not None and plan.full_reason and outcome.sent:
            full = {"point": plan.sends[0][0], "reason": plan.full_reason, "resend": plan.resend}
        return {"host": replica.host, "path": replica.path, "reached": outcome.reached, "base": base,
                "sent": outcome.sent, "full": full, "error": outcome.error or None,
                "pending": [name for name in local if base is None or name > base],
                "listed": self.state.replica_listed}

    # -- drills and restores --------------------------------------------------------------------

    @classmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        spec = spec_from_params(dict(params, tier=params.get("tier") or "cdp"))
        if check_only:
            return check_only_record(spec)
        store = point_store(params)
        tokens = PointState(params["canary_state"]).canaries if params.get("canary_state") else {}
        driver = BtrfsRestoreDriver(store, params.get("points_on") == "replica", params.get("subvolume") or "",
                                    spec.rpo_seconds, tokens)
        return DrillEngine(spec, driver).run()


def point_store(params: dict[str, Any]) -> PointStore:
    """The points a drill or restore reads: the replica's directory (nested) or the source's snapshot directory."""
    points_on = params.get("points_on") or "source"
    if points_on not in POINTS_ON:
        raise DrillError("points_on must be source or replica, not %r" % points_on)
    point_dir = params.get("point_dir")
    if not point_dir and points_on == "source" and params.get("subvolume"):
        point_dir = default_snapshot_dir(params["subvolume"])
    if not point_dir:
        raise DrillError("point_dir is required for points on the %s" % points_on)
    return PointStore(point_dir, nested=points_on == "replica")


class BtrfsRestoreDriver(RestoreDriver):
    """A point restored as a writable snapshot into the sandbox (the same filesystem as the points)."""

    tier = "cdp"

    def __init__(self, store: PointStore, on_replica: bool, subvolume: str = "", rpo_seconds: float | None = None,
                 tokens: dict[str, str] | None = None) -> None:
        self.store = store
        self.on_replica = on_replica
        self.subvolume = subvolume or "the subvolume"
        self.rpo_seconds = rpo_seconds
        self.tokens = tokens or {}
        self.chosen: RecoveryPoint | None = None
        self.newest: RecoveryPoint | None = None

    def points(self) -> list[RecoveryPoint]:
        if not os.path.isdir(self.store.directory):
            raise DrillError("the point directory %s does not exist" % self.store.directory)
        found = [RecoveryPoint(name, when, name, [self.store.path(name)]) for name, when in self.store.points()]
        self.newest = max(found, key=lambda point: point.id) if found else None
        return found

    def choose_point(self, points: Sequence[RecoveryPoint], choice: dict[str, Any],
                     now: datetime.datetime) -> RecoveryPoint | None:
        self.chosen = choose_point(points, choice, now)
        return self.chosen

    def repository_layers(self, checks: Sequence[str]) -> list[Layer]:
        if "integrity" not in checks or self.chosen is None:
            return []
        return [self.integrity(self.chosen)]

    def integrity(self, point: RecoveryPoint) -> Layer:
        """The point is a read-only subvolume; on a replica, one that btrfs receive completed."""
        began = time.monotonic()
        try:
            fields = self.store.show(point.id)
        except SnapshotError as exc:
            return Layer("integrity", FAILED, str(exc), time.monotonic() - began)
        details = {"uuid": fields.get("UUID"), "received_uuid": received_uuid(fields), "read_only": is_read_only(fields)}
        problems = []
        if not details["read_only"]:
            problems.append("is writable, so it may have changed since it was taken")
        if self.on_replica and not details["received_uuid"]:
            problems.append("has no received UUID: it is not (or no longer) what the source sent")
        if problems:
            return Layer("integrity", FAILED, "point %s %s" % (point.id, " and ".join(problems)), time.monotonic() - began,
                         details)
        how = " received from the source (received UUID %s)" % details["received_uuid"] if self.on_replica else ""
        return Layer("integrity", OK, "point %s is a read-only subvolume%s" % (point.id, how), time.monotonic() - began,
                     details)

    def restore(self, point: RecoveryPoint, target: str, sample: dict[str, Any]) -> RestoreStats:
        try:
            self.store.writable_copy(point.id, os.path.join(target, point.id))
        except SnapshotError as exc:
            raise DrillError("point %s of %s: %s (the sandbox must be on the points' btrfs filesystem)" % (
                point.id, self.subvolume, exc)) from None
        return RestoreStats()

    def verify_layers(self, point: RecoveryPoint, target: str, checks: Sequence[str]) -> list[Layer]:
        layers = []
        if "freshness" in checks:
            layers.append(self.freshness())
        if "content" in checks:
            layers.append(self.content(point, os.path.join(target, point.id)))
        return layers

    def freshness(self) -> Layer:
        """The newest point's age against the RPO."""
        age = self.newest.age_seconds(datetime.datetime.now(datetime.timezone.utc))
        details = {"newest": self.newest.id, "age_seconds": round(age, 1), "rpo_seconds": self.rpo_seconds}
        if self.rpo_seconds is None:
            return Layer("freshness", OK, "newest point %s is %s old (no RPO target)" % (self.newest.id, hours(age)),
                         details=details)
        if age > self.rpo_seconds:
            return Layer("freshness", FAILED, "newest point %s is %s old, beyond the RPO of %s" % (
                self.newest.id, hours(age), hours(self.rpo_seconds)), details=details)
        return Layer("freshness", OK, "newest point %s is %s old, within the RPO of %s" % (
            self.newest.id, hours(age), hours(self.rpo_seconds)), details=details)

    def content(self, point: RecoveryPoint, copy: str) -> Layer:
        """The canary the source wrote just before taking the point names that point."""
        try:
            canary = read_canary(copy)
        except ValueError as exc:
            return Layer("content", FAILED, "the restored copy of point %s: %s" % (point.id, exc))
        details = {"canary": CANARY, "point": canary.get("point"), "written": canary.get("written")}
        if canary.get("point") != point.id:
            return Layer("content", FAILED, "the restored canary names point %r, not %s: the copy is not what %s held "
                         "at that time" % (canary.get("point"), point.id, self.subvolume), details=details)
        token = self.tokens.get(point.id)
        if token is not None and canary.get("token") != token:
            return Layer("content", FAILED, "the restored canary of point %s carries another token than the one the "
                         "source recorded" % point.id, details=details)
        checked = " and the token the source recorded" if token is not None else ""
        return Layer("content", OK, "the restored canary names point %s%s" % (point.id, checked), details=details)


def restore_point(params: dict[str, Any], now: datetime.datetime | None = None) -> dict[str, Any]:
    """Restore a point (`point`: a name, default the newest) as a writable copy in `sandbox`, or,
    with `rollback: true`, in place of `subvolume` with its current state kept aside.

    Other parameters as for drills: point_dir, points_on, subvolume, protected_paths. Raises
    SnapshotError or DrillError (SandboxRefused) saying why nothing was restored.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    store = point_store(params)
    names = store.names()
    name = params.get("point") or (names[-1] if names else None)
    if name not in names:
        raise SnapshotError("no point %s in %s" % (name or "at all", store.directory))
    if params.get("rollback"):
        subvolume = params.get("subvolume")
        if not subvolume:
            raise SnapshotError("a rollback needs the subvolume to put the point back into")
        aside = store.rollback(subvolume, name, now)
        return {"point": name, "mode": "rollback", "path": os.path.normpath(subvolume), "kept_aside": aside}
    sandbox = params.get("sandbox") or ""
    check_sandbox(sandbox, list(params.get("protected_paths") or []) + [p for p in [params.get("subvolume")] if p])
    os.makedirs(sandbox, mode=0o700, exist_ok=True)
    path = store.writable_copy(name, os.path.join(sandbox, name))
    return {"point": name, "mode": "sandbox", "path": path, "kept_aside": None}
