# -*- coding: utf-8 -*-
# Private to restorable.backup: the host tier inside a run: every selected VM of this
# hypervisor gets a point (full, incremental or differential) in the dataset's repository;
# retention then keeps whole chains.
from __future__ import annotations

import datetime
import logging
import os
import secrets
import socket
import xml.etree.ElementTree as ET
from typing import Any

from ...core.driver import RunContext, RunFailed, RunRecord, TierDriver, iso
from ...core.jobspec import DATASET_TAG_PREFIX
from ...core.retention import keep_by_rules
from ...core.runner import nth_backup
from ...storage.factory import open_job_repository
from ...storage.repository import Repository, RepositoryError
from .capture import LiveBackup, OfflineBackup, PointDirectory, Quiesce, write_point_files
from .chain import CHECKPOINT_PREFIX, FULL, PointInfo, PointPlan, full, needed, plan_point, points_by_vm
from .drill import run_host_drill
from .libvirt import OFFLINE_STATES, Domain, LibvirtError, Virsh
from .options import HostOptions

log = logging.getLogger(__name__)


class VmFailed(Exception):
    """One VM's point could not be taken; the others still are."""


class HostDriver(TierDriver):
    """Backs up the selected VMs of this hypervisor, one point per VM per run."""

    tier = "host"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.options = HostOptions.from_config(config)
        self.virsh = Virsh(self.options.libvirt_uri)
        self.repo: Repository | None = None
        self.stored: dict[str, list[PointInfo]] = {}
        # Points are found by the dataset's own tag: the jobs of a proxy (one per hypervisor) and
        # the hypervisors a VM moves between all continue the same chains.
        self.chain_tag = next((t for t in config.tags if t.startswith(DATASET_TAG_PREFIX)), config.dataset_tag)

    def record_details(self) -> dict[str, Any]:
        return {"repository": self.config.repository, "vms": [], "absent_vms": [], "retention": None, "check": None,
                "rpo_target_seconds": self.config.rpo_seconds}

    # -- before the hooks -----------------------------------------------------------------------

    def preflight(self, run: RunContext) -> None:
        config = self.config
        self.repo = open_job_repository(config, run.redact, run.command_prefix)
        if run.interrupted or int(run.previous.get("consecutive_failures") or 0) > 0:
            self.repo.unlock()
        if self.options.mode == FULL:
            return  # every point a full: the stored ones decide nothing
        try:
            self.stored = points_by_vm(self.repo.snapshots(tags=[self.chain_tag]))
        except RepositoryError as exc:
            raise RunFailed("repository %s: %s" % (config.repository, exc)) from None

    # -- the recovery points --------------------------------------------------------------------

    def capture(self, run: RunContext) -> None:
        try:
            listing = self.virsh.listing()
            selected = self.virsh.domains(self.options.vms.select(listing))
        except LibvirtError as exc:
            raise RunFailed("hypervisor %s: %s" % (self.options.libvirt_uri, exc)) from None
        run.record.details["absent_vms"] = self.options.vms.absent(listing)
        failures = []
        for domain in selected:
            try:
                run.record.details["vms"].append(self._back_up(run, domain))
            except VmFailed as exc:
                failures.append(str(exc))
                run.record.details["vms"].append({"uuid": domain.uuid, "name": domain.name, "state": domain.state,
                                                  "result": "failed", "reason": str(exc)})
        done = [vm for vm in run.record.details["vms"] if vm.get("result") == "success"]
        run.record.snapshot_id = done[-1]["point"] if done else None
        run.record.bytes_added = sum(vm.get("bytes_added") or 0 for vm in done)
        run.record.bytes_processed = sum(vm.get("bytes_processed") or 0 for vm in done)
        consistent = [vm["consistent"] for vm in done]
        run.record.consistency = {"profile": "guest-agent" if self.options.quiesce else "none",
                                  "consistent": bool(consistent) and all(consistent),
                                  "reason": "; ".join(vm["consistency_reason"] for vm in done
                                                      if vm["consistency_reason"])}
        if failures:
            raise RunFailed("; ".join(failures))
        if not selected:
            run.record.warnings.append("no VM of this hypervisor matches the selection")

    def _back_up(self, run: RunContext, domain: Domain) -> dict[str, Any]:
        disks = self.options.disks(domain)
        if not disks:
            raise VmFailed("VM %s: no disk selected" % domain.name)
        if not domain.live and domain.state not in OFFLINE_STATES:
            raise VmFailed("VM %s is %s: neither running, paused nor shut off" % (domain.name, domain.state))
        points = self.stored.get(domain.uuid, [])
        plan = self._plan(domain, disks, points)
        point = PointDirectory(self.options.staging(self.config.dataset, domain.uuid))
        try:
            return self._take(run, domain, disks, plan, point)
        except LibvirtError as exc:
            if plan.kind == FULL:
                raise VmFailed("VM %s: %s" % (domain.name, exc)) from None
            # libvirt refuses an incremental whose bitmap is missing or broken: never a wrong one.
            log.warning("VM %s: %s; taking a full", domain.name, exc)
            self._drop_checkpoint(domain, plan.base)
            try:
                return self._take(run, domain, disks, full("bitmap lost or unusable: %s" % exc), point)
            except LibvirtError as again:
                raise VmFailed("VM %s: %s" % (domain.name, again)) from None
        finally:
            point.remove()

    def _plan(self, domain: Domain, disks: list, points: list[PointInfo]) -> PointPlan:
        if self.options.mode == FULL:
            return full("mode is full")
        try:
            known = self._checkpoint_times(domain)
        except LibvirtError as exc:
            raise VmFailed("VM %s: %s" % (domain.name, exc)) from None
        plan = plan_point(self.options.mode, self.options.full_every, points, disks, known, self.config.host)
        if plan.redefine is None:
            return plan
        try:
            self._redefine(domain, plan.redefine)
        except (LibvirtError, RepositoryError) as exc:
            return full("migrated from %s: checkpoint %s cannot be used here (%s)" % (
                plan.redefine.hypervisor, plan.base, exc))
        return plan

    def _checkpoint_times(self, domain: Domain) -> dict[str, str]:
        return {name: _creation_time(self.virsh.checkpoint_xml(domain.uuid, name))
                for name in self.virsh.checkpoints(domain.uuid)}

    def _redefine(self, domain: Domain, stored: PointInfo) -> None:
        """Teach this hypervisor the checkpoint a point of another one created, from its stored XML."""
        path = next(p for p in self.repo.list_files(stored.id) if p.endswith("/checkpoint.xml"))
        xml = _without_parent(self.repo.read_file(stored.id, path))
        staging = self.options.staging(self.config.dataset, domain.uuid) + ".redefine.xml"
        os.makedirs(os.path.dirname(staging), mode=0o700, exist_ok=True)
        with open(staging, "w", encoding="utf-8") as handle:
            handle.write(xml)
        try:
            self.virsh.redefine_checkpoint(domain.uuid, staging)
        finally:
            os.unlink(staging)

    def _take(self, run: RunContext, domain: Domain, disks: list, plan: PointPlan,
              point: PointDirectory) -> dict[str, Any]:
        config = self.config
        now = run.now()
        checkpoint = "%s%s-%s-%s" % (CHECKPOINT_PREFIX, config.dataset, now.strftime("%Y%m%dT%H%M%S"),
                                     secrets.token_hex(2))
        point.reset()
        log.info("VM %s: %s point (%s)", domain.name, plan.kind, plan.reason or "chain continues")
        backup = self._backup_for(domain, run)
        try:
            quiesce = backup.take(domain, disks, point, checkpoint, plan.base,
                                  "restorable %s %s point" % (config.dataset, plan.kind), run.time_left())
            return self._store(run, domain, disks, plan, point, checkpoint, quiesce, now)
        except BaseException:
            self._drop_checkpoint(domain, checkpoint)  # the next run starts from the last stored point
            raise

    def _backup_for(self, domain: Domain, run: RunContext) -> LiveBackup | OfflineBackup:
        if not domain.live:
            return OfflineBackup(self.virsh, run.monotonic)
        return LiveBackup(self.virsh, self.options.quiesce, self.options.quiesce_max_seconds,
                          os.path.join(self.config.status_dir, "%s.watchdog.log" % self.config.dataset), run.monotonic)

    def _store(self, run: RunContext, domain: Domain, disks: list, plan: PointPlan, point: PointDirectory,
               checkpoint: str, quiesce: Quiesce, now: datetime.datetime) -> dict[str, Any]:
        config = self.config
        checkpoint_text = self.virsh.checkpoint_xml(domain.uuid, checkpoint)
        info = PointInfo(id="", time=now, hypervisor=config.host, vm=domain.uuid, vm_name=domain.name, kind=plan.kind,
                         chain=plan.chain or checkpoint, position=plan.position, checkpoint=checkpoint, base=plan.base,
                         checkpoint_time=_creation_time(checkpoint_text), disks={d.target: d.size for d in disks})
        document = {"dataset": config.dataset, "vm": domain.uuid, "vm_name": domain.name, "state": domain.state,
                    "hypervisor": config.host, "writer": socket.gethostname(), "taken": iso(now), "kind": plan.kind,
                    "reason": plan.reason, "chain": info.chain, "position": plan.position, "checkpoint": checkpoint,
                    "base": plan.base, "consistent": quiesce.consistent, "consistency_reason": quiesce.reason,
                    "disks": {d.target: {"size": d.size, "source": d.path, "driver": d.driver} for d in disks}}
        write_point_files(point, document, domain.xml, checkpoint_text, disks)
        tags = [config.dataset_tag] + [t for t in config.tags if t != config.dataset_tag] + info.tags()
        try:
            summary = self.repo.backup([point.path], host=config.host, tags=tags, timeout=run.time_left())
        except RepositoryError as exc:
            raise RunFailed("VM %s: storing the point failed: %s" % (domain.name, exc)) from None
        self._drop_older_checkpoints(domain, info, plan.base if plan.redefine else "")
        return {"uuid": domain.uuid, "name": domain.name, "state": domain.state, "result": "success",
                "kind": plan.kind, "reason": plan.reason, "chain": info.chain, "position": plan.position,
                "checkpoint": checkpoint, "point": summary.snapshot_id, "bytes_added": summary.data_added,
                "bytes_processed": summary.total_bytes_processed, "consistent": quiesce.consistent,
                "consistency_reason": quiesce.reason, "frozen_filesystems": quiesce.frozen,
                "freeze_seconds": quiesce.seconds, "disks": sorted(d.target for d in disks)}

    def _drop_older_checkpoints(self, domain: Domain, point: PointInfo, redefined: str) -> None:
        """Keep the checkpoints the next point may start from: this one and its chain's full.
        Only this job's own go, and the one taught from another hypervisor's point."""
        mine = CHECKPOINT_PREFIX + self.config.dataset + "-"
        keep = {point.checkpoint, point.chain}
        for name in self.virsh.checkpoints(domain.uuid):
            if (name.startswith(mine) or name == redefined) and name not in keep:
                self._drop_checkpoint(domain, name)

    def _drop_checkpoint(self, domain: Domain, name: str) -> None:
        """Delete a checkpoint and its bitmaps; only its metadata when a bitmap is gone already."""
        if name not in self.virsh.checkpoints(domain.uuid):
            return
        try:
            self.virsh.delete_checkpoint(domain.uuid, name)
        except LibvirtError:
            try:
                self.virsh.delete_checkpoint(domain.uuid, name, metadata_only=True)
            except LibvirtError as exc:
                log.warning("VM %s: checkpoint %s stays: %s", domain.name, name, exc)

    # -- after the points -----------------------------------------------------------------------

    def maintain(self, run: RunContext) -> None:
        config = self.config
        if config.retention and nth_backup(run.previous, "backups_since_prune", config.prune_every):
            self._apply_retention(run)
        if config.check.every and nth_backup(run.previous, "backups_since_check", config.check.every):
            check = self.repo.check(config.check.read_data_subset, timeout=run.time_left())
            run.record.details["check"] = {"ok": check.ok, "message": check.message}
            if not check.ok:
                raise RunFailed("repository check found errors: %s" % check.message)

    def _apply_retention(self, run: RunContext) -> None:
        """The keep rules per VM, widened to whole chains: no kept point ever loses a point it needs."""
        try:
            by_vm = points_by_vm(self.repo.snapshots(tags=[self.chain_tag]))
        except RepositoryError as exc:
            raise RunFailed("retention: %s" % exc) from None
        remove: list[str] = []
        for points in by_vm.values():
            keep = keep_by_rules([(p.id, p.time) for p in points], self.config.retention) | {points[-1].id}
            wanted = needed(points, keep)
            remove += [p.id for p in points if p.id not in wanted]
        try:
            self.repo.forget_points(remove, prune=True, timeout=run.time_left())
        except RepositoryError as exc:
            raise RunFailed("retention failed (the points were saved): %s" % exc) from None
        run.record.details["retention"] = {"removed": len(remove), "removed_ids": [i[:8] for i in remove]}

    @classmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        return run_host_drill(params, check_only)

    def summary(self, record: RunRecord) -> str:
        vms = record.details.get("vms") or []
        return "dataset %s: %s, %d VM point(s) %s, %s bytes added in %.1fs" % (
            record.dataset, record.result, len(vms), ", ".join("%s %s" % (v["name"], v.get("kind", "-")) for v in vms),
            record.bytes_added, record.duration_seconds)


def _without_parent(xml: str) -> str:
    """A checkpoint's XML without its <parent>: that names the checkpoint before it on the hypervisor
    that took it, which the one the VM moved to never knew, and libvirt refuses to redefine a
    checkpoint whose parent it does not know. Each checkpoint's bitmap records every write since it
    was created, on its own, so the parent is bookkeeping only and the chain continues without it."""
    root = ET.fromstring(xml)
    for parent in root.findall("parent"):
        root.remove(parent)
    return ET.tostring(root, encoding="unicode")


def _creation_time(xml: str) -> str:
    node = ET.fromstring(xml).find("creationTime")
    return (node.text or "") if node is not None else ""
