"""A real separate host with real systemd: a cached Debian image booted by systemd-nspawn in a
network namespace of its own, reached over a veth pair with a private /30 whose two ends are
both ours (nothing is routed anywhere else).

The session's root filesystem is an overlay on the cached image (a copy where overlayfs is
missing), mounted inside a private mount namespace of the nspawn process so that no mount can
outlive the test session.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shlex
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .sshd import FleetError, SshClient, SshReachable, _tail, terminate, wait_for_ssh

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "scripts" / "build-nspawn-image"
NSPAWN = Path("/usr/bin/systemd-nspawn")
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# /30 links are carved from this block; each link's two addresses are the veth's two ends.
LINK_BLOCK = ipaddress.IPv4Network("10.213.0.0/24")
NET_LOCK = Path("/run/restorable-test-net.lock")


class KernelFeatureMissing(FleetError):
    """The kernel lacks something the systemd host needs (the fixture skips on this only)."""


def build_image(timeout: float = 900.0) -> tuple[Path, float]:
    """The cached image's rootfs (built on first use, ~50 s), and how long getting it took."""
    if not os.access(BUILD_SCRIPT, os.X_OK):
        raise FleetError(f"{BUILD_SCRIPT} missing or not executable")
    start = time.monotonic()
    result = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise FleetError(f"{BUILD_SCRIPT.name} failed:\n{result.stderr[-3000:]}")
    rootfs = Path(result.stdout.strip().splitlines()[-1])
    return rootfs, time.monotonic() - start


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise FleetError(f"ip {shlex.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


@dataclass
class VethLink:
    """A network namespace plus a veth pair: ``host_address`` in the root namespace,
    ``address`` inside ``netns``."""

    netns: str
    host_if: str
    peer_if: str
    network: ipaddress.IPv4Network
    created: list[str] = field(default_factory=list)

    @property
    def host_address(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def address(self) -> str:
        return str(self.network.network_address + 2)

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @classmethod
    def create(cls, tag: str) -> VethLink:
        if not Path("/proc/self/ns/net").exists():
            raise KernelFeatureMissing("kernel without network namespaces (/proc/self/ns/net)")
        NET_LOCK.parent.mkdir(parents=True, exist_ok=True)
        # The lock makes choosing a free /30 and taking it atomic among concurrent sessions.
        with open(NET_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            link = cls(netns=f"rbk-{tag}", host_if=f"rbk{tag}h", peer_if=f"rbk{tag}c",
                       network=_free_link_network())
            try:
                link._setup()
            except BaseException:
                link.delete()
                raise
        return link

    def _setup(self) -> None:
        result = _ip("netns", "add", self.netns, check=False)
        if result.returncode != 0:
            if "Operation not supported" in result.stderr or "Invalid argument" in result.stderr:
                raise KernelFeatureMissing(f"`ip netns add` failed: {result.stderr.strip()}")
            raise FleetError(f"ip netns add {self.netns}: {result.stderr.strip()}")
        self.created.append("netns")
        result = _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if,
                     check=False)
        if result.returncode != 0:
            if "not supported" in result.stderr.lower() or "Unknown device type" in result.stderr:
                raise KernelFeatureMissing(f"no veth support: {result.stderr.strip()}")
            raise FleetError(f"ip link add veth: {result.stderr.strip()}")
        self.created.append("veth")
        # No IPv6 on either end: not even link-local chatter, only the /30 below.
        _sysctl(f"net/ipv6/conf/{self.host_if}/disable_ipv6", "1")
        _ip("link", "set", self.peer_if, "netns", self.netns)
        prefix = self.network.prefixlen
        _ip("addr", "add", f"{self.host_address}/{prefix}", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("netns", "exec", self.netns, "sh", "-c",
            f"echo 1 > /proc/sys/net/ipv6/conf/{self.peer_if}/disable_ipv6 2>/dev/null; true")
        _ip("-n", self.netns, "addr", "add", f"{self.address}/{prefix}", "dev", self.peer_if)
        _ip("-n", self.netns, "link", "set", self.peer_if, "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")

    def delete(self) -> None:
        # Deleting the namespace destroys the peer end and with it the whole pair.
        if "veth" in self.created:
            _ip("link", "del", self.host_if, check=False)
        if "netns" in self.created:
            _ip("netns", "del", self.netns, check=False)
        self.created.clear()


def _sysctl(key: str, value: str) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/sys", key).write_text(value)


def _free_link_network() -> ipaddress.IPv4Network:
    """The first /30 of LINK_BLOCK that no interface address of the root namespace is in
    (a stale one from a killed session keeps its /30: we go around it)."""
    used = _ip("-4", "-o", "addr", "show").stdout
    taken = {ipaddress.IPv4Interface(word).network for line in used.splitlines()
             for word in line.split() if "/" in word and word[0].isdigit()}
    for net in LINK_BLOCK.subnets(new_prefix=30):
        if not any(net.overlaps(t) for t in taken):
            return net
    raise FleetError(f"no free /30 left in {LINK_BLOCK} (stale test namespaces? `ip netns`)")


@dataclass(eq=False)
class SystemdHost(SshReachable):
    """A booted container with systemd as PID 1, sshd on port 22 of ``address``."""

    name: str
    base_dir: Path
    image: Path
    client: SshClient
    link: VethLink | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    mode: str = ""  # "overlay" or "copy"
    boot_seconds: float = 0.0
    _image_lock: IO[str] | None = field(default=None, repr=False)

    port: int = 22

    @property
    def address(self) -> str:
        assert self.link is not None, "not booted"
        return self.link.address

    @property
    def root(self) -> Path:
        """The container's root filesystem as seen from outside (the overlay's upper layer
        holds only what changed; in copy mode it is the whole tree)."""
        return self.base_dir / ("upper" if self.mode == "overlay" else "rootfs")

    @property
    def fs(self) -> Path:
        """The container's whole root filesystem, readable and writable from outside while it
        runs (through the nspawn process's mount namespace, where the overlay is mounted)."""
        if self.mode != "overlay":
            return self.root
        assert self.pid is not None, "not running"
        return Path(f"/proc/{self.pid}/root") / str(self.base_dir / "merged").lstrip("/")

    @property
    def console_log(self) -> Path:
        # Beside base_dir, which stop() removes: the log outlives the container for debugging.
        return self.base_dir.with_name(self.base_dir.name + "-console.log")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def boot(self, tag: str, timeout: float | None = None) -> None:
        timeout = BOOT_TIMEOUT if timeout is None else timeout
        if not os.access(NSPAWN, os.X_OK):
            raise FleetError(f"{NSPAWN} missing: apt-get install -y systemd-container")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # A shared lock tells the image builder this version is in use.
        self._image_lock = open(f"{self.image.parent}.lock", "w")  # noqa: SIM115
        fcntl.flock(self._image_lock, fcntl.LOCK_SH)
        self._prepare_root()
        self.link = VethLink.create(tag)
        start = time.monotonic()
        nspawn = [
            str(NSPAWN), "--boot", "--register=no", "--keep-unit", "--quiet",
            # Unique per session (nspawn keys state under /run on it); the hostname is the name.
            f"--machine={self.name}-{tag}", f"--hostname={self.name}",
            f"--network-namespace-path={self.link.netns_path}",
            "--link-journal=no", "--resolv-conf=off", "--timezone=off", "--console=read-only",
        ]
        if self.mode == "overlay":
            merged = self.base_dir / "merged"
            opts = f"lowerdir={self.image},upperdir={self.base_dir / 'upper'},workdir={self.base_dir / 'work'}"
            # A private mount namespace: the overlay disappears with the process, whatever
            # happens to this session.
            script = (f"mount -t overlay overlay -o {shlex.quote(opts)} {shlex.quote(str(merged))}"
                      f' && exec "$@"')
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                    "nspawn", *nspawn, f"--directory={merged}"]
        else:
            argv = [*nspawn, f"--directory={self.root}"]
        with open(self.console_log, "ab") as log:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_ssh(self.address, self.port, timeout, alive=lambda: self.pid is not None)
            deadline = time.monotonic() + timeout
            while not self.client.can_login(self.address, self.port):
                if time.monotonic() > deadline:
                    raise FleetError(f"{self.name}: sshd answers but root cannot log in")
                time.sleep(0.1)
        except FleetError as exc:
            raise FleetError(f"{exc}\nconsole ({self.console_log}):\n"
                             f"{_tail(self.console_log, 30)}") from None
        self.boot_seconds = time.monotonic() - start

    def _prepare_root(self) -> None:
        if _has_overlayfs():
            self.mode = "overlay"
            for d in ("upper", "work", "merged"):
                (self.base_dir / d).mkdir(exist_ok=True)
        else:
            # Without overlayfs: a full copy (reflinks where the filesystem has them).
            self.mode = "copy"
            subprocess.run(["cp", "-a", "--reflink=auto", str(self.image), str(self.root)],
                           check=True, timeout=300)
        root = self.root
        # Written before boot, into the upper layer: the session key, a fresh identity.
        for d, mode in (("etc", 0o755), ("root", 0o700), ("root/.ssh", 0o700)):
            (root / d).mkdir(mode=mode, exist_ok=True)
            os.chmod(root / d, mode)
        keys = root / "root/.ssh/authorized_keys"
        keys.write_text(self.client.key.public.read_text())
        keys.chmod(0o600)
        (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (root / "etc/hostname").write_text(self.name + "\n")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Power off (nspawn turns SIGTERM into a clean shutdown), SIGKILL after ``timeout``,
        then remove the network and the session's root filesystem."""
        try:
            if self.process is not None:
                # Only nspawn itself: it owns the container's processes and reaps them.
                terminate(self.process, timeout=timeout, tree=False)
                self.process = None
        finally:
            if self.link is not None:
                self.link.delete()
                self.link = None
            if self._image_lock is not None:
                self._image_lock.close()
                self._image_lock = None
            shutil.rmtree(self.base_dir, ignore_errors=True)


def _has_overlayfs() -> bool:
    with contextlib.suppress(OSError):
        return any(line.split()[-1] == "overlay" for line in open("/proc/filesystems"))  # noqa: SIM115
    return False


def start_systemd_host(name: str, base_dir: Path, client: SshClient, tag: str) -> SystemdHost:
    """Build or reuse the image, boot a fresh copy, wait for SSH; stops everything on failure."""
    image = build_image()[0]
    host = SystemdHost(name=name, base_dir=base_dir, image=image, client=client)
    try:
        host.boot(tag)
    except BaseException:
        host.stop()
        raise
    return host
