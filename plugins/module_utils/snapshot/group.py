# -*- coding: utf-8 -*-
# Private to restorable.backup: application-consistent snapshots of a consistency group.
"""Snapshot every volume of a group inside ONE quiesce window, then record the recovery point.

:class:`GroupSnapshotter` makes one recovery point (steps 2 to 4 below, without the status); the
array tier runs it under the Runner's lock, status and profile. :meth:`ConsistencyGroupSnapshot.take`
(the snapshot module):

1. takes the group's run lock (``<status_dir>/snapshot-<group>.lock``): runs never overlap;
2. runs the profile's ``frozen()`` (with the ``on_failure`` policy) around creating a writable
   snapshot of EVERY volume, so the volumes are consistent with each other;
3. lets the profile complete the snapshots (``profile.complete_snapshot``: PostgreSQL writes the
   backup_label and the WAL a restore needs), then seals them read-only;
4. writes the manifest ``<rp id>.json`` beside the snapshots of each volume (every filesystem
   describes its own recovery points) and the status ``<status_dir>/snapshot-<group>.json``,
   whose ``consistency`` holds the measured freeze window.

Nothing half-done stays behind: when any step fails (a volume that cannot be snapshotted, a
watchdog release mid-snapshot with ``on_failure: fail``, a profile that cannot complete the
snapshot) every snapshot of the attempt is deleted and the failure recorded in the status. With
``on_failure: crash_consistent`` the snapshots are kept and recorded as ``consistent: false``.
"""
from __future__ import annotations

import datetime
import glob
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..core.layout import metrics_file
from ..core.status import StatusStore, write_metrics
from ..common.fileio import atomic_write_json, read_json
from ..common.locks import FileLock
from ..consistency import custom, fsfreeze, mariadb, postgresql, sqlite
from ..consistency.base import (FreezeRecord, FreezingProfile, QuiesceFailed, freezing_profile_from_config,
                                quiesce_or_crash_consistent, utc_now)
from .provider import SnapshotError, SnapshotProvider

# Profiles load lazily by type; naming them here makes Ansible ship them with the module.
PROFILE_MODULES = (custom, fsfreeze, mariadb, postgresql, sqlite)
MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".json"
SNAPSHOT_STATUS_PREFIX = "snapshot-"  # <status_dir>/snapshot-<group>.json, .lock, metrics


@dataclass
class SnapshotGroup:
    """Volumes snapshotted together (the array tier's ``volumes``)."""

    name: str
    volumes: list[str]
    snapshot_dir: str | None = None  # default: beside each volume

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise SnapshotError("group name %r cannot name files" % self.name)
        if not self.volumes:
            raise SnapshotError("group %s has no volumes" % self.name)
        self.volumes = [os.path.normpath(volume) for volume in self.volumes]
        if len(set(self.volumes)) != len(self.volumes):
            raise SnapshotError("group %s lists a volume twice" % self.name)


def recovery_point_id(now: datetime.datetime | None = None) -> str:
    """A sortable id from the UTC time, e.g. 20261125T021500.123456Z."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


def build_manifest(group: SnapshotGroup, provider: str, rp_id: str, snapshots: dict[str, str],
                   record: FreezeRecord) -> dict[str, Any]:
    """The recovery point's description; the label (a PostgreSQL backup label) kept in it."""
    return {
        "format": MANIFEST_FORMAT,
        "id": rp_id,
        "group": group.name,
        "time": record.started,
        "provider": provider,
        "profile": record.profile,
        "volumes": [{"volume": volume, "snapshot": snapshots[volume]} for volume in group.volumes],
        "consistent": record.consistent,
        "reason": record.reason,
        "freeze_seconds": record.seconds,
        "freeze": record.to_dict(),
        "label": record.label,
    }


@dataclass
class GroupAttempt:
    """One attempt at a recovery point, for the caller's record also when it failed."""

    rp_id: str
    created: dict[str, str] = field(default_factory=dict)  # volume -> snapshot made so far
    record: FreezeRecord | None = None  # the freeze window, also of a failed attempt
    discard_error: str = ""  # what could not be removed after a failure


class GroupSnapshotter:
    """Where a group's recovery points live, and how one is made: every volume snapshotted inside
    ONE quiesce window, completed by the profile, sealed, described by its manifest.

    No lock and no status of its own: ConsistencyGroupSnapshot adds them for the snapshot module,
    the array tier runs it under the Runner's.
    """

    def __init__(self, group: SnapshotGroup, provider: SnapshotProvider) -> None:
        self.group = group
        self.provider = provider
        roots = [provider.snapshot_root(volume, group.snapshot_dir) for volume in group.volumes]
        if len(set(roots)) != len(roots):
            raise SnapshotError("two volumes of group %s share the snapshot directory %s: their names must differ"
                                % (group.name, group.snapshot_dir))
        self.roots = dict(zip(group.volumes, roots))

    def destination(self, volume: str, rp_id: str) -> str:
        return os.path.join(self.roots[volume], rp_id)

    def manifest_paths(self, rp_id: str) -> list[str]:
        return [os.path.join(self.roots[volume], rp_id + MANIFEST_SUFFIX) for volume in self.group.volumes]

    def check_volumes(self) -> None:
        for volume in self.group.volumes:
            self.provider.check_volume(volume)

    def take(self, profile: FreezingProfile, attempt: GroupAttempt) -> dict[str, Any]:
        """The recovery point attempt.rp_id of the whole group; its manifest. On failure every
        snapshot and manifest of the attempt is removed and the exception raised again."""
        profile.last_record = None
        try:
            self.check_volumes()
            snapshots, attempt.record = self._snapshot_frozen(profile, attempt)
            self._complete(profile, snapshots, attempt.record)
            for volume in self.group.volumes:
                self.provider.make_read_only(snapshots[volume])
            manifest = build_manifest(self.group, self.provider.name, attempt.rp_id, snapshots, attempt.record)
            for path in self.manifest_paths(attempt.rp_id):
                atomic_write_json(path, manifest, mode=0o644)
        except BaseException as exc:
            attempt.record = attempt.record or getattr(exc, "record", None) or profile.last_record
            attempt.discard_error = self._discard(attempt.rp_id, attempt.created)
            raise
        return manifest

    def _snapshot_frozen(self, profile: FreezingProfile,
                         attempt: GroupAttempt) -> tuple[dict[str, str], FreezeRecord]:
        def snapshot_all() -> dict[str, str]:
            for volume in self.group.volumes:
                attempt.created[volume] = self.provider.create(volume, self.destination(volume, attempt.rp_id))
            return dict(attempt.created)

        return quiesce_or_crash_consistent(profile, None, snapshot_all)

    @staticmethod
    def _complete(profile: FreezingProfile, snapshots: dict[str, str], record: FreezeRecord) -> None:
        """The profile's additions; a failure is fatal unless crash-consistent copies are allowed."""
        try:
            profile.complete_snapshot(snapshots, record)
        except QuiesceFailed as exc:
            if profile.on_failure != "crash_consistent":
                exc.record = exc.record or record
                raise
            record.consistent = False
            record.reason = "crash-consistent: %s" % exc

    def _discard(self, rp_id: str, created: dict[str, str]) -> str:
        """Delete every manifest and snapshot of a failed attempt; the errors, if some could not be deleted."""
        errors = []
        for path in self.manifest_paths(rp_id):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append("removing %s: %s" % (path, exc))
        for path in created.values():
            try:
                self.provider.delete(path)
            except SnapshotError as exc:
                errors.append(str(exc))
        return "; ".join(errors)

    def recovery_points(self) -> list[dict[str, Any]]:
        """Manifests of the group's recovery points, oldest first (read beside the first volume)."""
        root = self.roots[self.group.volumes[0]]
        manifests = []
        for path in sorted(glob.glob(os.path.join(glob.escape(root), "*" + MANIFEST_SUFFIX))):
            manifest = read_json(path)
            if isinstance(manifest, dict) and manifest.get("group") == self.group.name:
                manifests.append(manifest)
        return manifests

    def delete(self, rp_id: str) -> bool:
        """Delete a recovery point's snapshots, then its manifests; False when there was none.
        The caller holds the group's lock."""
        if not rp_id or "/" in rp_id or rp_id.startswith("."):
            raise SnapshotError("%r is not a recovery point id" % rp_id)
        found = False
        for volume in self.group.volumes:
            path = self.destination(volume, rp_id)
            if os.path.lexists(path):
                self.provider.delete(path)
                found = True
        for path in self.manifest_paths(rp_id):
            if os.path.exists(path):
                os.unlink(path)
                found = True
        return found


class ConsistencyGroupSnapshot:
    """Takes, lists and deletes recovery points of one group with one provider and one profile,
    under the group's own lock and status (the snapshot module's on-demand engine)."""

    def __init__(self, group: SnapshotGroup, provider: SnapshotProvider, profile: FreezingProfile,
                 status_dir: str, clock: Callable[[], float] = time.monotonic, metrics_dir: str | None = None) -> None:
        self.group = group
        self.provider = provider
        self.profile = profile
        self.status_dir = status_dir
        self.clock = clock
        self.status = StatusStore(status_dir, SNAPSHOT_STATUS_PREFIX + group.name)
        self.metrics_dir = metrics_dir
        self.snapshotter = GroupSnapshotter(group, provider)
        self.roots = self.snapshotter.roots

    @property
    def lock_path(self) -> str:
        return os.path.join(self.status_dir, SNAPSHOT_STATUS_PREFIX + self.group.name + ".lock")

    def destination(self, volume: str, rp_id: str) -> str:
        return self.snapshotter.destination(volume, rp_id)

    def manifest_paths(self, rp_id: str) -> list[str]:
        return self.snapshotter.manifest_paths(rp_id)

    # -- plan (check mode) ----------------------------------------------------------------------
    def plan(self, rp_id: str | None = None) -> dict[str, Any]:
        """What take() would do, after the same checks, creating nothing."""
        self.snapshotter.check_volumes()
        rp_id = rp_id or recovery_point_id()
        return {"id": rp_id, "group": self.group.name, "provider": self.provider.name, "profile": self.profile.kind,
                "volumes": [{"volume": volume, "snapshot": self.destination(volume, rp_id)}
                            for volume in self.group.volumes]}

    # -- take ---------------------------------------------------------------------------------
    def take(self) -> dict[str, Any]:
        """One recovery point of the whole group; its manifest. Raises on failure (status recorded)."""
        with FileLock(self.lock_path):
            started, began = utc_now(), self.clock()
            attempt = GroupAttempt(recovery_point_id())
            try:
                manifest = self.snapshotter.take(self.profile, attempt)
            except BaseException as exc:
                self._record_status(started, began, "failed", _failure_reason(exc, attempt.discard_error), None,
                                    attempt.record)
                raise
            finally:
                self.profile.cleanup()  # private client files (a PostgreSQL passfile)
            self._record_status(started, began, "success", attempt.record.reason, attempt.rp_id, attempt.record)
            return manifest

    def _record_status(self, started: str, began: float, result: str, reason: str, rp_id: str | None,
                       record: FreezeRecord | None) -> None:
        status = self.status.record({
            "dataset": self.group.name, "host": socket.gethostname(), "tier": "snapshot", "provider": self.provider.name,
            "started": started, "finished": utc_now(), "result": result, "reason": reason,
            "snapshot_id": rp_id, "duration_seconds": round(self.clock() - began, 3),
            "volumes": list(self.group.volumes),
            "consistency": record.to_dict() if record is not None else None,
        })
        if self.metrics_dir:
            write_metrics(metrics_file(self.metrics_dir, SNAPSHOT_STATUS_PREFIX + self.group.name), status, status["host"])

    # -- list and delete ------------------------------------------------------------------------
    def recovery_points(self) -> list[dict[str, Any]]:
        """Manifests of the group's recovery points, oldest first (read beside the first volume)."""
        return self.snapshotter.recovery_points()

    def delete(self, rp_id: str) -> bool:
        """Delete a recovery point's snapshots, then its manifests; False when there was none."""
        with FileLock(self.lock_path):
            return self.snapshotter.delete(rp_id)


def _failure_reason(exc: BaseException, discard_error: str) -> str:
    reason = str(exc) or exc.__class__.__name__
    if discard_error:
        reason += " (and the snapshots could not all be removed: %s)" % discard_error
    return reason


def consistency_with_passwords(consistency: dict[str, Any] | None, passwords: dict[str, str | None]) -> dict[str, Any]:
    """The consistency profile with passwords given separately (no_log) put in place.

    A password inside the profile itself is refused: it would be logged with the task's arguments.
    """
    config = dict(consistency or {"type": "none"})
    for kind, password in passwords.items():
        settings = dict(config.get(kind) or {})
        if settings.get("password"):
            raise SnapshotError("pass the %s password with %s_password (no_log), not inside consistency" % (kind, kind))
        if password:
            settings["password"] = password
            config[kind] = settings
    return config


def group_snapshot_from_config(group: SnapshotGroup, provider: SnapshotProvider, consistency: dict[str, Any],
                               status_dir: str, metrics_dir: str | None = None) -> ConsistencyGroupSnapshot:
    """The engine for a group, its profile staged in <status_dir>/staging (private files of clients)."""
    profile = freezing_profile_from_config(consistency, os.path.join(status_dir, "staging"), status_dir)
    return ConsistencyGroupSnapshot(group, provider, profile, status_dir, metrics_dir=metrics_dir)
