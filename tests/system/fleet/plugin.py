"""pytest fixtures: a real fleet of hosts that Ansible reaches over SSH.

- ``ssh_fleet``: 3 OpenSSH daemons on 127.0.0.2-4 (shared filesystem, own data_dir each).
- ``ssh_fleet_factory``: ``ssh_fleet_factory(count, prefix)`` for more fleets in the session.
- ``systemd_host``: a Debian bookworm container booted by systemd-nspawn (real systemd, own
  filesystem and network namespace), reachable over a veth pair.
- ``fleet_ssh_client``: the session key and SSH options all of them accept.
- ``site_fleet``: two sites of hosts in network namespaces on one bridge (netns.py): ``hq``
  (3 hosts) and ``branch`` (2 hosts) whose links toward the others are shaped to
  ``BRANCH_RATE`` with tc, as a branch office behind a slow line.

All are session-scoped and stopped by PID at session end, also when a test or setup fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .netns import SiteFleet, session_tag, start_site_fleet
from .nspawn import KernelFeatureMissing, SystemdHost, start_systemd_host
from .sshd import AddressAllocator, FleetError, SshClient, SshFleet, SshKey, start_fleet

# Seconds each part took, shown in the terminal summary: "sshd fleet start", "image", "boot".
TIMINGS: dict[str, float] = {}
# The branch office's line toward the other site (tc rate syntax): 3 MB/s.
BRANCH_RATE = "24mbit"


@pytest.fixture(scope="session")
def fleet_session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Everything of this session's hosts: keys, daemon configs and logs, data dirs."""
    return tmp_path_factory.mktemp("fleet")


@pytest.fixture(scope="session")
def fleet_ssh_client(fleet_session_dir: Path) -> Iterator[SshClient]:
    """The session's root login key (ed25519, made here) and the ControlPath directory."""
    key = SshKey.generate(fleet_session_dir / "id_ed25519", "restorable test session")
    # pytest's temp paths are too long for ssh's control sockets (~104 bytes with %C).
    control_dir = Path(tempfile.mkdtemp(prefix="rbk-cp-", dir="/tmp"))
    yield SshClient(key=key, control_dir=control_dir)
    shutil.rmtree(control_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def ssh_fleet_factory(fleet_session_dir: Path,
                      fleet_ssh_client: SshClient) -> Iterator[Callable[..., SshFleet]]:
    """``make(count=3, prefix="host") -> SshFleet``; each call takes the next free loopback
    addresses, so fleets of one session never collide. All are stopped at session end."""
    addresses = AddressAllocator()
    fleets: list[SshFleet] = []
    prefixes: set[str] = set()

    def make(count: int = 3, prefix: str = "host") -> SshFleet:
        if prefix in prefixes:
            raise ValueError(f"a fleet with prefix {prefix!r} exists already in this session")
        prefixes.add(prefix)
        start = time.monotonic()
        fleet = start_fleet(count, base_dir=fleet_session_dir / "sshd",
                            data_root=fleet_session_dir / "hosts", client=fleet_ssh_client,
                            addresses=addresses, prefix=prefix)
        TIMINGS.setdefault(f"sshd fleet start ({count} hosts)", time.monotonic() - start)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.stop_all()


@pytest.fixture(scope="session")
def ssh_fleet(ssh_fleet_factory: Callable[..., SshFleet]) -> SshFleet:
    """Three hosts, host1..host3 on 127.0.0.2..4 (port 22 unless taken there). A test that
    stops one should use ``with ssh_fleet.down("host2"):`` so that it comes back."""
    return ssh_fleet_factory(3)


@pytest.fixture(scope="session")
def systemd_host(fleet_session_dir: Path, fleet_ssh_client: SshClient) -> Iterator[SystemdHost]:
    """A booted Debian bookworm container: systemd as PID 1, sshd, python3, restic, cron."""
    if os.geteuid() != 0:
        pytest.skip("systemd_host needs root (network namespaces, nspawn)")
    start = time.monotonic()
    try:
        host = start_systemd_host("systemd1", fleet_session_dir / "nspawn" / "systemd1",
                                  fleet_ssh_client, tag=f"{os.getpid() % 100000}a")
    except KernelFeatureMissing as exc:
        pytest.skip(f"systemd_host: {exc}")
    TIMINGS["systemd host: image + boot"] = time.monotonic() - start
    TIMINGS["systemd host: boot until SSH login"] = host.boot_seconds
    yield host
    host.stop()


@pytest.fixture(scope="session")
def site_fleet(fleet_session_dir: Path, fleet_ssh_client: SshClient) -> Iterator[SiteFleet]:
    """Sites hq (hq1..hq3) and branch (branch1, branch2), a network namespace and sshd per host,
    the branch's links shaped to BRANCH_RATE."""
    if os.geteuid() != 0:
        pytest.skip("site_fleet needs root (network namespaces, tc)")
    start = time.monotonic()
    try:
        fleet = start_site_fleet({"branch": 2, "hq": 3}, fleet_session_dir / "sites", fleet_ssh_client, session_tag())
    except KernelFeatureMissing as exc:
        pytest.skip(f"site_fleet: {exc}")
    try:
        fleet.shape("branch", BRANCH_RATE)
    except BaseException:
        fleet.stop()
        raise
    TIMINGS["site fleet start (5 hosts in network namespaces)"] = time.monotonic() - start
    yield fleet
    fleet.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("fleet timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what}: {seconds:.2f} s")


__all__ = ["FleetError", "fleet_session_dir", "fleet_ssh_client", "ssh_fleet",
           "site_fleet", "ssh_fleet_factory", "systemd_host"]
