"""A private, privileged libvirtd: its own mount namespace in which /run/libvirt, /var/lib/libvirt,
/etc/libvirt, /var/cache/libvirt and /var/log/libvirt are bind mounts of directories below the
instance's root, so that several instances run side by side without touching the machine's own
libvirt. Clients in the main namespace reach it at ``<root>/run/libvirt-sock`` (``uri``).

QEMU runs as root without cgroups, security driver or private /dev: no cgroup names to collide
between instances, and images need no relabelling.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

STOCK_CONFIG = Path("/etc/libvirt")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
# Directory below the root -> path libvirt uses inside the namespace.
MOUNTS = {
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "etc": "/etc/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
"""
LIBVIRTD_CONF = """\
unix_sock_group = "root"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


class LibvirtError(RuntimeError):
    """A private libvirtd did not start or a virsh command failed."""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _runs(pid: int, program: str) -> bool:
    """Whether ``pid`` is still that program (a PID from a pid file may have been reused)."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith(program) and _alive(pid)
    except OSError:
        return False


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; returns when the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(pid):
            return
    raise LibvirtError(f"process {pid} survived SIGKILL")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LibvirtDaemon:
    """One private libvirtd (plus its virtlogd) below ``root``; ``start()``, ``uri``, ``stop()``."""

    def __init__(self, name: str, root: Path, capabilities_cache: Path | None = None) -> None:
        self.name = name
        self.root = root
        # QEMU's capabilities, probed once (~4 s) and kept across sessions; libvirt itself
        # re-probes when libvirtd, qemu or the kernel changed.
        self.capabilities_cache = capabilities_cache
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds = 0.0

    @property
    def socket(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def log(self) -> Path:
        """libvirtd's own log (the daemons' stdout and stderr go to ``<root>/daemon.log``)."""
        return self.root / "log" / "libvirtd.log"

    def console_log(self, domain: str) -> Path:
        """Where a domain of this instance should write its serial console."""
        return self.root / "console" / f"{domain}.log"

    def start(self, timeout: float = START_TIMEOUT) -> float:
        """Start virtlogd and libvirtd in a new mount namespace; the seconds until libvirtd answers
        and knows QEMU's capabilities."""
        if len(str(self.socket)) > 100:
            raise LibvirtError(f"{self.socket}: too long for a unix socket path")
        self._prepare_root()
        started = time.monotonic()
        with open(self.root / "daemon.log", "ab") as log:
            # unshare execs the shell, which execs libvirtd: this Popen's PID is libvirtd's.
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", self._namespace_script()],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(started + timeout)
        self.virsh("domcapabilities", "--virttype", "qemu", "--arch", "x86_64")  # probes, or loads the cache
        self._save_capabilities()  # a later instance of this session starts warm
        self.start_seconds = time.monotonic() - started
        return self.start_seconds

    def _prepare_root(self) -> None:
        for directory in MOUNTS:
            if directory != "etc":
                (self.root / directory).mkdir(parents=True, exist_ok=True)
        (self.root / "console").mkdir(exist_ok=True)
        etc = self.root / "etc"
        shutil.rmtree(etc, ignore_errors=True)  # a fresh copy each start (the demo's root outlives it)
        shutil.copytree(STOCK_CONFIG, etc, symlinks=True)
        # The machine's own domains, networks (an autostarted bridge!) and pools stay out.
        for own in ("qemu", "storage"):
            shutil.rmtree(etc / own, ignore_errors=True)
        (etc / "qemu.conf").write_text(QEMU_CONF)
        (etc / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        if self.capabilities_cache is not None and self.capabilities_cache.is_dir():
            shutil.copytree(self.capabilities_cache, self._capabilities, dirs_exist_ok=True)

    @property
    def _capabilities(self) -> Path:
        return self.root / "cache" / "qemu" / "capabilities"

    def _save_capabilities(self) -> None:
        if self.capabilities_cache is None:
            return
        self.capabilities_cache.mkdir(parents=True, exist_ok=True)
        for probed in self._capabilities.glob("*.xml"):
            partial = self.capabilities_cache / f".{probed.name}.{os.getpid()}"
            shutil.copy2(probed, partial)
            partial.replace(self.capabilities_cache / probed.name)  # atomic: sessions share the cache

    def _namespace_script(self) -> str:
        lines = ["set -eu"]
        for directory, target in MOUNTS.items():
            # mkdir: /run/libvirt does not exist until some libvirtd made it.
            lines.append(f"mkdir -p {target} && mount --bind {shlex.quote(str(self.root / directory))} {target}")
        # Pid files inside /run/libvirt: the defaults (/run/*.pid) would be shared by all instances.
        lines.append("virtlogd -d -p /run/libvirt/virtlogd.pid")
        lines.append("exec libvirtd --pid-file /run/libvirt/libvirtd.pid")
        return "\n".join(lines)

    def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise LibvirtError(f"{self.name}: libvirtd exited with {self.process.returncode}:\n"
                                   f"{log_tail(self.root / 'daemon.log')}\n{log_tail(self.log)}")
            if self.socket.exists() and self.run_virsh("uri", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise LibvirtError(f"{self.name}: libvirtd did not answer in time:\n{log_tail(self.log)}")
            time.sleep(0.05)

    def run_virsh(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["virsh", "-q", "-c", self.uri, *args], capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise LibvirtError(f"{self.name}: virsh {shlex.join(args)} exited {result.returncode}: "
                               f"{result.stderr.strip()}")
        return result

    def virsh(self, *args: str, timeout: float = 120.0) -> str:
        """virsh against this instance; its stdout, or LibvirtError."""
        return self.run_virsh(*args, timeout=timeout).stdout

    def running_domains(self) -> list[str]:
        return self.virsh("list", "--name").split()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Destroy the running domains, stop libvirtd and virtlogd, kill any qemu left: by PID only."""
        # <domain>.pid files, and driver.pid (libvirtd's own): _runs() keeps to qemu processes.
        qemu_pids = [pid for pid in map(_read_pid, sorted((self.root / "run" / "qemu").glob("*.pid")))
                     if pid is not None]
        virtlogd = _read_pid(self.root / "run" / "virtlogd.pid")
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(LibvirtError, subprocess.TimeoutExpired):
                for domain in self.running_domains():
                    self.run_virsh("destroy", domain, check=False, timeout=timeout)
            stop_pid(self.process.pid, timeout)
            self.process.wait(timeout)
        elif self.process is None:
            # Started by another process (the demo's start and stop are two commands): by its pid file.
            pid = _read_pid(self.root / "run" / "libvirtd.pid")
            if pid is not None and _runs(pid, "libvirtd"):
                with contextlib.suppress(LibvirtError, subprocess.TimeoutExpired):
                    for domain in self.running_domains():
                        self.run_virsh("destroy", domain, check=False, timeout=timeout)
                stop_pid(pid, timeout)
        for pid, program in [*((pid, "qemu-system") for pid in qemu_pids), (virtlogd, "virtlogd")]:
            if pid is not None and _runs(pid, program):
                stop_pid(pid, timeout)
