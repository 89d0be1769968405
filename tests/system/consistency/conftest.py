# -*- coding: utf-8 -*-
"""Fixtures of the consistency system tests: real filesystems on loop devices, frozen for real.

A write to a frozen filesystem blocks in the kernel and cannot be killed, so every fixture
thaws its filesystem before it unmounts it, and the tests keep max_freeze short. Only the loop
devices these fixtures attached are detached, by name.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "freeze_runner.py"
GUARD_SECONDS = 60.0


from collection_path import COLLECTIONS  # noqa: E402

WRITER = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"x" * 65536)
os.fsync(fd)
os.close(fd)
"""


def run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _losetup_usable() -> str | None:
    """None if loop devices can be used here, else why not."""
    if os.geteuid() != 0:
        return "loop devices and fsfreeze need root"
    for tool in ("losetup", "mount", "umount", "fsfreeze", "mkfs.xfs", "mkfs.btrfs"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control: the loop driver is not available"
    return None


@dataclass
class LoopFS:
    """One filesystem on a loop device we attached and mounted."""

    image: Path
    device: str
    mountpoint: Path
    fstype: str
    writers: list[subprocess.Popen] = field(default_factory=list)
    guard: threading.Timer | None = None

    def start_writer(self, name: str = "writer.bin") -> subprocess.Popen:
        """A process that creates, writes and fsyncs a file here (blocks while frozen)."""
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(self.mountpoint / name)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.writers.append(proc)
        return proc

    def writer_finishes_within(self, seconds: float, name: str = "probe.bin") -> bool:
        """True if a write + fsync completes in time (the filesystem is not frozen)."""
        proc = self.start_writer(name)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0

    def thaw(self) -> None:
        run(["fsfreeze", "-u", str(self.mountpoint)], timeout=30)


def _teardown(fs: LoopFS) -> None:
    if fs.guard is not None:
        fs.guard.cancel()
    fs.thaw()  # first: nothing below can finish on a frozen filesystem
    for proc in fs.writers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for _attempt in range(20):
        if run(["umount", str(fs.mountpoint)]).returncode == 0 or not os.path.ismount(fs.mountpoint):
            break
        time.sleep(0.25)
    run(["losetup", "-d", fs.device])
    fs.image.unlink(missing_ok=True)


@pytest.fixture
def make_loopfs(tmp_path):
    """Factory: make_loopfs("xfs"|"btrfs") -> a mounted LoopFS, cleaned up after the test."""
    reason = _losetup_usable()
    if reason:
        pytest.skip(reason)
    made: list[LoopFS] = []

    def make(fstype: str = "xfs", size_mb: int = 320, name: str | None = None) -> LoopFS:
        name = name or "%s%d" % (fstype, len(made))
        image = tmp_path / (name + ".img")
        with open(image, "wb") as handle:
            handle.truncate(size_mb * 1024 * 1024)
        attached = run(["losetup", "-f", "--show", str(image)])
        if attached.returncode != 0:
            pytest.skip("losetup cannot attach a loop device here: %s" % attached.stderr.strip())
        device = attached.stdout.strip()
        mountpoint = tmp_path / name
        mountpoint.mkdir()
        fs = LoopFS(image, device, mountpoint, fstype)
        mkfs = ["mkfs.xfs", "-q", "-f", device] if fstype == "xfs" else ["mkfs.btrfs", "-q", "-f", device]
        result = run(mkfs)
        if result.returncode != 0:
            run(["losetup", "-d", device])
            raise RuntimeError("%s failed: %s" % (" ".join(mkfs), result.stderr))
        result = run(["mount", device, str(mountpoint)])
        if result.returncode != 0:
            run(["losetup", "-d", device])
            raise RuntimeError("mount failed: %s" % result.stderr)
        # If the code under test fails to thaw AND a test waits on something stuck in the kernel
        # (a wait on a D-state child cannot end), thaw from a thread: the test then fails, slowly,
        # instead of hanging the whole run.
        fs.guard = threading.Timer(GUARD_SECONDS, fs.thaw)
        fs.guard.daemon = True
        fs.guard.start()
        made.append(fs)
        return fs

    yield make
    for fs in reversed(made):
        _teardown(fs)


@dataclass
class FreezeRunner:
    """A runner process that freezes through the fsfreeze profile and reports on stdout."""

    proc: subprocess.Popen
    status_dir: Path

    def wait_for(self, word: str, timeout: float = 20) -> float:
        """Wait for a line starting with word; the time.monotonic() it arrived."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("runner exited (%s) before %r: %s" % (
                    self.proc.wait(), word, self.proc.stderr.read() if self.proc.stderr else ""))
            if line.startswith(word):
                return time.monotonic()
        raise AssertionError("runner did not say %r within %ss" % (word, timeout))

    def watchdog_log(self) -> str:
        path = self.status_dir / "consistency-watchdog.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def start_runner(tmp_path):
    """Factory: start_runner(mountpoints, max_freeze, mode) -> FreezeRunner (killed at the end)."""
    started: list[subprocess.Popen] = []

    def start(mountpoints: list[str], max_freeze: int = 3, mode: str = "sleep") -> FreezeRunner:
        status_dir = tmp_path / ("status%d" % len(started))
        status_dir.mkdir()
        config = {"mountpoints": mountpoints, "max_freeze": max_freeze, "mode": mode,
                  "status_dir": str(status_dir)}
        env = dict(os.environ, PYTHONPATH=COLLECTIONS)
        proc = subprocess.Popen([sys.executable, str(RUNNER), json.dumps(config)], env=env, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(proc)
        return FreezeRunner(proc, status_dir)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
