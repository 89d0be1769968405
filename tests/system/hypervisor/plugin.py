"""pytest fixtures: real hypervisors for the host tier.

- ``guest_image``: the minimal Linux guest (kernel + initramfs with qemu-guest-agent), built
  once by scripts/build-guest-image and cached across sessions.
- ``hypervisors``: two private libvirtd instances, ``hv01`` and ``hv02``, and a ``storage``
  directory both use for disk images, as hosts sharing a SAN would.

Session-scoped; the daemons (and any guest they run) are stopped by PID at session end, also
when a test or setup fails. Both skip when not root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .guest import GuestImage, guest_cache_dir
from .libvirtd import LibvirtDaemon

# Seconds each part took, shown in the terminal summary.
TIMINGS: dict[str, float] = {}


def _require_root(fixture: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{fixture} needs root (a privileged libvirtd in its own mount namespace)")


@dataclass(frozen=True)
class Hypervisors:
    hv01: LibvirtDaemon
    hv02: LibvirtDaemon
    storage: Path


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    _require_root("guest_image")
    started = time.monotonic()
    image = GuestImage.build()
    TIMINGS["guest image (build or cache)"] = time.monotonic() - started
    return image


@pytest.fixture(scope="session")
def hypervisors() -> Iterator[Hypervisors]:
    _require_root("hypervisors")
    # Short: the instances' unix sockets live below it (at most ~100 bytes).
    base = Path(tempfile.mkdtemp(prefix="rbk-hv-", dir="/tmp"))
    storage = base / "storage"
    storage.mkdir()
    daemons: list[LibvirtDaemon] = []
    try:
        for name in ("hv01", "hv02"):
            daemon = LibvirtDaemon(name, base / name, capabilities_cache=guest_cache_dir() / "qemu-capabilities")
            daemons.append(daemon)
            TIMINGS[f"libvirtd {name} start"] = daemon.start()
        yield Hypervisors(daemons[0], daemons[1], storage)
    finally:
        for daemon in daemons:
            daemon.stop()
        shutil.rmtree(base, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("hypervisor timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what}: {seconds:.2f} s")


__all__ = ["Hypervisors", "guest_image", "hypervisors"]
