"""The demo's hypervisor: a private libvirtd (its own mount namespace, everything below ROOT)
running one small VM, demo-vm, with the guest agent, for the host tier of `make demo`.

    python3 scripts/demo_hypervisor.py start ROOT   # build the guest once, start libvirtd, define and boot demo-vm
    python3 scripts/demo_hypervisor.py stop ROOT    # destroy the VMs, stop the daemons by their pid files

It reuses the private hypervisor of the system tests (tests/system/hypervisor), so the demo
runs exactly what the tests prove. Idempotent: start on a running instance only checks the VM.
start ends by writing ROOT/started, "ready" or "failed: why": make demo boots the VM while the
playbook plans and applies, and the playbook waits for that file before it backs up.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "system"))

from hypervisor.guest import Guest, GuestImage, domain_xml, guest_cache_dir, make_data_disk  # noqa: E402
from hypervisor.libvirtd import LibvirtDaemon  # noqa: E402

VM = "demo-vm"


def daemon(root: Path) -> LibvirtDaemon:
    return LibvirtDaemon("demo-hv", root / "libvirtd", capabilities_cache=guest_cache_dir() / "qemu-capabilities")


def start(root: Path) -> None:
    hypervisor = daemon(root)
    if not (hypervisor.socket.exists() and hypervisor.run_virsh("uri", check=False).returncode == 0):
        seconds = hypervisor.start()
        print(f"libvirtd started in {seconds:.1f} s, {hypervisor.uri}")
    guest = Guest(VM, hypervisor)
    if VM not in hypervisor.virsh("list", "--all", "--name").split():
        image = GuestImage.build()
        storage = root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        disks = [("vda", make_data_disk(storage / f"{VM}-vda.qcow2", 64)),
                 ("vdb", make_data_disk(storage / f"{VM}-vdb.qcow2", 64, ext4=False))]
        guest.define(domain_xml(VM, str(uuid.uuid4()), image.kernel, image.initrd, disks,
                                console_log=hypervisor.console_log(VM)))
    if guest.state() != "running":
        guest.start()
        print(f"{VM} booted, guest agent ready after {guest.wait_agent(timeout=180):.1f} s")
        # Data the drill's guest command finds in the restored VM.
        code, _out, err = guest.exec(["/bin/sh", "-c", "echo 'demo data' > /data/ready && sync"])
        if code != 0:
            raise SystemExit(f"writing /data/ready in {VM} failed: {err.decode(errors='replace')}")


def start_and_record(root: Path) -> None:
    marker = root / "started"
    root.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    try:
        start(root)
    except BaseException as exc:  # SystemExit and Ctrl-C too: the playbook must not wait in vain
        marker.write_text(f"failed: {exc}\n")
        raise
    marker.write_text("ready\n")


def stop(root: Path) -> None:
    (root / "started").unlink(missing_ok=True)  # a stopped VM is not ready
    daemon(root).stop()
    print("demo hypervisor stopped")


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[2])
    (start_and_record if argv[1] == "start" else stop)(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
