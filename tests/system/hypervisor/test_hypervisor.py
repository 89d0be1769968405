"""Self-test of the hypervisor fixtures: two private libvirtd instances sharing a storage
directory, a real guest with qemu-guest-agent that writes to its disks, freezes, moves from hv01
to hv02 with the same UUID and disks, and is backed up there by libvirt (push mode, checkpoint)."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from .guest import Guest, GuestImage, domain_xml, make_data_disk
from .libvirtd import LibvirtDaemon
from .plugin import TIMINGS, Hypervisors

DOMAIN = "rbk-guest1"
BLOCK_OFFSET = 1024 * 1024 + 4096  # not cluster-aligned: partial clusters must be right too
BLOCK_LENGTH = 96 * 1024  # more than one write chunk
SEED = 20261203


def _boot(daemon: LibvirtDaemon, image: GuestImage, domain_uuid: str, disks: list[tuple[str, Path]]) -> Guest:
    guest = Guest(DOMAIN, daemon)
    guest.define(domain_xml(DOMAIN, domain_uuid, image.kernel, image.initrd, disks,
                            console_log=daemon.console_log(DOMAIN)))
    guest.start()
    TIMINGS[f"guest boot to agent ready ({daemon.name})"] = guest.wait_agent(timeout=90)
    return guest


def _read_image(image: Path, offset: int, length: int, scratch: Path) -> bytes:
    """Bytes of a qcow2 image in use by a running qemu (-U: no lock needed to read)."""
    raw = scratch / (image.stem + ".raw")
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", str(image), str(raw)],
                   check=True, capture_output=True, timeout=120)
    with open(raw, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def _job_info(daemon: LibvirtDaemon, *flags: str) -> dict[str, str]:
    lines = daemon.virsh("domjobinfo", DOMAIN, *flags).splitlines()
    return {key.strip(): value.strip() for key, _sep, value in (line.partition(":") for line in lines)}


def _backup_full(daemon: LibvirtDaemon, targets: dict[str, Path], checkpoint: str,
                 timeout: float = 120.0) -> dict[str, str]:
    """virsh backup-begin (push mode, qcow2 targets) with a new checkpoint; the completed job's info."""
    disks = "".join(f"<disk name='{dev}' type='file'><target file='{path}'/><driver type='qcow2'/></disk>"
                    for dev, path in targets.items())
    backup_xml = daemon.root / "backup.xml"
    backup_xml.write_text(f"<domainbackup mode='push'><disks>{disks}</disks></domainbackup>")
    checkpoint_xml = daemon.root / "checkpoint.xml"
    checkpoint_xml.write_text(f"<domaincheckpoint><name>{checkpoint}</name></domaincheckpoint>")
    daemon.virsh("backup-begin", DOMAIN, "--backupxml", str(backup_xml), "--checkpointxml", str(checkpoint_xml))
    deadline = time.monotonic() + timeout
    while _job_info(daemon).get("Job type") != "None":
        assert time.monotonic() < deadline, f"backup still running after {timeout:.0f} s"
        time.sleep(0.2)
    return _job_info(daemon, "--completed")


def _remove_domain(daemon: LibvirtDaemon) -> None:
    daemon.run_virsh("destroy", DOMAIN, check=False)
    daemon.run_virsh("undefine", DOMAIN, "--checkpoints-metadata", check=False)


def test_two_private_daemons_run_side_by_side(hypervisors: Hypervisors) -> None:
    hv01, hv02 = hypervisors.hv01, hypervisors.hv02
    assert hv01.socket != hv02.socket and hv01.socket.is_socket() and hv02.socket.is_socket()
    assert hv01.process is not None and hv02.process is not None and hv01.process.pid != hv02.process.pid
    for daemon in (hv01, hv02):
        assert daemon.virsh("uri").strip() == daemon.uri
        assert daemon.running_domains() == []
    # The bind mounts live in the daemons' own mount namespaces only.
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(hv01.root) not in mounts and str(hv02.root) not in mounts


def test_a_guest_writes_freezes_moves_to_hv02_and_is_backed_up(hypervisors: Hypervisors, guest_image: GuestImage,
                                                               tmp_path: Path) -> None:
    hv01, hv02, storage = hypervisors.hv01, hypervisors.hv02, hypervisors.storage
    disks = [("vda", make_data_disk(storage / "vda.qcow2", 64)),
             ("vdb", make_data_disk(storage / "vdb.qcow2", 64, ext4=False))]
    domain_uuid = str(uuid.uuid4())
    try:
        guest = _boot(hv01, guest_image, domain_uuid, disks)
        code, mounts, _stderr = guest.exec(["/bin/cat", "/proc/mounts"])
        assert code == 0 and b"/dev/vda /data ext4 rw" in mounts

        written = guest.write_block("/dev/vdb", BLOCK_OFFSET, BLOCK_LENGTH, SEED)
        assert _read_image(storage / "vdb.qcow2", BLOCK_OFFSET, BLOCK_LENGTH, tmp_path) == written

        hv01.virsh("domfsfreeze", DOMAIN)
        try:
            assert guest.agent("guest-fsfreeze-status") == "frozen"
        finally:
            hv01.virsh("domfsthaw", DOMAIN)
        assert guest.agent("guest-fsfreeze-status") == "thawed"

        guest.shutdown()
        guest.undefine()
        assert DOMAIN not in hv01.virsh("list", "--all", "--name").split()

        moved = _boot(hv02, guest_image, domain_uuid, disks)
        assert hv02.virsh("domuuid", DOMAIN).strip() == domain_uuid
        code, read_back, _stderr = moved.exec(["/bin/dd", "if=/dev/vdb", f"bs={BLOCK_LENGTH}", f"skip={BLOCK_OFFSET}",
                                               "count=1", "iflag=skip_bytes"])
        assert code == 0 and read_back == written

        targets = {dev: storage / f"backup-{dev}.qcow2" for dev in ("vda", "vdb")}
        info = _backup_full(hv02, targets, "cp1")
        assert info.get("Job type") == "Completed" and info.get("Operation") == "Backup", info
        assert hv02.virsh("checkpoint-list", DOMAIN, "--name").split() == ["cp1"]
        # vdb is idle, so its backup must equal the live disk.
        compare = subprocess.run(["qemu-img", "compare", "-U", "-f", "qcow2", "-F", "qcow2",
                                  str(storage / "vdb.qcow2"), str(targets["vdb"])],
                                 capture_output=True, text=True, timeout=120, check=False)
        assert compare.returncode == 0, compare.stdout + compare.stderr
    finally:
        _remove_domain(hv01)
        _remove_domain(hv02)
