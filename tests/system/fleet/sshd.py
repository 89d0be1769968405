"""A fleet of real OpenSSH daemons, one per loopback address (127.0.0.2, 127.0.0.3, ...).

Every host shares this machine's filesystem and users, so each gets its own ``data_dir`` for
whatever a test wants to keep apart (backup sources, repositories, state files). Daemons are
started here and stopped by their PID only, with the per-connection processes they forked.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SSHD = Path("/usr/sbin/sshd")
SSH = Path("/usr/bin/ssh")
SSH_KEYGEN = Path("/usr/bin/ssh-keygen")
PYTHON = "/usr/bin/python3"  # Debian's; interpreter discovery would pick a pyenv shim here
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class FleetError(RuntimeError):
    """A host of the fleet could not be set up, started or stopped."""


class PortTaken(FleetError):
    """Another process listens on the host's address and port."""


def require_openssh() -> None:
    """Fail with the fix in the message when Debian's OpenSSH is not installed."""
    missing = [str(p) for p in (SSHD, SSH, SSH_KEYGEN) if not os.access(p, os.X_OK)]
    if missing:
        raise FleetError(
            f"{', '.join(missing)} missing: run scripts/bootstrap "
            "or `apt-get install -y openssh-server openssh-client`"
        )


@dataclass(frozen=True)
class SshKey:
    """An ed25519 key pair without passphrase."""

    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    @classmethod
    def generate(cls, path: Path, comment: str) -> SshKey:
        path.parent.mkdir(parents=True, exist_ok=True)
        _run([str(SSH_KEYGEN), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
        return cls(path)


@dataclass(frozen=True)
class SshClient:
    """How every fixture host is reached: the session key, no host key checks, shared masters."""

    key: SshKey
    control_dir: Path  # short: unix socket paths are limited to ~104 bytes

    def common_args(self) -> str:
        """The value for ``ansible_ssh_common_args``."""
        return (
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o ControlMaster=auto -o ControlPersist=60s "
            f"-o ControlPath={self.control_dir}/%C"
        )

    def command(self, address: str, port: int, cmd: str | Sequence[str], *,
                user: str = "root", timeout: float = 5.0) -> list[str]:
        """An ``ssh`` argv that runs ``cmd`` (a shell string or an argv) on the host."""
        remote = cmd if isinstance(cmd, str) else shlex.join(cmd)
        return [
            str(SSH), "-F", "/dev/null",  # root's own ssh config must not change the outcome
            "-i", str(self.key.private), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={max(1, int(timeout))}",
            "-p", str(port), f"{user}@{address}", remote,
        ]

    def run(self, address: str, port: int, cmd: str | Sequence[str], *, check: bool = True,
            timeout: float = 120.0, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` on the host over a fresh SSH connection (no ControlMaster: a stopped
        host must look stopped)."""
        argv = self.command(address, port, cmd, timeout=min(timeout, 10.0))
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                input=input, check=False)
        if check and result.returncode != 0:
            raise FleetError(
                f"ssh {address}:{port} {cmd!r} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def can_login(self, address: str, port: int, timeout: float = 5.0) -> bool:
        try:
            return self.run(address, port, "true", check=False, timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def ssh_banner(address: str, port: int, timeout: float = 1.0) -> bool:
    """True when something speaking SSH accepts connections there."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(address: str, port: int, timeout: float, alive: Any = None) -> None:
    """Poll for the SSH banner; ``alive()`` returning False aborts early (the daemon died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ssh_banner(address, port, timeout=0.5):
            return
        if alive is not None and not alive():
            raise FleetError(f"the SSH server for {address}:{port} exited during startup")
        time.sleep(0.02)
    raise FleetError(f"no SSH banner from {address}:{port} within {timeout:g} s")


def port_is_free(address: str, port: int) -> bool:
    # SO_REUSEADDR like sshd's own: connections in TIME_WAIT from a previous daemon do not
    # count, a listener (also one on 0.0.0.0) does.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            sock.listen()
        except OSError:
            return False
    return True


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """PIDs of all live descendants of ``pid`` (sshd forks one per connection, and those call
    setsid, so a process group would miss them)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: parse after the last ')'.
        state, ppid = stat[stat.rindex(b")") + 2:].split()[:2]
        if state == b"Z":  # exited, only waiting for its parent to reap it
            continue
        children.setdefault(int(ppid), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def terminate(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT,
              tree: bool = True) -> None:
    """Stop a process we started and reap it: SIGTERM, then SIGKILL after ``timeout``.

    With ``tree``, its descendants go first, while it still reaps them (see ``_subreaper``),
    so nothing is left to linger as an orphan or zombie."""
    if proc.poll() is not None:
        return
    if tree:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal_all(descendants(proc.pid), sig)
            deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 1.0)
            while descendants(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if not descendants(proc.pid):
                break
    _signal_all([proc.pid], signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_all([proc.pid], signal.SIGKILL)
        proc.wait(timeout)


def _signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36


def _subreaper() -> None:
    """Popen ``preexec_fn``: orphans of the daemon's sessions (double-forked jobs, Ansible async
    tasks) become its children instead of PID 1's, so ``terminate`` finds and stops them too.
    The flag survives exec."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60, **kwargs)
    if result.returncode != 0:
        raise FleetError(f"{shlex.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


SSHD_CONFIG = """\
# Written by the test fleet: one daemon of a simulated host, nothing shared with the system sshd.
ListenAddress {address}:{port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# No PAM: no login sessions or limits from the machine's PAM stack; StrictModes off because the
# key file lives in a test directory whose parents are not root-only.
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
X11Forwarding no
# Ansible's forks and multiplexed sessions open many channels and connections at once.
MaxStartups 200
MaxSessions 100
# restic's sftp: backend and Ansible's sftp transfer.
Subsystem sftp internal-sftp
# Lets code running on a host find its own directory on the shared filesystem.
SetEnv FLEET_HOST={name} FLEET_DATA_DIR={data_dir}
"""


class SshReachable:
    """What every fleet host offers once its sshd answers: commands as root and an inventory
    entry. Hosts provide address, port and client."""

    address: str
    port: int
    client: SshClient

    def run(self, cmd: str | Sequence[str], *, check: bool = True,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run a command on the host as root over SSH."""
        return self.client.run(self.address, self.port, cmd, check=check, timeout=timeout)

    def reachable(self, timeout: float = 5.0) -> bool:
        return self.client.can_login(self.address, self.port, timeout)

    def inventory_vars(self) -> dict[str, Any]:
        return {
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.client.key.private),
            "ansible_python_interpreter": PYTHON,
            "ansible_ssh_common_args": self.client.common_args(),
        }


@dataclass(eq=False)
class SshdHost(SshReachable):
    """One simulated host: an sshd on its own loopback address with its own key and data_dir."""

    name: str
    address: str
    port: int
    base_dir: Path  # config, host key, pid file, log
    data_dir: Path  # the host's "own disk" on the shared filesystem
    client: SshClient
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    netns: str | None = None  # the daemon runs in this network namespace (netns.py); None: this one

    @property
    def config(self) -> Path:
        return self.base_dir / "sshd_config"

    @property
    def log(self) -> Path:
        return self.base_dir / "sshd.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def prepare(self) -> None:
        """Host key, authorized key and config; idempotent."""
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # /run may be fresh after a reboot
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        host_key = self.base_dir / "ssh_host_ed25519_key"
        if not host_key.exists():
            SshKey.generate(host_key, f"host key of {self.name}")
        authorized = self.base_dir / "authorized_keys"
        authorized.write_text(self.client.key.public.read_text())
        authorized.chmod(0o600)
        self.config.write_text(SSHD_CONFIG.format(
            name=self.name, address=self.address, port=self.port, host_key=host_key,
            pid_file=self.base_dir / "sshd.pid", authorized_keys=authorized,
            data_dir=self.data_dir,
        ))
        _run([str(SSHD), "-t", "-f", str(self.config)])

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the daemon and wait until it listens; a no-op when it already runs. Raises
        ``PortTaken`` when another process holds the address and port."""
        if self.running:
            return
        self.log.touch()
        offset = self.log.stat().st_size
        with open(self.log, "ab") as log:
            # -D: stay in the foreground so this Popen's PID is the daemon's; -E appends the
            # daemon's log to our own file.
            # `ip netns exec` execs sshd in place: the PID stays the daemon's.
            enter = ["ip", "netns", "exec", self.netns] if self.netns else []
            self.process = subprocess.Popen(
                enter + [str(SSHD), "-D", "-f", str(self.config), "-E", str(self.log)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=_subreaper,  # noqa: PLW1509  (async-signal-safe: one syscall)
            )
        # A banner alone could come from another session's daemon on the same address and
        # port: wait for our daemon's own "Server listening" line first.
        listening = f"Server listening on {self.address} port {self.port}."
        deadline = time.monotonic() + timeout
        while True:
            new = _read_from(self.log, offset)
            if listening in new:
                break
            if not self.running or time.monotonic() > deadline:
                why = "timed out" if self.running else "exited"
                self.stop()
                error = PortTaken if "Bind to port" in new else FleetError
                raise error(f"sshd of {self.name} on {self.address}:{self.port} {why} during "
                            f"startup; its log:\n{new[-2000:]}")
            time.sleep(0.01)
        try:
            wait_for_ssh(self.address, self.port, max(1.0, deadline - time.monotonic()),
                         alive=lambda: self.running)
        except FleetError as exc:
            self.stop()
            raise FleetError(f"{exc}; last lines of {self.log}:\n{_tail(self.log)}") from None

    def stop(self) -> None:
        """Stop the daemon and the sessions it serves: the host becomes unreachable."""
        if self.process is not None:
            terminate(self.process)
            self.process = None

    def inventory_vars(self) -> dict[str, Any]:
        return dict(super().inventory_vars(), fleet_data_dir=str(self.data_dir))


def _read_from(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class SshFleet:
    """Hosts started together; index by position or name, iterate, stop/start one."""

    def __init__(self, hosts: Sequence[SshdHost]) -> None:
        self.hosts: list[SshdHost] = list(hosts)

    def __iter__(self) -> Iterator[SshdHost]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, key: int | str) -> SshdHost:
        if isinstance(key, int):
            return self.hosts[key]
        for host in self.hosts:
            if host.name == key:
                return host
        raise KeyError(key)

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def stop(self, name: str | SshdHost) -> SshdHost:
        host = name if isinstance(name, SshdHost) else self[name]
        host.stop()
        return host

    def start(self, name: str | SshdHost) -> SshdHost:
        host = name if isinstance(name, SshdHost) else self[name]
        host.start()
        return host

    @contextlib.contextmanager
    def down(self, *names: str) -> Iterator[list[SshdHost]]:
        """Hosts unreachable inside the block, back up after it (even when the block fails),
        so a session-scoped fleet is whole again for the next test."""
        hosts = [self.stop(n) for n in names]
        try:
            yield hosts
        finally:
            for host in hosts:
                host.start()

    def ensure_up(self) -> None:
        for host in self.hosts:
            host.start()

    def stop_all(self) -> None:
        for host in self.hosts:
            host.stop()

    def write_inventory(self, path: Path, group: str = "fleet",
                        extra_vars: dict[str, Any] | None = None) -> Path:
        from .inventory import write_inventory  # noqa: PLC0415  (avoid an import cycle)

        return write_inventory(path, {group: self.hosts}, extra_vars=extra_vars)


class AddressAllocator:
    """Hands out 127.0.0.2, 127.0.0.3, ... so fleets made in one session never share an address."""

    def __init__(self, first: str = "127.0.0.2") -> None:
        self._next = ipaddress.IPv4Address(first)

    def take(self) -> str:
        address = self._next
        if address not in ipaddress.IPv4Network("127.0.0.0/8") or address.packed[3] in (0, 255):
            address += 1
        if address not in ipaddress.IPv4Network("127.0.0.0/8"):
            raise FleetError("out of loopback addresses")
        self._next = address + 1
        return str(address)


def start_fleet(count: int, base_dir: Path, data_root: Path, client: SshClient,
                addresses: AddressAllocator, prefix: str = "host",
                preferred_port: int = 22) -> SshFleet:
    """Create and start ``count`` hosts named ``<prefix>1``..; on failure stop what started."""
    require_openssh()
    hosts: list[SshdHost] = []
    try:
        for i in range(1, count + 1):
            name = f"{prefix}{i}"
            address = addresses.take()
            port = preferred_port if port_is_free(address, preferred_port) else free_port(address)
            host = SshdHost(name=name, address=address, port=port, base_dir=base_dir / name,
                            data_dir=data_root / name, client=client)
            host.prepare()
            hosts.append(host)
        # Start all, then wait: the daemons come up in parallel.
        for host in hosts:
            _start_with_port_retry(host)
        # One real login per host proves key, config and shell; in parallel (~0.3 s each).
        checks = [subprocess.Popen(client.command(h.address, h.port, "true", timeout=10),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL) for h in hosts]
        for host, check in zip(hosts, checks):
            if check.wait(timeout=30) != 0:
                raise FleetError(
                    f"{host.name} ({host.address}:{host.port}) answers but root cannot log in "
                    f"with the session key; last lines of {host.log}:\n{_tail(host.log)}"
                )
    except BaseException:
        for host in hosts:
            host.stop()
        raise
    return SshFleet(hosts)


def _start_with_port_retry(host: SshdHost, attempts: int = 3) -> None:
    # Someone else may take the port between our check and sshd's bind (other test sessions
    # share this machine): pick another free port and retry.
    for attempt in range(attempts):
        try:
            host.start()
            return
        except PortTaken:
            if attempt == attempts - 1:
                raise
            host.port = free_port(host.address)
            host.prepare()
