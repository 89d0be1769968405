#!/usr/bin/env python
"""Benchmark: the freeze window of an application-consistent snapshot (fsfreeze + btrfs snapshot).

The application's filesystem (XFS) lives on a loop device whose image file sits in a btrfs
subvolume, itself on a loop device: the btrfs subvolume plays the storage array volume. Each run
writes --dirty-mib MiB to the application filesystem (left in the page cache, so the freeze has to
flush it), then goes through the fsfreeze profile exactly as the snapshot tiers do:

    profile.frozen(snapshot)   # watchdog armed, fsfreeze -f APP, btrfs subvolume snapshot -r
                               # VOL SNAP, fsfreeze -u APP, watchdog disarmed

and records FreezeRecord.seconds (from the start of the freeze to the end of the thaw, measured
with time.monotonic) and, inside it, how long the btrfs snapshot took. The snapshot is deleted
after each run, outside the window. The snapshot is of the volume UNDER the frozen filesystem: a
btrfs snapshot of a frozen btrfs itself blocks until the thaw.

Needs root, losetup, mkfs.xfs, mkfs.btrfs and btrfs-progs; only the loop devices it attached are
detached at the end. Prints one JSON object (the last line of output); target: p99 < 200 ms.

    .venv/bin/python bench/freeze_window.py [--runs 60] [--dirty-mib 8]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import profile_from_config  # noqa: E402

TARGET_P99 = 0.200


def sh(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout.strip()


class Snapshot:
    """snapshot() for frozen(): a read-only btrfs snapshot of the volume, timed."""

    def __init__(self, volume: Path, target: Path) -> None:
        self.volume = volume
        self.target = target
        self.seconds = 0.0

    def __call__(self) -> str:
        began = time.monotonic()
        sh("btrfs", "subvolume", "snapshot", "-r", str(self.volume), str(self.target))
        self.seconds = time.monotonic() - began
        return str(self.target)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values) * 1000, 2), "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            "min_ms": round(min(values) * 1000, 2), "max_ms": round(max(values) * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--dirty-mib", type=int, default=8)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if os.geteuid() != 0:
        print(json.dumps({"error": "needs root (loop devices, fsfreeze)"}))
        return 2

    work = Path(tempfile.mkdtemp(prefix="restorable-freeze-bench-"))
    attached: list[str] = []
    mounted: list[Path] = []
    try:
        outer_img = work / "array.img"
        with open(outer_img, "wb") as handle:
            handle.truncate(2048 * 1024 * 1024)
        attached.append(sh("losetup", "-f", "--show", str(outer_img)))
        sh("mkfs.btrfs", "-q", "-f", attached[-1])
        array = work / "array"
        array.mkdir()
        sh("mount", attached[-1], str(array))
        mounted.append(array)
        sh("btrfs", "subvolume", "create", str(array / "vol"))
        (array / "snaps").mkdir()
        app_img = array / "vol" / "app.img"
        with open(app_img, "wb") as handle:
            handle.truncate(1024 * 1024 * 1024)
        attached.append(sh("losetup", "-f", "--show", str(app_img)))
        sh("mkfs.xfs", "-q", "-f", attached[-1])
        app = work / "app"
        app.mkdir()
        sh("mount", attached[-1], str(app))
        mounted.append(app)

        status = work / "status"
        status.mkdir()
        profile = profile_from_config({"type": "fsfreeze", "max_freeze": "10s", "fsfreeze": {"mountpoints": [str(app)]}},
                                      str(status), str(status))
        payload = os.urandom(1024 * 1024)
        windows, snapshots, totals = [], [], []
        steps: dict[str, list[float]] = {"pre_sync": [], "freeze": [], "thaw": []}
        for run in range(args.runs):
            with open(app / ("data-%d.bin" % (run % 4)), "wb") as handle:  # dirty, not synced
                for _mib in range(args.dirty_mib):
                    handle.write(payload)
            snapshot = Snapshot(array / "vol", array / "snaps" / ("s%d" % run))
            began = time.monotonic()
            _path, record = profile.frozen(snapshot)
            totals.append(time.monotonic() - began)
            if not record.consistent:
                raise RuntimeError("run %d not consistent: %s" % (run, record.reason))
            windows.append(record.seconds)
            snapshots.append(snapshot.seconds)
            for name, values in steps.items():
                values.append(profile.step_seconds[name])
            sh("btrfs", "subvolume", "delete", str(snapshot.target))

        result = {
            "benchmark": "freeze_window", "runs": args.runs, "dirty_mib": args.dirty_mib,
            "layout": "xfs on loop, image in a btrfs subvolume on loop; btrfs subvolume snapshot -r of that subvolume",
            "freeze_window": summary(windows),
            "fsfreeze_f_inside_window": summary(steps["freeze"]),
            "btrfs_snapshot_inside_window": summary(snapshots),
            "fsfreeze_u_inside_window": summary(steps["thaw"]),
            "pre_sync_before_window": summary(steps["pre_sync"]),
            "frozen_call_including_watchdog_start": summary(totals),
            "target_p99_ms": TARGET_P99 * 1000,
            "target_met": percentile(windows, 0.99) < TARGET_P99,
        }
        print(json.dumps(result))
        return 0
    finally:
        # Inner first: the application filesystem, its loop device, then the array's.
        for path, device in reversed(list(zip(mounted + [None] * len(attached), attached))):
            if path is not None:
                subprocess.run(["fsfreeze", "-u", str(path)], capture_output=True, check=False)
                subprocess.run(["umount", str(path)], capture_output=True, check=False)
            subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
