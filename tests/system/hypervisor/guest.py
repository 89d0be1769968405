"""A minimal Linux guest under a private libvirtd: the cached kernel and initramfs of
scripts/build-guest-image, qcow2 data disks, the domain XML, and ``Guest`` to drive it through
qemu-guest-agent (ping, exec, block writes, shutdown).

The guest mounts an ext4 vda at /data (what guest-fsfreeze freezes) and leaves other disks raw.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .libvirtd import LibvirtDaemon, LibvirtError, log_tail

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "scripts" / "build-guest-image"
DEFAULT_CACHE = Path("/var/cache/restorable-tests/guest")
AGENT_PORT = "org.qemu.guest_agent.0"
# guest-exec carries stdin inline (base64) on virsh's command line, where one argument may
# hold at most 128 KiB: 64 KiB of data fit with room to spare.
WRITE_CHUNK = 64 * 1024


class GuestError(RuntimeError):
    """The guest did not boot, answer, run a command or stop as asked."""


def guest_cache_dir() -> Path:
    """Where the guest image is cached across sessions (env RESTORABLE_GUEST_CACHE)."""
    return Path(os.environ.get("RESTORABLE_GUEST_CACHE", DEFAULT_CACHE))


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path

    @classmethod
    def build(cls, cache_dir: Path | None = None, timeout: float = 900.0) -> GuestImage:
        """Build the image into the cache (~10 s), or return the cached one (~10 ms)."""
        out = cache_dir or guest_cache_dir()
        result = subprocess.run([str(BUILD_SCRIPT), str(out)], capture_output=True, text=True,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise GuestError(f"{BUILD_SCRIPT.name} failed:\n{result.stderr[-3000:]}")
        return cls(out / "vmlinuz", out / "initrd.gz")


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise GuestError(f"{argv[0]} exited {result.returncode}: {result.stderr.strip()}")


def make_data_disk(path: Path, size_mib: int, ext4: bool = True, cluster_size: str = "64k") -> Path:
    """A qcow2 disk: an ext4 filesystem (made on a raw file, then converted), or blank."""
    options = f"cluster_size={cluster_size}"
    if not ext4:
        _run("qemu-img", "create", "-q", "-f", "qcow2", "-o", options, str(path), f"{size_mib}M")
        return path
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".raw") as raw:
        os.truncate(raw.name, size_mib * 1024 * 1024)
        # Inode tables and journal initialised now: no lazy init writing behind the tests' backs.
        _run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", raw.name)
        _run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-o", options, raw.name, str(path))
    return path


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = text
    return element


def domain_xml(name: str, uuid: str, kernel: Path, initrd: Path, disks: Sequence[tuple[str, Path]],
               agent: bool = True, memory_mib: int = 192, *, console_log: Path) -> str:
    """A TCG domain booting the kernel directly, virtio qcow2 disks, no network, the serial
    console appended to ``console_log``, and the guest agent's channel."""
    domain = ET.Element("domain", type="qemu")
    _sub(domain, "name", name)
    _sub(domain, "uuid", uuid)
    _sub(domain, "memory", str(memory_mib), unit="MiB")
    _sub(domain, "vcpu", "1")
    os_element = _sub(domain, "os")
    _sub(os_element, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_element, "kernel", str(kernel))
    _sub(os_element, "initrd", str(initrd))
    _sub(os_element, "cmdline", "console=ttyS0")
    # Without ACPI the guest's poweroff only halts the CPU: the domain would never shut off.
    _sub(_sub(domain, "features"), "acpi")
    devices = _sub(domain, "devices")
    for target, path in disks:
        disk = _sub(devices, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="qcow2")
        _sub(disk, "source", file=str(path))
        _sub(disk, "target", dev=target, bus="virtio")
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=str(console_log), append="on")
    _sub(serial, "target", port="0")
    if agent:
        channel = _sub(devices, "channel", type="unix")
        _sub(channel, "target", type="virtio", name=AGENT_PORT)
    _sub(devices, "controller", type="usb", model="none")
    _sub(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


class Guest:
    """A domain of one LibvirtDaemon, driven through virsh and its guest agent."""

    def __init__(self, name: str, daemon: LibvirtDaemon) -> None:
        self.name = name
        self.daemon = daemon

    def define(self, xml: str) -> None:
        path = self.daemon.root / f"{self.name}.xml"
        path.write_text(xml)
        self.daemon.virsh("define", str(path))

    def undefine(self) -> None:
        self.daemon.virsh("undefine", self.name)

    def start(self) -> None:
        self.daemon.virsh("start", self.name)

    def state(self) -> str:
        return self.daemon.virsh("domstate", self.name).strip()

    def agent(self, command: str, arguments: dict[str, Any] | None = None, timeout: int = 10) -> Any:
        """One guest agent command; its "return" value."""
        message: dict[str, Any] = {"execute": command}
        if arguments is not None:
            message["arguments"] = arguments
        reply = self.daemon.virsh("qemu-agent-command", self.name, json.dumps(message),
                                  "--timeout", str(timeout), timeout=timeout + 30)
        return json.loads(reply)["return"]

    def wait_agent(self, timeout: float = 60.0) -> float:
        """Wait until the agent answers guest-ping; the seconds it took."""
        started = time.monotonic()
        while True:
            try:
                self.agent("guest-ping", timeout=2)
                return time.monotonic() - started
            except LibvirtError as exc:
                if time.monotonic() - started > timeout:
                    raise GuestError(f"{self.name}: no guest agent after {timeout:.0f} s ({exc}); console:\n"
                                     f"{log_tail(self.daemon.console_log(self.name))}") from exc
            time.sleep(0.2)

    def exec(self, argv: Sequence[str], timeout: float = 60.0,
             input_data: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run argv in the guest: (exit code, or -signal; stdout; stderr)."""
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if input_data is not None:
            arguments["input-data"] = base64.b64encode(input_data).decode()
        pid = self.agent("guest-exec", arguments)["pid"]
        deadline = time.monotonic() + timeout
        while not (status := self.agent("guest-exec-status", {"pid": pid}))["exited"]:
            if time.monotonic() > deadline:
                raise GuestError(f"{self.name}: {argv!r} still running after {timeout:.0f} s")
            time.sleep(0.05)
        code = status["exitcode"] if "exitcode" in status else -status["signal"]
        return (code, base64.b64decode(status.get("out-data", "")), base64.b64decode(status.get("err-data", "")))

    def write_block(self, dev: str, offset: int, length: int, seed: int) -> bytes:
        """Write ``length`` pseudo-random bytes (``seed`` makes them reproducible) at byte
        ``offset`` of the raw device ``dev`` and fsync it, which flushes through qemu into the
        image file; returns the bytes written."""
        data = random.Random(seed).randbytes(length)
        for start in range(0, length, WRITE_CHUNK):
            chunk = data[start:start + WRITE_CHUNK]
            code, _stdout, err = self.exec(["/bin/dd", f"of={dev}", f"bs={WRITE_CHUNK}", f"seek={offset + start}",
                                            "oflag=seek_bytes", "iflag=fullblock", "conv=notrunc,fsync"],
                                           input_data=chunk)
            if code != 0:
                raise GuestError(f"{self.name}: dd to {dev} exited {code}: {err.decode(errors='replace')}")
        return data

    def shutdown(self, timeout: float = 60.0) -> None:
        """guest-shutdown through the agent, then wait until the domain is shut off."""
        self.daemon.virsh("shutdown", "--mode", "agent", self.name)
        deadline = time.monotonic() + timeout
        while self.state() != "shut off":
            if time.monotonic() > deadline:
                raise GuestError(f"{self.name}: still {self.state()} {timeout:.0f} s after guest-shutdown")
            time.sleep(0.2)

    def destroy(self) -> None:
        if self.state() != "shut off":
            self.daemon.virsh("destroy", self.name)
