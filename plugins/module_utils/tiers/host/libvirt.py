# -*- coding: utf-8 -*-
# Private to restorable.backup: the hypervisor as the host tier sees it, through virsh.
# virsh rather than the Python binding: libvirt-clients is on every hypervisor, the binding is
# not, and every call is then a plain command whose failure text reaches the status as it is.
from __future__ import annotations

import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Sequence

from ...common.process import CommandResult, base_env, run_command

DEFAULT_URI = "qemu:///system"
VIRSH_TIMEOUT = 120.0
AGENT_TIMEOUT = 30
LISTENER_SETTLE = 0.1
LISTENER_MAX = 6 * 3600  # a job without a deadline: the listener gives up after this long
JOB_CHECK = 2.0  # seconds between checks while the event listener waits
JOB_POLL = 0.2
LIVE_STATES = ("running", "paused")
OFFLINE_STATES = ("shut off",)


class LibvirtError(Exception):
    """A virsh call failed; the message carries virsh's own words."""


@dataclass
class Disk:
    """One disk of a domain as its XML declares it."""

    target: str  # vda
    path: str
    driver: str  # qcow2, raw
    size: int = 0  # virtual size in bytes

    @property
    def persistent_bitmaps(self) -> bool:
        return self.driver == "qcow2"


@dataclass(frozen=True)
class DomainName:
    uuid: str
    name: str


@dataclass
class Domain:
    uuid: str
    name: str
    state: str  # running, paused, shut off, ...
    managed_save: bool = False
    xml: str = ""
    disks: list[Disk] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


class Virsh:
    """virsh against one libvirt connection URI."""

    def __init__(self, uri: str = DEFAULT_URI, binary: str = "virsh", timeout: float = VIRSH_TIMEOUT) -> None:
        self.uri = uri
        self.binary = binary
        self.timeout = timeout

    def run(self, *args: str, timeout: float | None = None, check: bool = True, quiet: bool = True) -> CommandResult:
        result = run_command([self.binary] + (["-q"] if quiet else []) + ["-c", self.uri] + list(args),
                             env=base_env({"LC_ALL": "C"}), timeout=timeout or self.timeout)
        if check and not result.ok:
            raise LibvirtError("virsh %s: %s" % (args[0], _why(result)))
        return result

    def argv(self, *args: str) -> list[str]:
        """The command line of a call, for the watchdog to run when this process cannot."""
        return [self.binary, "-q", "-c", self.uri] + list(args)

    # -- domains ----------------------------------------------------------------------------

    def listing(self) -> list[DomainName]:
        """Every domain this hypervisor defines or runs, by UUID and name (one call, however many)."""
        names = []
        for line in self.run("list", "--all", "--uuid", "--name").stdout.splitlines():
            uuid, _sep, name = line.strip().partition(" ")
            if uuid:
                names.append(DomainName(uuid, name.strip()))
        return names

    def domains(self, wanted: Sequence[DomainName] | None = None) -> list[Domain]:
        """The domains named (default all), described with their disks; one undefined meanwhile is left out."""
        found = []
        for entry in self.listing() if wanted is None else wanted:
            try:
                found.append(self.domain(entry.uuid))
            except LibvirtError:
                continue  # undefined while we looked: not here any more
        return found

    def domain(self, uuid: str) -> Domain:
        xml = self.run("dumpxml", uuid).stdout
        info = virsh_fields(self.run("dominfo", uuid).stdout)
        domain = Domain(uuid=uuid, name=_xml_text(xml, "name"), state=info.get("State", ""),
                        managed_save=info.get("Managed save") == "yes", xml=xml)
        domain.disks = parse_disks(domain.xml)
        capacities = self._capacities(uuid) if domain.live else {}
        for disk in domain.disks:
            disk.size = capacities[disk.target] if disk.target in capacities else image_size(disk.path)
        return domain

    def _capacities(self, uuid: str) -> dict[str, int]:
        """Virtual size of every disk of a running domain, as QEMU sees it now (one call)."""
        sizes = {}
        for line in self.run("domblkinfo", uuid, "--all").stdout.splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                sizes[fields[0]] = int(fields[1])
        return sizes

    # -- checkpoints ------------------------------------------------------------------------

    def checkpoints(self, uuid: str) -> list[str]:
        return [line.strip() for line in self.run("checkpoint-list", uuid, "--name").stdout.splitlines()
                if line.strip()]

    def checkpoint_xml(self, uuid: str, name: str) -> str:
        return self.run("checkpoint-dumpxml", uuid, name).stdout

    def redefine_checkpoint(self, uuid: str, xml_path: str, validate: bool = True) -> None:
        """Teach libvirt a checkpoint from its XML; with validate, libvirt checks that the bitmaps exist."""
        self.run("checkpoint-create", uuid, xml_path, "--redefine", *(["--redefine-validate"] if validate else []))

    def delete_checkpoint(self, uuid: str, name: str, metadata_only: bool = False) -> None:
        args = ["checkpoint-delete", uuid, name] + (["--metadata"] if metadata_only else [])
        self.run(*args)

    # -- backup jobs -----------------------------------------------------------------------

    def backup_begin(self, uuid: str, backup_xml: str, checkpoint_xml: str) -> None:
        self.run("backup-begin", uuid, backup_xml, checkpoint_xml)

    def watch_job(self, uuid: str, timeout: float | None) -> subprocess.Popen:
        """A listener for the domain's job-completed event, started before the job so that the
        wait costs one process instead of a virsh call per poll (each takes CPU the copy needs).
        In the runner's process group and bounded, so that it never outlives a killed run for long."""
        bound = str(int(timeout or LISTENER_MAX) + 60)
        listener = subprocess.Popen(self.argv("event", "--domain", uuid, "--event", "job-completed", "--timeout", bound),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=base_env({"LC_ALL": "C"}))
        time.sleep(LISTENER_SETTLE)  # connected and registered before the job can end
        return listener

    def wait_job(self, uuid: str, timeout: float | None, listener: subprocess.Popen | None = None) -> dict[str, str]:
        """Wait for the domain's backup job to end (the listener's event, checked every few
        seconds in case it was missed); its completed statistics."""
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while True:
                if listener is not None and listener.poll() is None:
                    try:
                        listener.wait(timeout=JOB_CHECK)
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    time.sleep(JOB_POLL)  # no listener (or it failed): plain polling
                info = virsh_fields(self.run("domjobinfo", uuid).stdout)
                if info.get("Job type", "None") == "None":
                    break
                listener = listener if listener is not None and listener.poll() is None else None
                if deadline is not None and time.monotonic() > deadline:
                    self.run("domjobabort", uuid, check=False)
                    raise LibvirtError("backup job of %s did not end within %ds: aborted" % (uuid, timeout))
        finally:
            if listener is not None and listener.poll() is None:
                listener.kill()
                listener.wait()
        completed = virsh_fields(self.run("domjobinfo", uuid, "--completed").stdout)
        if completed.get("Job type") not in ("Completed", None):
            raise LibvirtError("backup job of %s ended %s: %s" % (
                uuid, completed.get("Job type", "").lower(), completed.get("Error message", "no message")))
        return completed

    # -- the guest agent -------------------------------------------------------------------

    def agent(self, uuid: str, command: str, arguments: dict[str, Any] | None = None,
              timeout: int = AGENT_TIMEOUT) -> Any:
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        out = self.run("qemu-agent-command", uuid, "--timeout", str(timeout), json.dumps(request),
                       timeout=timeout + 10).stdout
        return json.loads(out).get("return")

    def freeze(self, uuid: str) -> int:
        """Freeze the guest's filesystems; how many were frozen (virsh -q would not say: "Froze N filesystem(s)")."""
        out = self.run("domfsfreeze", uuid, quiet=False).stdout
        match = re.search(r"Froze (\d+) filesystem", out)
        return int(match.group(1)) if match else 0

    def thaw_argv(self, uuid: str) -> list[str]:
        return self.argv("domfsthaw", uuid)

    def thaw(self, uuid: str) -> None:
        self.run("domfsthaw", uuid)

    # -- restore ---------------------------------------------------------------------------

    def define(self, xml_path: str) -> None:
        self.run("define", xml_path)


def parse_disks(xml: str) -> list[Disk]:
    """The file-backed disks of a domain XML (cdroms and network disks are not backed up)."""
    root = ET.fromstring(xml)
    disks = []
    for disk in root.findall("./devices/disk"):
        source, target, driver = disk.find("source"), disk.find("target"), disk.find("driver")
        if disk.get("device", "disk") != "disk" or source is None or target is None:
            continue
        path = source.get("file") or source.get("dev")
        if not path:
            continue
        disks.append(Disk(target=target.get("dev", ""), path=path,
                          driver=(driver.get("type") if driver is not None else None) or "raw"))
    return disks


def image_size(path: str) -> int:
    """The virtual size of an image (-U: a shut-off domain's image may still be open elsewhere)."""
    result = run_command(["qemu-img", "info", "-U", "--output=json", path], timeout=60)
    if not result.ok:
        raise LibvirtError("qemu-img info %s: %s" % (path, _why(result)))
    return int(json.loads(result.stdout)["virtual-size"])


def _xml_text(xml: str, tag: str) -> str:
    node = ET.fromstring(xml).find(tag)
    return node.text or "" if node is not None else ""


def virsh_fields(text: str) -> dict[str, str]:
    """The 'Key: value' lines virsh prints (dominfo, domjobinfo)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _why(result: CommandResult) -> str:
    if result.timed_out:
        return "timed out"
    text = (result.stderr or result.stdout).strip()
    return text.replace("error: ", "").replace("\n", " ")[:400] or "exit code %d" % result.returncode
