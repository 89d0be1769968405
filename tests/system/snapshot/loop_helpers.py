# -*- coding: utf-8 -*-
"""Filesystems on loop devices attached by the snapshot tests (as in tests/system/consistency)."""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def run(argv: list, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False)


def must(argv: list, timeout: float = 120) -> str:
    result = run(argv, timeout)
    if result.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(str(a) for a in argv), result.stderr))
    return result.stdout


@dataclass
class LoopMount:
    """A filesystem on a loop device attached here."""

    image: Path
    device: str
    mountpoint: Path

    def close(self) -> None:
        run(["fsfreeze", "-u", self.mountpoint])  # never unmount a frozen filesystem
        for _attempt in range(20):
            if run(["umount", self.mountpoint]).returncode == 0 or not os.path.ismount(self.mountpoint):
                break
            time.sleep(0.25)
        run(["losetup", "-d", self.device])
        self.image.unlink(missing_ok=True)


def loop_mount(image: Path, mountpoint: Path, fstype: str, size_mb: int) -> LoopMount:
    with open(image, "wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    device = must(["losetup", "-f", "--show", image]).strip()
    try:
        must(["mkfs.btrfs", "-q", "-f", device] if fstype == "btrfs" else ["mkfs.xfs", "-q", "-f", device])
        mountpoint.mkdir(parents=True, exist_ok=True)
        must(["mount", device, mountpoint])
    except BaseException:
        run(["losetup", "-d", device])
        raise
    return LoopMount(image, device, mountpoint)
