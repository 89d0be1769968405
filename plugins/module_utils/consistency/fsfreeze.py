# -*- coding: utf-8 -*-
# Private to restorable.backup: the fsfreeze quiesce profile.
"""Freeze filesystems while a snapshot of the volumes under them is taken.

All mount points are frozen in the listed order and thawed in reverse. Before the first freeze
the watchdog is armed and, before each freeze, told how to thaw that mount point, so a runner
that dies (SIGKILL) or a snapshot that hangs never leaves a filesystem frozen for longer than
``max_freeze``: a write to a frozen filesystem blocks in the kernel and cannot be killed.

The snapshot must be of the storage UNDER the frozen filesystem (an LVM/EBS/array volume, or
the btrfs subvolume holding a loop image): a snapshot of the frozen filesystem itself (btrfs
``subvolume snapshot`` of a frozen btrfs) blocks until the thaw; the watchdog then thaws at
``max_freeze`` and the result is reported as not consistent.

Refused before anything is frozen (QuiesceFailed): a path that is not a mount point
(``fsfreeze`` would freeze the filesystem that contains it), the root filesystem, two mount
points of the same filesystem, and a status or staging directory on a filesystem to be frozen
(the runner and the watchdog write there).
"""
from __future__ import annotations

import os
import shutil
import time
from typing import Any

from ..common.process import base_env, run_command
from .base import FreezingProfile, QuiesceFailed
from .watchdog import Watchdog

FREEZE_TIMEOUT_MIN = 10.0
THAW_TIMEOUT = 10.0
PRE_SYNC_MIN = 30.0
_C_LOCALE = {"LC_ALL": "C"}  # error messages are matched below


class FsfreezeProfile(FreezingProfile):
    """type: fsfreeze — fsfreeze -f each mount point, snapshot, fsfreeze -u in reverse."""

    kind = "fsfreeze"

    def __init__(self, config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> None:
        super().__init__(config, staging_dir, status_dir)
        mountpoints = (config.get("fsfreeze") or {}).get("mountpoints") or []
        if not mountpoints:
            raise QuiesceFailed("fsfreeze profile without mountpoints")
        self.mountpoints = [os.path.normpath(str(path)) for path in mountpoints]
        self.program = shutil.which("fsfreeze") or "/usr/sbin/fsfreeze"
        self._touched: list[str] = []  # freeze attempted: thaw these on release
        self.step_seconds: dict[str, float] = {}  # last run: pre-sync, freeze, thaw (all mount points)

    def check_mountpoints(self) -> None:
        """Refuse what must never be frozen; raise QuiesceFailed naming the path."""
        seen: dict[int, str] = {}
        for path in self.mountpoints:
            if not os.path.isabs(path):
                raise QuiesceFailed("fsfreeze: %s is not an absolute path" % path)
            if not os.path.isdir(path):
                raise QuiesceFailed("fsfreeze: %s does not exist or is not a directory" % path)
            if not os.path.ismount(path):
                raise QuiesceFailed("fsfreeze: %s is not a mount point (freezing it would freeze the "
                                    "filesystem that contains it)" % path)
            if os.path.realpath(path) == "/":
                raise QuiesceFailed("fsfreeze: refusing to freeze the root filesystem")
            device = os.stat(path).st_dev
            if device in seen:
                raise QuiesceFailed("fsfreeze: %s and %s are the same filesystem" % (seen[device], path))
            seen[device] = path
        for what, directory in (("status directory", self.status_dir), ("staging directory", self.staging_dir)):
            if not directory:
                continue
            probe = directory
            while not os.path.exists(probe) and os.path.dirname(probe) != probe:
                probe = os.path.dirname(probe)
            device = os.stat(probe).st_dev
            if device in seen:
                raise QuiesceFailed("fsfreeze: the %s %s is on %s, which would be frozen" % (what, directory, seen[device]))

    def quiesce(self, watchdog: Watchdog) -> str | None:
        self.check_mountpoints()
        # Flush dirty data first, while writers still run: the freeze then has little left to
        # write, and the window (which starts at the first freeze) stays short.
        self.step_seconds = {}
        began = time.monotonic()
        for path in self.mountpoints:
            run_command(["sync", "--file-system", path], env=base_env(_C_LOCALE), timeout=max(PRE_SYNC_MIN, self.max_freeze))
        self.window_started = time.monotonic()
        self.step_seconds["pre_sync"] = round(self.window_started - began, 6)
        for path in self.mountpoints:
            watchdog.add_command([self.program, "-u", path], timeout=THAW_TIMEOUT)  # before the freeze
            self._touched.append(path)
            result = run_command([self.program, "-f", path], env=base_env(_C_LOCALE),
                                 timeout=max(FREEZE_TIMEOUT_MIN, self.max_freeze))
            if not result.ok:
                raise QuiesceFailed("fsfreeze -f %s failed: %s" % (
                    path, "timed out" if result.timed_out else result.stderr_tail(2) or "exit %d" % result.returncode))
        self.step_seconds["freeze"] = round(time.monotonic() - self.window_started, 6)
        return None

    def release(self) -> None:
        errors = []
        began = time.monotonic()
        for path in reversed(self._touched):
            result = run_command([self.program, "-u", path], env=base_env(_C_LOCALE), timeout=THAW_TIMEOUT)
            # EINVAL: not frozen (the freeze failed, or the watchdog thawed already).
            if not result.ok and "Invalid argument" not in result.stderr:
                errors.append("fsfreeze -u %s: %s" % (path, result.stderr_tail(2) or "exit %d" % result.returncode))
        self._touched = []
        self.step_seconds["thaw"] = round(time.monotonic() - began, 6)
        if errors:
            raise QuiesceFailed("; ".join(errors))
