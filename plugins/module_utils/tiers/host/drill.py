# -*- coding: utf-8 -*-
# Private to restorable.backup: restore drills of host datasets. A point (one VM's) is made
# whole into the sandbox; layers: the repository (restic check), freshness (the point's own
# record), content (qemu-img check and every block against the digests taken with the point),
# and the application: the restored VM boots, isolated, under a new name and UUID, until its
# guest agent answers and the drill's guest commands pass; then it is destroyed and undefined.
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from typing import Any, Sequence

from ...drill.engine import FAILED, OK, DrillEngine, DrillError, Layer, RecoveryPoint, RestoreDriver, RestoreStats
from ...storage.repository import Repository, RepositoryError
from ..drill_params import check_only_record, integrity_layer, open_drill_repository, spec_from_params
from .chain import ChainBroken, PointInfo, points_by_vm
from .libvirt import DEFAULT_URI, LibvirtError, Virsh
from .restore import MaterialisedPoint, RestoreRefused, check_images, isolated_domain_xml, materialise

BOOT_TIMEOUT = 180.0


class HostRestoreDriver(RestoreDriver):
    tier = "host"

    def __init__(self, repo: Repository, dataset: str, vm: str | None = None, libvirt_uri: str = DEFAULT_URI,
                 guest_commands: Sequence[Sequence[str]] = (), read_data_subset: str | None = None,
                 boot_timeout: float = BOOT_TIMEOUT, timeout: float | None = None) -> None:
        self.repo = repo
        self.dataset = dataset
        self.vm = vm
        self.virsh = Virsh(libvirt_uri)
        self.guest_commands = [list(c) for c in guest_commands]
        self.read_data_subset = read_data_subset
        self.boot_timeout = boot_timeout
        self.timeout = timeout
        self.all_points: list[PointInfo] = []
        self.restored: MaterialisedPoint | None = None

    def points(self) -> list[RecoveryPoint]:
        try:
            by_vm = points_by_vm(self.repo.snapshots(tags=["dataset:" + self.dataset]))
        except RepositoryError as exc:
            raise DrillError(exc.message) from None
        self.all_points = [p for points in by_vm.values() for p in points]
        return [RecoveryPoint(p.id, p.time, p.id[:8], [], {"info": p}) for p in self.all_points
                if not self.vm or self.vm in (p.vm, p.vm_name)]

    def restore(self, point: RecoveryPoint, target: str, sample: dict[str, Any]) -> RestoreStats:
        info = point.extra["info"]
        try:
            self.restored = materialise(self.repo, info, self.all_points, os.path.join(target, "disks"),
                                        timeout=self.timeout)
        except (ChainBroken, RestoreRefused, RepositoryError) as exc:
            raise DrillError("VM %s point %s: %s" % (info.vm_name, point.short_id, exc)) from None
        stats = RestoreStats()
        stats.seconds = self.restored.restore_seconds + self.restored.merge_seconds
        return stats

    def repository_layers(self, checks: Sequence[str]) -> list[Layer]:
        return [integrity_layer(self.repo, self.read_data_subset, self.timeout)] if "integrity" in checks else []

    def verify_layers(self, point: RecoveryPoint, target: str, checks: Sequence[str]) -> list[Layer]:
        layers = []
        if "freshness" in checks:
            layers.append(self.freshness(point))
        if "content" in checks:
            layers.append(self.content())
        return layers

    def freshness(self, point: RecoveryPoint) -> Layer:
        restored = self.restored
        with open(os.path.join(restored.directory, "point.json"), encoding="utf-8") as handle:
            document = json.load(handle)
        info = point.extra["info"]
        if document.get("vm") != info.vm or document.get("checkpoint") != info.checkpoint:
            return Layer("freshness", FAILED, "the restored point record is of VM %s checkpoint %s, not %s %s" % (
                document.get("vm"), document.get("checkpoint"), info.vm, info.checkpoint))
        return Layer("freshness", OK, "point of VM %s taken %s (%s, chain position %d of %d point(s) read)" % (
            info.vm_name, document.get("taken"), info.kind, info.position, len(restored.chain)),
            details={"taken": document.get("taken"), "chain": [i[:8] for i in restored.chain]})

    def content(self) -> Layer:
        began = time.monotonic()
        restored = self.restored
        problems = {t: p for t, p in check_images(restored.disks).items() if p}
        if problems:
            return Layer("content", FAILED, "qemu-img check: %s" % "; ".join("%s: %s" % i for i in sorted(problems.items())),
                         time.monotonic() - began)
        differing = {t: b for t, b in restored.verify().items() if b}
        if differing:
            return Layer("content", FAILED, "blocks differ from the digests taken with the point: %s" % "; ".join(
                "%s: %d block(s), first at byte %d" % (t, len(b), b[0] * 65536) for t, b in sorted(differing.items())),
                time.monotonic() - began, {"differing_blocks": {t: len(b) for t, b in differing.items()}})
        checked = sum(len(m) for m in restored.manifests.values())
        return Layer("content", OK, "qemu-img check clean; %d data block(s) of %d disk(s) match their digests" % (
            checked, len(restored.disks)), time.monotonic() - began, {"blocks": checked})

    def application(self, point: RecoveryPoint, target: str) -> Layer:
        """Boot the restored VM without network; ready when its guest agent answers."""
        restored = self.restored
        name = "drill-%s-%s" % (restored.point.vm_name or "vm", os.path.basename(target.rstrip("/"))[-8:])
        began = time.monotonic()
        with open(restored.domain_xml, encoding="utf-8") as handle:
            xml = isolated_domain_xml(handle.read(), name, restored.disks)
        xml_path = os.path.join(target, "drill-domain.xml")
        with open(xml_path, "w", encoding="utf-8") as handle:
            handle.write(xml)
        try:
            self.virsh.define(xml_path)
        except LibvirtError as exc:
            return Layer("application", FAILED, "cannot define the restored VM: %s" % exc)
        try:
            return self._boot(name, began)
        finally:
            self.virsh.run("destroy", name, check=False)
            self.virsh.run("undefine", name, "--checkpoints-metadata", check=False)

    def _boot(self, name: str, began: float) -> Layer:
        try:
            self.virsh.run("start", name)
        except LibvirtError as exc:
            return Layer("application", FAILED, "the restored VM does not start: %s" % exc)
        deadline = began + self.boot_timeout
        while True:
            try:
                self.virsh.agent(name, "guest-ping", timeout=5)
                break
            except (LibvirtError, ValueError):
                if time.monotonic() > deadline:
                    return Layer("application", FAILED, "the restored VM's guest agent did not answer within %ds" %
                                 self.boot_timeout, time.monotonic() - began)
                time.sleep(1)
        ready = time.monotonic() - began
        for argv in self.guest_commands:
            code, output = guest_exec(self.virsh, name, argv)
            if code != 0:
                return Layer("application", FAILED, "guest command %s exited %s: %s" % (
                    " ".join(argv), code, output[-300:]), ready)
        return Layer("application", OK, "restored VM booted isolated (no network); guest agent ready after %.1fs; "
                     "%d guest command(s) passed" % (ready, len(self.guest_commands)), ready,
                     {"boot_seconds": round(ready, 2), "guest_commands": len(self.guest_commands)})


def guest_exec(virsh: Virsh, domain: str, argv: Sequence[str], timeout: float = 60.0) -> tuple[int | None, str]:
    """Run a command in the guest through its agent: (exit code, stdout and stderr)."""
    started = virsh.agent(domain, "guest-exec", {"path": argv[0], "arg": list(argv[1:]), "capture-output": True})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = virsh.agent(domain, "guest-exec-status", {"pid": started["pid"]})
        if status.get("exited"):
            output = b"".join(base64.b64decode(status.get(k, "")) for k in ("out-data", "err-data"))
            return status.get("exitcode"), output.decode("utf-8", "replace")
        time.sleep(0.2)
    return None, "timed out after %ds" % timeout


def run_host_drill(params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    spec = spec_from_params(dict(params, tier="host"))
    if check_only:
        return check_only_record(spec)
    secrets_dir = tempfile.mkdtemp(prefix="restorable-drill-")
    try:
        repo = open_drill_repository(params, secrets_dir)
        driver = HostRestoreDriver(repo, spec.dataset, params.get("vm"), params.get("libvirt_uri") or DEFAULT_URI,
                                   params.get("guest_commands") or [], params.get("read_data_subset"),
                                   float(params.get("boot_timeout") or BOOT_TIMEOUT), params.get("timeout"))
        return DrillEngine(spec, driver).run()
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)
