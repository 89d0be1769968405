"""Helpers of the host tier's system tests: a guest on a private hypervisor, its job, its runs,
and the model of what the tests wrote to its raw disk (vdb), to compare restores block for block."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions
from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import runner_for

from hypervisor.guest import Guest, GuestImage, domain_xml, make_data_disk
from hypervisor.libvirtd import LibvirtDaemon

MIB = 1024 * 1024


@dataclass
class Lab:
    """One guest (ext4 vda, raw vdb) on a hypervisor, and the bytes vdb should hold."""

    guest: Guest
    uuid: str
    disks: dict[str, Path]
    vdb_size: int
    vdb: bytearray = field(default_factory=bytearray)

    def write(self, offset: int, length: int, seed: int) -> None:
        data = self.guest.write_block("/dev/vdb", offset, length, seed)
        self.vdb[offset:offset + length] = data


def boot_lab(name: str, daemon: LibvirtDaemon, image: GuestImage, storage: Path, vdb_mib: int = 16) -> Lab:
    disks = {"vda": make_data_disk(storage / f"{name}-vda.qcow2", 32),
             "vdb": make_data_disk(storage / f"{name}-vdb.qcow2", vdb_mib, ext4=False)}
    lab_uuid = str(uuid.uuid4())
    guest = Guest(name, daemon)
    guest.define(domain_xml(name, lab_uuid, image.kernel, image.initrd, list(disks.items()),
                            console_log=daemon.console_log(name)))
    guest.start()
    guest.wait_agent(timeout=120)
    return Lab(guest, lab_uuid, disks, vdb_mib * MIB, bytearray(vdb_mib * MIB))


def host_job(name: str, tmp: Path, repo: Any, daemon: LibvirtDaemon, vms: dict, **options: Any) -> JobConfig:
    document = {
        "format": 1, "tier": "host", "dataset": name, "host": daemon.name,
        "repository": {"url": str(repo.path), "password_file": str(repo.password_file)},
        "paths": [], "retention": {"last": 100}, "status_dir": str(tmp / "status"),
        "options": dict({"vms": vms, "libvirt_uri": daemon.uri, "scratch_dir": str(tmp / "scratch")}, **options),
    }
    return JobConfig.from_dict(document)


def run_job(config: JobConfig) -> dict[str, Any]:
    return runner_for(config, RunOptions(ignore_window=True, ignore_load=True)).run().to_dict()


def raw_bytes(image: Path, scratch: Path) -> bytes:
    raw = scratch / (image.stem + ".raw")
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(image), str(raw)], check=True,
                   capture_output=True, timeout=300)
    data = raw.read_bytes()
    raw.unlink()
    return data


def vm_of(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(vm for vm in status["vms"] if vm["name"] == name)
