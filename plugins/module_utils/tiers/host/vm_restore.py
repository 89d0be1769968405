# -*- coding: utf-8 -*-
# Private to restorable.backup: restore_vm on a hypervisor: a point of a host dataset's job
# materialised in a directory and, when asked, defined as a new isolated VM. The directory may
# hold no disk of any VM this hypervisor defines, and an existing VM name is never reused.
from __future__ import annotations

import os
from typing import Any

from ...common.process import Redactor
from ...storage.factory import open_job_repository
from ...storage.repository import Repository
from .chain import points_by_vm
from .libvirt import Virsh
from .options import HostOptions
from .restore import RestoreRefused, already_restored, choose, isolated_domain_xml, materialise


def job_repository(config: Any) -> Repository:
    return open_job_repository(config, Redactor())


def restore_vm(config: Any, vm: str, directory: str, point: str = "latest", at: str | None = None,
               define: str | None = None, check_mode: bool = False) -> dict[str, Any]:
    """What restore_vm did (or, in check mode, would do): the point, the images, the new VM."""
    options = HostOptions.from_config(config)
    virsh = Virsh(options.libvirt_uri)
    repo = job_repository(config)
    points = [p for chain in points_by_vm(repo.snapshots(tags=[config.dataset_tag])).values() for p in chain]
    chosen = choose(points, vm, point, at)
    domains = virsh.domains()
    images = {t: os.path.join(directory, t + ".qcow2") for t in chosen.disks}
    existing = next((d for d in domains if d.name == define), None) if define else None
    if existing is not None and sorted(disk.path for disk in existing.disks) != sorted(images.values()):
        raise RestoreRefused("a VM named %s exists already on this hypervisor" % define)
    result: dict[str, Any] = {"point": chosen.id, "vm": chosen.vm, "vm_name": chosen.vm_name, "kind": chosen.kind,
                              "position": chosen.position, "taken": chosen.time.isoformat(), "directory": directory,
                              "defined": None, "changed": False}
    result["disks"] = images
    if not already_restored(directory, chosen):
        result["changed"] = True
        if not check_mode:
            protected = [disk.path for d in domains for disk in d.disks]
            restored = materialise(repo, chosen, points, directory, protected)
            differing = {t: b for t, b in restored.verify().items() if b}
            if differing:
                raise RestoreRefused("restored disks differ from the point's digests: %s" % differing)
            result["chain"] = restored.chain
    if define:
        result["defined"] = define
    if define and existing is None:
        result["changed"] = True
        if not check_mode:
            with open(os.path.join(directory, "domain.xml"), encoding="utf-8") as handle:
                xml = isolated_domain_xml(handle.read(), define, images)
            path = os.path.join(directory, define + ".xml")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(xml)
            virsh.define(path)
    return result
