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
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Sequence
from xml.sax.saxutils import escape, quoteattr

from ...common.fileio import atomic_write
from ...common.process import run_command
from ...consistency.watchdog import Watchdog, WatchdogError
from . import blocks
from .libvirt import Disk, Domain, LibvirtError, Virsh
from .qmp import QmpClient, QmpError

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
        how = "bitmap" if disk.target in wanted and disk.persistent_bitmaps else "no"
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
            listener = self.virsh.watch_job(domain.uuid, timeout)
            try:
                quiesce = self._begin(domain, backup_file, checkpoint_file)
            except BaseException:
                listener.kill()  # no job to wait for
                listener.wait()
                raise
            self.virsh.wait_job(domain.uuid, timeout, listener)
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
    _qemu_img(["rebase", "-u", "-f", "qcow2", "-b", "", delta])


def write_point_files(point: PointDirectory, document: dict[str, Any], domain_xml: str, checkpoint_xml_text: str,
                      disks: Sequence[Disk]) -> dict[str, dict[str, str]]:
    """Beside the disk data: the domain and checkpoint XML, block digests, and point.json."""
    manifests = {}
    for disk in disks:
        manifests[disk.target] = blocks.manifest(point.disk(disk.target), disk.size, base=document["kind"] == "full")
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


class OfflineBackup:
    """A point of a shut-off (or managed-saved) VM, read from its disks by qemu-storage-daemon:
    the same block job libvirt runs for a live VM, with the same persistent bitmaps, so the chain
    goes on incrementally; the new checkpoint is then taught to libvirt. The domain is never started."""

    def __init__(self, virsh: Virsh, monotonic: Any = time.monotonic) -> None:
        self.virsh = virsh
        self.monotonic = monotonic

    def take(self, domain: Domain, disks: Sequence[Disk], point: PointDirectory, checkpoint: str, base: str,
             description: str, timeout: float | None) -> Quiesce:
        for disk in disks:
            _qemu_img(["create", "-q", "-f", "qcow2", point.disk(disk.target), str(disk.size)])
        work = tempfile.mkdtemp(prefix="rbk-qsd-")  # short: a unix socket path holds ~100 bytes
        try:
            created = self._run_jobs(domain, disks, point, checkpoint, base, work, timeout)
            self._teach_libvirt(domain, disks, checkpoint, description, created, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        why = "VM %s%s: read from its disks" % (domain.state, " (saved)" if domain.managed_save else "")
        return Quiesce(not domain.managed_save, "" if not domain.managed_save else why)

    def _run_jobs(self, domain: Domain, disks: Sequence[Disk], point: PointDirectory, checkpoint: str, base: str,
                  work: str, timeout: float | None) -> int:
        monitor = os.path.join(work, "qmp.sock")
        argv = ["qemu-storage-daemon", "--chardev", "socket,id=qmp,path=%s,server=on,wait=off" % monitor,
                "--monitor", "chardev=qmp"]
        for index, disk in enumerate(disks):
            argv += ["--blockdev", "driver=file,node-name=f%d,filename=%s" % (index, _opt(disk.path)),
                     "--blockdev", "driver=%s,node-name=d%d,file=f%d" % (disk.driver, index, index),
                     "--blockdev", "driver=file,node-name=tf%d,filename=%s" % (index, _opt(point.disk(disk.target))),
                     "--blockdev", "driver=qcow2,node-name=t%d,file=tf%d" % (index, index)]
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  start_new_session=True)
        client = QmpClient(monitor)
        try:
            client.connect()
            actions = []
            for index, disk in enumerate(disks):
                # Kept after they end (auto-dismiss off), so that their outcome can be read.
                backup = {"device": "d%d" % index, "target": "t%d" % index, "job-id": "j%d" % index, "sync": "full",
                          "auto-dismiss": False}
                if base:
                    backup.update(sync="bitmap", bitmap=base, **{"bitmap-mode": "never"})
                actions.append({"type": "blockdev-backup", "data": backup})
                if disk.persistent_bitmaps:
                    actions.append({"type": "block-dirty-bitmap-add",
                                    "data": {"node": "d%d" % index, "name": checkpoint, "persistent": True}})
            client.execute("transaction", {"actions": actions})
            self._wait(client, len(disks), timeout)
            created = int(time.time())
            client.execute("quit")  # writes the persistent bitmaps back into the images
        except QmpError as exc:
            client.close()
            raise LibvirtError("offline backup of %s: %s %s" % (domain.name, exc, _reap(daemon))) from None
        client.close()
        _reap(daemon)
        return created

    def _wait(self, client: QmpClient, count: int, timeout: float | None) -> None:
        deadline = self.monotonic() + timeout if timeout else None
        while True:
            jobs = client.execute("query-jobs")
            if len(jobs) < count:
                raise QmpError("%d of %d block jobs are gone" % (count - len(jobs), count))
            if all(job["status"] == "concluded" for job in jobs):
                failed = [job for job in jobs if job.get("error")]
                if failed:
                    raise QmpError("block job failed: %s" % failed[0]["error"])
                return
            if deadline is not None and self.monotonic() > deadline:
                raise QmpError("block jobs did not end within %ds" % timeout)
            time.sleep(0.1)

    def _teach_libvirt(self, domain: Domain, disks: Sequence[Disk], checkpoint: str, description: str,
                       created: int, work: str) -> None:
        wanted = {d.target for d in disks}
        parents = self.virsh.checkpoints(domain.uuid)
        lines = ["<domaincheckpoint>", "  <name>%s</name>" % escape(checkpoint),
                 "  <description>%s</description>" % escape(description),
                 "  <creationTime>%d</creationTime>" % created]
        if parents:
            lines.append("  <parent><name>%s</name></parent>" % escape(parents[-1]))
        lines.append("  <disks>")
        for disk in domain.disks:
            if disk.target in wanted and disk.persistent_bitmaps:
                lines.append("    <disk name=%s checkpoint='bitmap' bitmap=%s/>"
                             % (quoteattr(disk.target), quoteattr(checkpoint)))
            else:
                lines.append("    <disk name=%s checkpoint='no'/>" % quoteattr(disk.target))
        lines += ["  </disks>", domain.xml, "</domaincheckpoint>"]
        path = os.path.join(work, "checkpoint.xml")
        atomic_write(path, "\n".join(lines) + "\n")
        self.virsh.redefine_checkpoint(domain.uuid, path, validate=False)


def _opt(value: str) -> str:
    """A path inside a qemu option string: commas are doubled."""
    return value.replace(",", ",,")


def _reap(process: subprocess.Popen) -> str:
    """Wait for the daemon to end (killed when it does not); what it said on stderr."""
    try:
        _out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
    return err.decode("utf-8", "replace").strip()[-300:]


def _qemu_img(args: list[str]) -> None:
    result = run_command(["qemu-img"] + args, timeout=300)
    if not result.ok:
        raise LibvirtError("qemu-img %s: %s" % (args[0], result.stderr_tail()))
