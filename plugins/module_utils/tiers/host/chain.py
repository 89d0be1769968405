# -*- coding: utf-8 -*-
# Private to restorable.backup: the chains of a VM's points and the choice of the next one.
# A point is one repository snapshot per VM; its tags say where it stands in its chain, so the
# next run (on this hypervisor or on the one the VM moved to) decides from one listing.
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Sequence

from ...drill.engine import parse_time
from .libvirt import Disk

FULL, INCREMENTAL, DIFFERENTIAL = "full", "incremental", "differential"
CHECKPOINT_PREFIX = "rbk-"


@dataclass
class PointInfo:
    """A stored point as its tags describe it."""

    id: str
    time: datetime.datetime
    hypervisor: str
    vm: str  # UUID
    vm_name: str
    kind: str
    chain: str  # the checkpoint of the chain's full
    position: int  # 0 for the full
    checkpoint: str  # the checkpoint this point created
    base: str  # the checkpoint it was taken against ("" for a full)
    checkpoint_time: str = ""  # libvirt's creationTime of that checkpoint
    disks: dict[str, int] = field(default_factory=dict)  # target -> virtual size

    def tags(self) -> list[str]:
        # restic splits --tag values at commas: a name keeps its other characters only.
        tags = ["vm:" + self.vm, "vmname:" + self.vm_name.replace(",", "_"), "kind:" + self.kind, "chain:" + self.chain,
                "pos:%d" % self.position, "cp:" + self.checkpoint, "cptime:" + self.checkpoint_time]
        if self.base:
            tags.append("base:" + self.base)
        return tags + ["disk:%s:%d" % (target, size) for target, size in sorted(self.disks.items())]

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> "PointInfo | None":
        """None for a snapshot that is not a host-tier point."""
        values: dict[str, str] = {}
        disks: dict[str, int] = {}
        for tag in snapshot.get("tags") or []:
            key, _sep, value = tag.partition(":")
            if key == "disk":
                target, _sep, size = value.partition(":")
                disks[target] = int(size)
            else:
                values[key] = value
        if not all(k in values for k in ("vm", "kind", "chain", "pos", "cp")):
            return None
        return cls(id=snapshot["id"], time=parse_time(snapshot["time"]), hypervisor=snapshot.get("hostname", ""),
                   vm=values["vm"], vm_name=values.get("vmname", ""), kind=values["kind"], chain=values["chain"],
                   position=int(values["pos"]), checkpoint=values["cp"], base=values.get("base", ""),
                   checkpoint_time=values.get("cptime", ""), disks=disks)


def points_by_vm(snapshots: Sequence[dict[str, Any]]) -> dict[str, list[PointInfo]]:
    """Every VM's points, oldest first."""
    by_vm: dict[str, list[PointInfo]] = {}
    for snapshot in snapshots:
        point = PointInfo.from_snapshot(snapshot)
        if point is not None:
            by_vm.setdefault(point.vm, []).append(point)
    for points in by_vm.values():
        points.sort(key=lambda p: (p.time, p.position))
    return by_vm


def lineage(point: PointInfo, points: Sequence[PointInfo]) -> list[PointInfo]:
    """The points a restore of `point` reads, the full first; raises ChainBroken when one is gone."""
    by_checkpoint = {p.checkpoint: p for p in points if p.chain == point.chain}
    chain = [point]
    while chain[0].kind != FULL:
        parent = by_checkpoint.get(chain[0].base)
        if parent is None or parent in chain:
            raise ChainBroken("point %s needs the point of checkpoint %s, which the repository does not hold"
                              % (point.id[:8], chain[0].base))
        chain.insert(0, parent)
    return chain


class ChainBroken(Exception):
    """A point's chain misses a point it needs."""


@dataclass
class PointPlan:
    """What the next point of a VM will be."""

    kind: str
    reason: str  # why a full, or how the chain continues
    chain: str = ""  # "" for a full: its own checkpoint starts the chain
    position: int = 0
    base: str = ""  # the checkpoint to back up from
    redefine: PointInfo | None = None  # a point of another hypervisor whose checkpoint must be taught first


def full(reason: str) -> PointPlan:
    return PointPlan(FULL, reason)


def plan_point(mode: str, full_every: int | None, points: Sequence[PointInfo], disks: Sequence[Disk],
               known: dict[str, str], hypervisor: str) -> PointPlan:
    """The next point of one VM: `points` are its stored points (oldest first), `known` the
    checkpoints libvirt knows here (name -> creationTime). Anything doubtful is a full."""
    if mode == FULL:
        return full("mode is full")
    if not points:
        return full("first point of this VM")
    last = points[-1]
    problem = _disk_change(last, disks)
    if problem:
        return full(problem)
    if full_every and last.position >= full_every:
        return full("chain reached full_every (%d)" % full_every)
    base = last.checkpoint if mode == INCREMENTAL else last.chain
    plan = PointPlan(mode, "", last.chain, last.position + 1, base)
    if base not in known:
        if last.hypervisor and last.hypervisor != hypervisor:
            # Stored XML may teach this hypervisor the checkpoint if the disk's bitmap came along.
            plan.redefine = next((p for p in points if p.checkpoint == base), None)
            plan.reason = "continues the chain from %s" % last.hypervisor
            return plan if plan.redefine else full("migrated from %s: point of checkpoint %s missing" % (
                last.hypervisor, base))
        return full("checkpoint %s no longer known to libvirt" % base)
    stored = next((p.checkpoint_time for p in points if p.checkpoint == base), "")
    if stored and known[base] != stored:
        return full("checkpoint %s is not the one this dataset created (foreign checkpoint)" % base)
    return plan


def _disk_change(last: PointInfo, disks: Sequence[Disk]) -> str:
    current = {d.target: d for d in disks}
    for target, size in sorted(last.disks.items()):
        if target not in current:
            return "disk %s removed" % target
        if current[target].size != size:
            return "disk %s resized" % target
    for disk in disks:
        if disk.target not in last.disks:
            return "disk %s added" % disk.target
        if not disk.persistent_bitmaps:
            return "disk %s is %s: no persistent bitmap" % (disk.target, disk.driver)
    return ""


def needed(points: Sequence[PointInfo], keep: set[str]) -> set[str]:
    """The kept points and every point their restores read (chain-aware retention)."""
    wanted = set()
    for point in points:
        if point.id in keep:
            try:
                wanted.update(p.id for p in lineage(point, points))
            except ChainBroken:
                wanted.add(point.id)
    return wanted
