#!/usr/bin/env python
"""Benchmark: the PostgreSQL backup API window around a snapshot (pg_backup_start -> snapshot -> pg_backup_stop).

Starts its own PostgreSQL 15 cluster (as user postgres, on a free loopback port, WAL archived
by `cp` into a directory, 1 MiB WAL segments so that 60 runs do not archive a gigabyte) whose data
directory is a btrfs subvolume on a loop device, and runs the PostgreSQL profile's `frozen()`
exactly as the snapshot tiers do:

    profile.frozen(snapshot)   # watchdog armed; psql session: pg_backup_start('restorable', true);
                               # btrfs subvolume snapshot -r (or a no-op); pg_backup_stop(true)
                               # in the same session (waits for the WAL archive); watchdog disarmed

The window is FreezeRecord.seconds (from the start of the quiesce, which starts the psql session,
to the end of the release, time.monotonic). PostgreSQL keeps accepting writes in backup mode;
the window is how long backup mode was on. `--load` keeps a writer committing one row per
transaction during the runs (the checkpoint of pg_backup_start then has dirty buffers to write).
The role gets pg_checkpoint, so the profile checkpoints before the window (`--no-checkpoint-role`
leaves that out: pg_backup_start's own checkpoint then writes all dirty buffers inside it).

Needs root (loop devices, running postgres as its user); without btrfs-progs, or with
`--snapshot noop`, the snapshot is a no-op callable. Prints one JSON object (last line).
Target: p99 < 200 ms.

    .venv/bin/python bench/pg_freeze_window.py [--runs 60] [--snapshot btrfs|noop] [--load]
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO / "tests" / "system" / "databases"))

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import profile_from_config  # noqa: E402
from db_helpers import (APP_DB, PG_PASSWORD, PG_ROLE, WriteLoad, chown_tree, pg_env, pg_start,  # noqa: E402
                        pg_bindir)

TARGET_P99 = 0.200


def sh(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout.strip()


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
    parser.add_argument("--snapshot", choices=["btrfs", "noop"], default="btrfs")
    parser.add_argument("--load", action="store_true", help="commit rows in a loop during the runs")
    parser.add_argument("--no-checkpoint-role", action="store_true",
                        help="do not grant pg_checkpoint: no CHECKPOINT before the window")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if os.geteuid() != 0:
        print(json.dumps({"error": "needs root (loop devices, postgres user)"}))
        return 2
    use_btrfs = args.snapshot == "btrfs" and shutil.which("mkfs.btrfs") is not None

    work = Path(tempfile.mkdtemp(prefix="restorable-pg-freeze-bench-"))
    os.chmod(work, 0o755)
    device = None
    mounted = None
    cluster = None
    load = None
    try:
        if use_btrfs:
            image = work / "volume.img"
            with open(image, "wb") as handle:
                handle.truncate(1024 * 1024 * 1024)
            device = sh("losetup", "-f", "--show", str(image))
            sh("mkfs.btrfs", "-q", "-f", device)
            mounted = work / "btrfs"
            mounted.mkdir()
            sh("mount", device, str(mounted))
            sh("btrfs", "subvolume", "create", str(mounted / "pg"))
            (mounted / "snaps").mkdir()
            os.chmod(mounted, 0o755)
            datadir = mounted / "pg" / "data"
        else:
            datadir = work / "data"
        archive = work / "archive"
        archive.mkdir()
        chown_tree(work, "postgres")
        subprocess.run([str(pg_bindir() / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "--wal-segsize=1", "--no-sync"], env=pg_env(work),
                       check=True, capture_output=True, cwd=str(work), user="postgres", group="postgres",
                       extra_groups=[])
        cluster = pg_start(work, datadir, {"fsync": "on", "wal_level": "replica", "archive_mode": "on",
                                           "archive_command": "cp %%p %s/%%f" % archive})
        cluster.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PG_ROLE, PG_PASSWORD))
        cluster.psql("GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO %s"
                     % PG_ROLE)
        if not args.no_checkpoint_role:
            cluster.psql("GRANT pg_checkpoint TO %s" % PG_ROLE)
        cluster.psql("CREATE DATABASE %s" % APP_DB)
        cluster.psql("CREATE TABLE bench_rows (n int PRIMARY KEY, at timestamptz DEFAULT now())", db=APP_DB)
        if args.load:
            load = WriteLoad(cluster.client_argv(APP_DB), "bench_rows", env=pg_env(work), user="postgres").start()
            load.wait_for(100)

        staging = work / "staging"
        staging.mkdir(mode=0o700)
        profile = profile_from_config({"type": "postgresql", "max_freeze": "10s", "postgresql": {
            "mode": "backup_api", "host": "127.0.0.1", "port": cluster.port, "user": PG_ROLE,
            "password": PG_PASSWORD}}, str(staging), str(staging))
        windows, snapshots, totals = [], [], []
        timing: dict[str, float] = {}

        def snapshot(target: Path | None) -> str:
            began = time.monotonic()
            if target is not None:
                sh("btrfs", "subvolume", "snapshot", "-r", str(mounted / "pg"), str(target))
            timing["snapshot"] = time.monotonic() - began
            return str(target)

        for run in range(args.runs):
            target = (mounted / "snaps" / ("s%d" % run)) if use_btrfs else None
            began = time.monotonic()
            _result, record = profile.frozen(functools.partial(snapshot, target))
            totals.append(time.monotonic() - began)
            if not record.consistent or not record.label:
                raise RuntimeError("run %d not consistent: %s" % (run, record.reason))
            windows.append(record.seconds)
            snapshots.append(timing["snapshot"])
            if target is not None:
                sh("btrfs", "subvolume", "delete", str(target))
        profile.cleanup()
        committed = load.stop() if load is not None else 0
        load = None
        result = {
            "benchmark": "pg_freeze_window", "runs": args.runs,
            "snapshot": "btrfs subvolume snapshot -r of the data directory's subvolume" if use_btrfs else "no-op",
            "write_load": args.load, "checkpoint_before_window": not args.no_checkpoint_role, "rows_committed_during_runs": committed,
            "freeze_window": summary(windows),
            "snapshot_inside_window": summary(snapshots),
            "frozen_call_including_watchdog_start": summary(totals),
            "target_p99_ms": TARGET_P99 * 1000,
            "target_met": percentile(windows, 0.99) < TARGET_P99,
        }
        print(json.dumps(result))
        return 0
    finally:
        if load is not None:
            load.stop()
        if cluster is not None:
            cluster.stop()
        if mounted is not None:
            subprocess.run(["umount", str(mounted)], capture_output=True, check=False)
        if device is not None:
            subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
