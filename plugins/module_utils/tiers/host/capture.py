# -*- coding: utf-8 -*-
# Private to restorable.backup: taking one VM's point into its staging directory.
# Live VMs (running, paused): libvirt's backup job in push mode writes each selected disk's
# blocks (all of them, or those changed since the base checkpoint) into a fresh qcow2 beside
# the point, and creates the new checkpoint in the same instant. Only allocated blocks are
# written there, and only what is written there is read and stored afterwards.
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any, Sequence
from xml.sax.saxutils import escape, quoteattr

from ...common.fileio import atomic_write
from ...common.process import run_command
from ...consistency.watchdog import Watchdog, WatchdogError
from . import blocks
from .libvirt import Disk, Domain, LibvirtError, Virsh

POINT_FORMAT = 1


@dataclass
class Quiesce:
    """How consistent the point is: frozen through the guest agent, or crash-consistent and why."""

    consistent: bool
    reason: str = ""
    frozen: int = 0  # filesystems the guest agent froze
    seconds: float = 0.0  # from freeze to thaw


class PointDirectory:
    """The files of one point: disks/<target>.qcow2 and .blocks.json, domain.xml, checkpoint.xml, point.json."""

    def __init__(self, path: str) -> None:
        self.path = path

    def reset(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        os.makedirs(os.path.join(self.path, "disks"), mode=0o700)

    def disk(self, target: str) -> str:
        return os.path.join(self.path, "disks", target + ".qcow2")

    def manifest(self, target: str) -> str:
        return os.path.join(self.path, "disks", target + ".blocks.json")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def backup_xml(disks: Sequence[Disk], all_disks: Sequence[Disk], point: PointDirectory, base: str) -> str:
    wanted = {d.target for d in disks}
    lines = ["<domainbackup mode='push'>"]
    if base:
        lines.append("  <incremental>%s</incremental>" % escape(base))
    lines.append("  <disks>")
    for disk in all_disks:
        if disk.target in wanted:
            lines.append("    <disk name=%s backup='yes' type='file'><driver type='qcow2'/><target file=%s/></disk>"
                         % (quoteattr(disk.target), quoteattr(point.disk(disk.target))))
        else:
            lines.append("    <disk name=%s backup='no'/>" % quoteattr(disk.target))
    lines += ["  </disks>", "</domainbackup>"]
    return "\n".join(lines) + "\n"


def checkpoint_xml(name: str, description: str, disks: Sequence[Disk], all_disks: Sequence[Disk]) -> str:
    wanted = {d.target for d in disks}
    lines = ["<domaincheckpoint>", "  <name>%s</name>" % escape(name),
             "  <description>%s</description>" % escape(description), "  <disks>"]
    for disk in all_disks:
        how = "bitmap" if disk.target in wanted else "no"
        lines.append("    <disk name=%s checkpoint='%s'/>" % (quoteattr(disk.target), how))
    lines += ["  </disks>", "</domaincheckpoint>"]
    return "\n".join(lines) + "\n"


class LiveBackup:
    """A point of a running or paused VM through libvirt's backup job."""

    def __init__(self, virsh: Virsh, quiesce: bool, quiesce_max_seconds: int, watchdog_log: str | None,
                 monotonic: Any = time.monotonic) -> None:
        self.virsh = virsh
        self.quiesce = quiesce
        self.quiesce_max_seconds = quiesce_max_seconds
        self.watchdog_log = watchdog_log
        self.monotonic = monotonic

    def take(self, domain: Domain, disks: Sequence[Disk], point: PointDirectory, checkpoint: str, base: str,
             description: str, timeout: float | None) -> Quiesce:
        work = point.path + ".xml"
        os.makedirs(work, mode=0o700, exist_ok=True)
        backup_file, checkpoint_file = os.path.join(work, "backup.xml"), os.path.join(work, "checkpoint.xml")
        atomic_write(backup_file, backup_xml(disks, domain.disks, point, base))
        atomic_write(checkpoint_file, checkpoint_xml(checkpoint, description, disks, domain.disks))
        try:
            quiesce = self._begin(domain, backup_file, checkpoint_file)
            self.virsh.wait_job(domain.uuid, timeout)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for disk in disks:
            detach_backing(point.disk(disk.target))
        return quiesce

    def _begin(self, domain: Domain, backup_file: str, checkpoint_file: str) -> Quiesce:
        """Start the job (the checkpoint is taken now), the guest frozen around that instant."""
        if not self.quiesce:
            self.virsh.backup_begin(domain.uuid, backup_file, checkpoint_file)
            return Quiesce(False, "quiesce is off")
        if domain.state != "running":
            self.virsh.backup_begin(domain.uuid, backup_file, checkpoint_file)
            return Quiesce(False, "VM %s: guest agent not reachable" % domain.state)
        watchdog = Watchdog(self.quiesce_max_seconds, self.watchdog_log, name="thaw %s" % domain.name)
        try:
            watchdog.start()
            watchdog.add_command(self.virsh.thaw_argv(domain.uuid), timeout=30)
        except WatchdogError as exc:
            watchdog.release_now()
            self.virsh.backup_begin(domain.uuid, backup_file, checkpoint_file)
            return Quiesce(False, "no watchdog to guard a freeze: %s" % exc)
        began = self.monotonic()
        try:
            frozen = self.virsh.freeze(domain.uuid)
        except LibvirtError as exc:
            watchdog.release_now()
            self.virsh.backup_begin(domain.uuid, backup_file, checkpoint_file)
            return Quiesce(False, "guest freeze failed: %s" % exc)
        try:
            self.virsh.backup_begin(domain.uuid, backup_file, checkpoint_file)
        finally:
            thawed = _try(lambda: self.virsh.thaw(domain.uuid))
            seconds = round(self.monotonic() - began, 3)
            fired = watchdog.disarm() if thawed else watchdog.release_now()
        if fired:
            return Quiesce(False, "the watchdog thawed the guest after %ds" % self.quiesce_max_seconds, frozen, seconds)
        return Quiesce(True, "", frozen, seconds)


def detach_backing(delta: str) -> None:
    """libvirt gives an incremental target the live disk as its backing file: the point must
    hold only its own blocks and never name a production disk, so the pointer goes."""
    result = run_command(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "", delta], timeout=120)
    if not result.ok:
        raise LibvirtError("qemu-img rebase %s: %s" % (delta, result.stderr_tail()))


def write_point_files(point: PointDirectory, document: dict[str, Any], domain_xml: str, checkpoint_xml_text: str,
                      disks: Sequence[Disk]) -> dict[str, dict[str, str]]:
    """Beside the disk data: the domain and checkpoint XML, block digests, and point.json."""
    manifests = {}
    for disk in disks:
        manifests[disk.target] = blocks.manifest(point.disk(disk.target), disk.size)
        atomic_write(point.manifest(disk.target), json.dumps(manifests[disk.target], sort_keys=True), mode=0o600)
    atomic_write(point.file("domain.xml"), domain_xml, mode=0o600)
    atomic_write(point.file("checkpoint.xml"), checkpoint_xml_text, mode=0o600)
    atomic_write(point.file("point.json"), json.dumps(dict(document, format=POINT_FORMAT), indent=1, sort_keys=True),
                 mode=0o600)
    return manifests


def _try(action: Any) -> bool:
    try:
        action()
        return True
    except LibvirtError:
        return False
