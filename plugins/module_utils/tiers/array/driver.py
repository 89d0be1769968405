# -*- coding: utf-8 -*-
# Private to restorable.backup: the array tier inside a run. Capture: one group snapshot of every
# volume inside ONE quiesce window of the Runner's freezing profile (snapshot/group.py's
# GroupSnapshotter, under the Runner's lock, status and profile). Maintain: the points due go to the
# tape library (tiers/array/export.py), vault pools vault, the library recycles what the dataset no
# longer needs, and the storage host thins its snapshots.
from __future__ import annotations

import datetime
import os
from typing import Any

from ...common.locks import LockBusy
from ...consistency.base import FreezingProfile, NoneProfile, QuiesceFailed
from ...core.driver import RunContext, RunFailed, RunRecord, TierDriver
from ...core.jobspec import ConfigError
from ...drill.engine import hours
from ...snapshot.btrfs import BtrfsSnapshotProvider
from ...snapshot.group import GroupAttempt, GroupSnapshotter, SnapshotGroup, recovery_point_id
from ...snapshot.provider import SnapshotError
from ...storage.tape.library import open_library
from ...storage.tape.media import TapeError
from ..cdp.points import is_subvolume, require_btrfs
from .drill import array_drill
from .export import Exporter, ExportError, plan_export
from .options import options_from_config
from .state import ExportState, state_path
from .thin import point_time, snapshots_to_delete


def _age(points: list[str], now: datetime.datetime) -> float | None:
    return round(max(0.0, (now - point_time(max(points))).total_seconds()), 1) if points else None


class ArrayDriver(TierDriver):
    """Application-synchronised group snapshots of several volumes, exported to a tape library."""

    tier = "array"
    takes_freezing_profiles = True

    def __init__(self, config: Any) -> None:
        self.config = config
        self.options = options_from_config(config)
        try:
            group = SnapshotGroup(config.dataset, self.options.volumes, self.options.snapshot_dir)
            self.snapshotter = GroupSnapshotter(group, BtrfsSnapshotProvider())
        except SnapshotError as exc:
            raise ConfigError("job config %s: %s" % (config.source or config.dataset, exc)) from None
        self.state: ExportState | None = None  # read in preflight, under the run's lock
        self.library: Any = None

    def record_details(self) -> dict[str, Any]:
        return {"volumes": list(self.options.volumes), "snapshot": None, "export": None, "library": None,
                "thinning": None, "rpo": None, "pending_export": [], "rpo_target_seconds": self.config.rpo_seconds}

    # -- before the hooks -----------------------------------------------------------------------

    def preflight(self, run: RunContext) -> None:
        try:
            for volume in self.options.volumes:
                require_btrfs(volume, "volume")
                if not is_subvolume(volume):
                    raise SnapshotError("volume %s is not a btrfs subvolume" % volume)
            for root in self.snapshotter.roots.values():
                os.makedirs(root, mode=0o700, exist_ok=True)
                require_btrfs(root, "snapshot directory")
        except (SnapshotError, OSError) as exc:
            raise RunFailed(str(exc)) from None
        export = self.options.export
        if export is not None:
            try:
                self.library = open_library(export.library_config, now=run.now)
                self.library.config.pool(export.pool)
            except (TapeError, OSError) as exc:
                raise RunFailed("tape library: %s" % exc) from None
        self.state = ExportState.load(state_path(self.config.status_dir, self.config.dataset))

    # -- the point ------------------------------------------------------------------------------

    def capture(self, run: RunContext) -> None:
        profile = run.profile
        if profile is None:
            profile = NoneProfile({"type": "none"}, self.config.files.staging, self.config.status_dir)
            run.record.consistency = {"profile": "none", "consistent": False, "reason": "", "seconds": 0.0}
        if not isinstance(profile, FreezingProfile):
            raise RunFailed("consistency profile %s cannot freeze an application around a snapshot" % profile.kind)
        attempt = GroupAttempt(recovery_point_id(run.now()))
        try:
            self.snapshotter.take(profile, attempt)
        except (SnapshotError, QuiesceFailed, OSError) as exc:
            record = attempt.record
            if record is not None:
                run.record.consistency.update(consistent=False, reason=record.reason, seconds=record.seconds)
            removed = ""
            if attempt.discard_error:
                removed = " (and the snapshots could not all be removed: %s)" % attempt.discard_error
            raise RunFailed("group snapshot of %s failed: %s%s" % (", ".join(self.options.volumes), exc,
                                                                   removed)) from None
        record = attempt.record
        run.record.snapshot_id = attempt.rp_id
        run.record.consistency.update(consistent=record.consistent, reason=record.reason, seconds=record.seconds)
        if not record.consistent and profile.kind != "none":
            run.record.warnings.append("only crash-consistent: %s" % record.reason)
        run.record.details["snapshot"] = {
            "id": attempt.rp_id, "volumes": dict(attempt.created),
            "freeze": {"started": record.started, "ended": record.ended, "seconds": record.seconds}}

    # -- after the point ------------------------------------------------------------------------

    def maintain(self, run: RunContext) -> None:
        state = self.state
        local = self._local_points()
        gone = {point for point in state.pending if point not in local}
        if gone:
            run.record.warnings.append("point(s) %s were due for export but are no longer on the storage host: "
                                       "they are not exported" % ", ".join(sorted(gone)))
            state.forget(gone)
        export = self.options.export
        error = ""
        if export is not None:
            state.count_snapshot(run.record.snapshot_id, export.every)
            try:
                self._export_due(run, local)
            except (TapeError, ExportError, LockBusy, OSError) as exc:
                error = "export to tape library %s pool %s failed: %s" % (self.library.name, export.pool, exc)
            finally:
                self.library.close()  # unload what a failed write left in a drive
                state.save()  # what went to tape and what is due stay recorded, whatever stopped the export
        self._thin(run, local)
        state.save()
        self._report(run)
        if error:
            due = len(state.pending)
            raise RunFailed("%s (snapshot %s is kept; %d point(s) wait for export, the next run retries)" % (
                error, run.record.snapshot_id, due))

    def _local_points(self) -> list[str]:
        return [manifest["id"] for manifest in self.snapshotter.recovery_points()]

    def _export_due(self, run: RunContext, local: list[str]) -> None:
        """Each due point in order, each incremental on the one before while the chain allows."""
        export = self.options.export
        exporter = Exporter(self.library, export.pool, self.snapshotter, command_prefix=run.command_prefix)
        manifests = {manifest["id"]: manifest for manifest in self.snapshotter.recovery_points()}
        done: list[dict[str, Any]] = []
        run.record.details["export"] = done  # filled as points go: a failure keeps what went before
        for point in list(self.state.pending):
            on_tape = [record["point"] for record in self.library.points(self.config.dataset)]
            plan = plan_export(point, self.state.last, export.chain_length, local, on_tape)
            done.append(exporter.export(plan, manifests[point]))
            self.state.exported(plan.exported())
            # The streams are what the run read and what it wrote to tape (no deduplication there).
            run.record.bytes_processed = run.record.bytes_added = sum(item["bytes"] for item in done)
        if done:
            vaulted = self.library.vault()
            recycled = self.library.recycle({self.config.dataset: self._keep_on_tape(local)})
            run.record.details["library"] = {"name": self.library.name, "pool": export.pool, "vaulted": vaulted,
                                             "recycled": recycled}

    def _keep_on_tape(self, local: list[str]) -> set[str]:
        """The exported points the dataset still keeps: those the storage host keeps, and the last
        one (the base of the next incremental)."""
        kept = set(local)
        if self.state.last is not None:
            kept.add(self.state.last.point)
        return kept

    def _thin(self, run: RunContext, local: list[str]) -> None:
        """Delete what no rule keeps; never the base of the next incremental nor a point due for export."""
        options = self.options
        protected = set(self.state.pending)
        if self.state.last is not None:
            protected.add(self.state.last.point)
        doomed = snapshots_to_delete(local, run.now(), options.retention, options.thinning, protected)
        removed = []
        for point in doomed:
            try:
                self.snapshotter.delete(point)
            except (SnapshotError, OSError) as exc:
                run.record.warnings.append("thinning could not delete snapshot %s: %s" % (point, exc))
                break
            removed.append(point)
        run.record.details["thinning"] = {"removed": removed, "kept": len(local) - len(removed),
                                          "protected": sorted(protected & set(local))}

    def _report(self, run: RunContext) -> None:
        now = run.now()
        local = self._local_points()
        # source_seconds and tape_seconds: the copies whose age the metrics export (core/status.py).
        ages = {"source_seconds": _age(local, now)}
        if self.options.export is not None:
            exported = [self.state.last.point] if self.state.last else []
            ages["tape_seconds"] = _age(exported, now)
        target = self.options.rpo
        late = [name for name, age in ages.items() if target and (age is None or age > target)]
        for name in late:
            copy = "the tape library" if name == "tape_seconds" else "the storage host"
            age = ages[name]
            run.record.warnings.append("%s has %s, beyond the RPO of %s" % (
                copy, "no point" if age is None else "its newest point %s old" % hours(age), hours(target)))
        run.record.details["rpo"] = dict(ages, target_seconds=target, at_risk=bool(late))
        run.record.details["pending_export"] = list(self.state.pending)

    # -- drills ---------------------------------------------------------------------------------

    @classmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        return array_drill(params, check_only)

    def summary(self, record: RunRecord) -> str:
        exports = record.details.get("export") or []
        exported = ", exported %s" % ", ".join("%s (%s)" % (e["point"], e["kind"]) for e in exports) if exports else ""
        return "dataset %s: %s, group point %s in %.1fs%s" % (record.dataset, record.result, record.snapshot_id,
                                                              record.duration_seconds, exported)
