"""Benchmark: the array tier (group snapshots exported to a virtual tape library) against the bare
tools, in the same run.

Needs root, btrfs-progs, loop devices and PostgreSQL 15. Helpers come from the other benches and
the system tests: bench/cdp.py (log, medians, the checkout state), bench/pg_freeze_window.py (the
millisecond summary), tests/system/databases/db_helpers.py (the PostgreSQL cluster and its write
load) and tests/system/snapshot/loop_helpers.py (btrfs on a loop device). Everything started here
is stopped by PID, the filesystems unmounted and only the loops attached here detached at the end
(also on failure, Ctrl-C or SIGTERM). Work directory: /var/tmp/restorable-bench/array (emptied at
the start, removed at the end).

Parts (--only a,b; default all; --skip-sustain leaves out the 30 minutes):

  export   one btrfs on a loop device holds a subvolume of --size-mib of random (incompressible)
           files, its read-only snapshot (where the tier's GroupSnapshotter keeps it) and the tape
           libraries (directory driver). Each round times (a) bare `btrfs send SNAP | dd of=FILE
           bs=1M` into a file on that filesystem; (b) ours: tiers/array/export.py Exporter.export of
           the same snapshot as a full stream (btrfs send's stdout read by TapeLibrary.write_stream,
           then commit_point; library.close() as a run ends) into a fresh directory library whose
           cartridges are large enough not to span; (c) with --span N (default 3; 0 leaves it out)
           the same into cartridges of a third of the stream. Order alternates per round; `sync`
           before each; after each, `sync --file-system` of the bench's filesystem is timed apart.
           Ratio = bare seconds / our seconds (throughput), also to durable (with that sync: the
           library makes its cartridges durable itself, dd does not). Target median >= 0.9.
  restore  the stream of (b) against the file of (a) (same bytes: the library's sha256 is compared
           with the file's): bare `cat FILE | btrfs receive DIR` against ours, tiers/array/restore.py
           ChainReceiver.receive (TapeLibrary.read_stream into `btrfs receive --chroot DIR`), each
           into a new directory on the same filesystem, the received subvolume deleted after.
           Ratio bare/ours, target median >= 0.9.
  freeze   PostgreSQL 15 (fsync on) on two subvolumes, the data directory on the first and, on the
           second, pg_wal (`initdb -X`, --pg-layout wal, the default) or the tablespace of the
           database written to (--pg-layout tablespace); a writer commits one row per transaction
           throughout (as pg_freeze_window.py --load). --freeze-runs (100) group snapshots of both
           volumes in ONE quiesce window through snapshot/group.py group_snapshot_from_config with
           the PostgreSQL profile and the btrfs provider, each point deleted after it. The window is
           the record's freeze_seconds (of a failed take too, from its status), the two btrfs
           snapshots inside it are timed apart. Target p99 < 100 ms; median, p99, max reported.
           --wal-segsize (MiB, default 16 as initdb's; pg_freeze_window.py runs 1): pg_backup_start
           and pg_backup_stop each switch WAL segments, and the rest of a segment is written out.
  sustain  the array job (the same 2-volume PostgreSQL group, every snapshot exported to a directory
           library, chain_length 7, retention last 5) started at every minute boundary for
           --sustain-minutes (30) as a timer starts it: the standalone command line (`python3 -m
           restorable_agent run --config FILE`, installed by install_standalone; --sustain-via cli)
           or runner_for in a child process (--sustain-via runner); not while the previous run still
           runs (that minute is a miss). Between runs (30 s past each minute), small writes: 100 rows
           into PostgreSQL and a 256 KiB file into each volume. Misses: minutes without a run,
           failed runs, and runs whose point is not in the library's catalog. Per run: wall seconds,
           CPU of the job's process tree (os.wait4 rusage), the freeze window and what was exported.

Reports medians and ratios, exits 0 whether or not a target is met; a part that fails is reported
("not measured") without losing the others; logs go to stderr, the figures to stdout, the last line
of which is a JSON summary.

    .venv/bin/python bench/array_tier.py [--only export,restore,freeze,sustain] [--skip-sustain]
        [--runs 5] [--size-mib 1024] [--span 3] [--freeze-runs 100] [--sustain-minutes 30]
        [--sustain-via cli|runner] [--pg-layout wal|tablespace] [--wal-segsize 16] [--quick]

--quick (for debugging): 2 runs, 64 MiB, 10 freeze runs, 2 sustain minutes; explicit options win.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from cdp import HOST_PYTHON, MIB, REPO, checkout_state, log, median, percentile, utcnow
from pg_freeze_window import summary as ms_summary
from db_helpers import APP_DB, PG_PASSWORD, PG_ROLE, WriteLoad, chown_tree, pg_bindir, pg_env, pg_start
from loop_helpers import LoopMount, loop_mount, must

from ansible_collections.restorable.backup.plugins.module_utils.snapshot.btrfs import BtrfsSnapshotProvider
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.group import (
    GroupSnapshotter, SnapshotGroup, group_snapshot_from_config, recovery_point_id)
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.export import Exporter, plan_export
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.restore import ChainReceiver

WORK = Path("/var/tmp/restorable-bench/array")
COLLECTIONS = REPO / "collections"
TARGETS = {"export": 0.9, "restore": 0.9, "freeze": 0.100, "sustain": 0}
ALL = list(TARGETS)
POOL = "bench"
FILE_MIB = 64  # the data set's files
SMALL_WRITE = 256 * 1024  # bytes per volume between sustain runs
SUSTAIN_RETENTION = {"last": 5}
SUSTAIN_CHAIN = 7
MODULE_UTILS = "ansible_collections.restorable.backup.plugins.module_utils"
# runner_for in a child process: what a timer's unit would run if it called the engine directly.
RUNNER_CHILD = ("import json, sys\n"
                "from %s.core.jobspec import load_job_config\n"
                "from %s.core.runner import RunOptions\n"
                "from %s.runtime.registry import runner_for\n"
                "record = runner_for(load_job_config(sys.argv[1]), RunOptions(True, True, 0.0)).run()\n"
                "print(json.dumps(record.to_dict(), default=str))\n"
                "sys.exit(record.exit_code)\n") % (MODULE_UTILS, MODULE_UTILS, MODULE_UTILS)


# -- processes: every child is killed by its PID when the bench is interrupted ------------------

class Children:
    """The children of the running part; kill_all() stops those still running, by PID."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        process = subprocess.Popen([str(a) for a in argv], **kwargs)  # pylint: disable=consider-using-with
        self.running.append(process)
        return process

    def reap(self, process: subprocess.Popen, timeout: float = 1800) -> tuple[int, str]:
        """Wait for one child; (exit code, its stderr if piped)."""
        err = process.stderr.read().decode(errors="replace") if process.stderr else ""
        code = process.wait(timeout)
        self.running.remove(process)
        return code, err

    def kill_all(self) -> None:
        """SIGTERM first (a job's Runner then releases the application and removes its attempt),
        SIGKILL after 30 s."""
        for process in self.running:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self.running.clear()


CHILDREN = Children()


def pipeline(producer: list[str], consumer: list[str]) -> float:
    """Wall seconds of `producer | consumer` (cdp.pipeline_seconds, but killed on interruption)."""
    began = time.monotonic()
    first = CHILDREN.start(producer, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = CHILDREN.start(consumer, stdin=first.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert first.stdout is not None
    first.stdout.close()  # the consumer holds the pipe alone: the producer sees EPIPE if it dies
    code2, err2 = CHILDREN.reap(second)
    code1, err1 = CHILDREN.reap(first)
    seconds = time.monotonic() - began
    if code1 or code2:
        raise RuntimeError("%s | %s failed: %s / %s" % (producer[0], consumer[0], err1[-500:], err2[-500:]))
    return seconds


def release(fs: LoopMount) -> None:
    """Unmount and detach (LoopMount.close), after collecting what may still hold files open on the
    filesystem (a library left by a failed export); if it is still busy, unmounted lazily: it goes
    with this process's last open file, and its loop (detached by close) with it."""
    gc.collect()
    fs.close()
    if os.path.ismount(fs.mountpoint):
        log("%s is still busy: unmounted lazily" % fs.mountpoint)
        subprocess.run(["umount", "--lazy", str(fs.mountpoint)], check=False)


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below path (a run killed with SIGKILL leaves its filesystems mounted)."""
    with open("/proc/self/mounts", encoding="utf-8") as handle:
        points = [line.split()[1] for line in handle]
    return [point for point in points if point == str(path) or point.startswith(str(path) + "/")]


def timed_sync(path: Path) -> float:
    """Seconds to write back what is dirty on path's filesystem (syncfs: other filesystems' writeback,
    other sessions' included, is not counted)."""
    began = time.monotonic()
    must(["sync", "--file-system", path])
    return time.monotonic() - began


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 * MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sizes(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in sorted(root.rglob("*")) if path.is_file()}


# -- the tape library and the tier ----------------------------------------------------------------

def library_config(path: Path, root: Path, capacity: int, slots: int = 32) -> Path:
    """A directory library's configuration file (the spec's format; apply writes it on hosts)."""
    document = {"format": 1, "name": root.name, "driver": "directory", "path": str(root), "state_dir": str(root),
                "slots": slots, "drives": 1, "media": {"type": "LTO-8", "capacity_bytes": capacity},
                "pools": {POOL: {"retention_days": 1, "barcode_prefix": "BN", "worm": False, "vault": False}}}
    path.write_text(json.dumps(document, indent=2))
    return path


def open_fresh_library(config: Path) -> Any:
    library = open_library(str(config))
    library.ensure()
    return library


# -- export and restore -------------------------------------------------------------------------

def make_data(subvolume: Path, size_mib: int) -> None:
    """size_mib of random data in files of FILE_MIB (the last one smaller)."""
    for index, first in enumerate(range(0, size_mib, FILE_MIB)):
        with open(subvolume / ("data%03d.bin" % index), "wb") as handle:
            for _block in range(min(FILE_MIB, size_mib - first)):
                handle.write(os.urandom(MIB))


def export_variant(fs: Path, snapshotter: GroupSnapshotter, point: str, name: str, index: int,
                   capacity: int) -> dict[str, Any]:
    """One timed export of the point (a full stream) into a fresh library, as the tier exports it;
    the library's directory is kept for the restore part."""
    root = fs / ("lib-%s-%d" % (name, index))
    shutil.rmtree(root, ignore_errors=True)  # left by a failed attempt: every export starts on a new library
    library = open_fresh_library(library_config(fs / ("lib-%s-%d.json" % (name, index)), root, capacity))
    exporter = Exporter(library, POOL, snapshotter)
    plan = plan_export(point, None, 7, [point], [])
    os.sync()
    began = time.monotonic()
    done = exporter.export(plan, {"id": point, "group": snapshotter.group.name, "time": utcnow().isoformat()})
    library.close()  # the cartridge back from the drive to its slot, as a run ends
    seconds = time.monotonic() - began
    after = timed_sync(root)
    return {"seconds": seconds, "sync": after, "stream": done["streams"][0], "library": library, "root": root,
            "cartridges": len(done["cartridges"]), "bytes": done["bytes"]}


def bare_export(snapshot: Path, stream_file: Path) -> tuple[float, float]:
    """(seconds, seconds of the sync after) of `btrfs send SNAP | dd of=FILE bs=1M`."""
    stream_file.unlink(missing_ok=True)
    os.sync()
    seconds = pipeline(["btrfs", "send", "-q", snapshot], ["dd", "of=%s" % stream_file, "bs=1M", "status=none"])
    return seconds, timed_sync(stream_file)


class ExportBench:
    """The data set, its snapshot, the bare stream file and the latest library of each variant."""

    def __init__(self, fs: LoopMount, size_mib: int, span: int) -> None:
        self.mount = fs.mountpoint
        self.size_mib = size_mib
        self.span = span
        self.source = self.mount / "source"
        must(["btrfs", "subvolume", "create", self.source])
        log("writing %d MiB of random data" % size_mib)
        make_data(self.source, size_mib)
        # The snapshot where the tier's group snapshotter has it, so that its exporter finds it.
        self.snapshotter = GroupSnapshotter(SnapshotGroup("bench", [str(self.source)], str(self.mount / "snapshots")),
                                            BtrfsSnapshotProvider())
        self.point = recovery_point_id()
        self.snapshot = Path(self.snapshotter.destination(str(self.source), self.point))
        self.snapshot.parent.mkdir(parents=True)
        must(["btrfs", "subvolume", "snapshot", "-r", self.source, self.snapshot])
        os.sync()
        self.stream_file = self.mount / "bare.stream"
        self.libraries: dict[str, dict[str, Any]] = {}

    def capacity(self, name: str) -> int:
        expected = self.stream_file.stat().st_size if self.stream_file.exists() else self.size_mib * MIB
        if name == "ours":
            return expected * 4 + 64 * MIB  # never spans
        return max(4 * MIB, -(-expected // self.span) + MIB)  # + labels and indexes: `span` cartridges

    def ours(self, name: str, index: int) -> dict[str, Any]:
        done = export_variant(self.mount, self.snapshotter, self.point, name, index, self.capacity(name))
        if self.stream_file.exists() and done["bytes"] != self.stream_file.stat().st_size:
            raise RuntimeError("the library's stream has %d bytes, bare send wrote %d"
                               % (done["bytes"], self.stream_file.stat().st_size))
        previous = self.libraries.pop(name, None)
        if previous is not None:  # the latest library of each variant is kept for the restore part
            shutil.rmtree(previous["root"], ignore_errors=True)
        self.libraries[name] = done
        return done


def bench_export(bench: ExportBench, runs: int) -> dict[str, Any]:
    variants = ["bare", "ours"] + (["span"] if bench.span else [])
    rounds: list[dict[str, Any]] = []
    for index in range(runs):
        row: dict[str, Any] = {}
        for name in (variants if index % 2 == 0 else list(reversed(variants))):
            if name == "bare":
                row["bare"], row["bare_sync"] = bare_export(bench.snapshot, bench.stream_file)
            else:
                done = bench.ours(name, index)
                row[name], row[name + "_sync"], row[name + "_cartridges"] = done["seconds"], done["sync"], done["cartridges"]
        rounds.append(row)
        log("export round %d: bare %.2f s (+%.2f sync), ours %.2f s (+%.2f sync)%s" % (
            index + 1, row["bare"], row["bare_sync"], row["ours"], row["ours_sync"],
            (", spanning %d cartridges %.2f s (+%.2f sync)" % (row["span_cartridges"], row["span"], row["span_sync"]))
            if "span" in row else ""))
    mib = bench.stream_file.stat().st_size / MIB
    results: dict[str, Any] = {
        "data_mib": bench.size_mib, "stream_mib": round(mib, 1), "rounds": rounds,
        "how": "tiers/array/export.py Exporter.export (btrfs send stdout into TapeLibrary.write_stream, then "
               "commit_point) and library.close()",
        "bare_mibps": median([mib / r["bare"] for r in rounds])}
    for name in variants[1:]:
        ratios = [r["bare"] / r[name] for r in rounds]
        durable = [(r["bare"] + r["bare_sync"]) / (r[name] + r[name + "_sync"]) for r in rounds]
        prefix = "" if name == "ours" else "span_"
        results.update({(prefix or "ours_") + "mibps": median([mib / r[name] for r in rounds]),
                        prefix + "ratios": ratios, prefix + "ratio": median(ratios),
                        prefix + "ratio_durable": median(durable), prefix + "ratios_durable": durable,
                        prefix + "cartridges": rounds[-1][name + "_cartridges"]})
    results["met"] = results["ratio"] >= TARGETS["export"]
    return results


def bench_restore(bench: ExportBench, runs: int) -> dict[str, Any]:
    if "ours" not in bench.libraries:  # --only restore: one stream on tape and one in a file, untimed
        bare_export(bench.snapshot, bench.stream_file)
        bench.ours("ours", 0)
    ours = bench.libraries["ours"]
    same = ours["library"].verify_stream(ours["stream"])["sha256"] == sha256_of(bench.stream_file)
    rounds: list[dict[str, float]] = []
    expected = tree_sizes(bench.source)
    for index in range(runs):
        row: dict[str, float] = {}
        for name in (("bare", "ours") if index % 2 == 0 else ("ours", "bare")):
            target = bench.mount / ("received-%s-%d" % (name, index))
            target.mkdir()
            os.sync()
            began = time.monotonic()
            if name == "bare":
                pipeline(["cat", bench.stream_file], ["btrfs", "receive", "-q", target])
            else:
                ChainReceiver(ours["library"], str(bench.mount)).receive(ours["stream"], str(target))
                ours["library"].close()
            row[name] = time.monotonic() - began
            row[name + "_sync"] = timed_sync(bench.mount)
            received = target / bench.point
            if index == 0 and tree_sizes(received) != expected:
                raise RuntimeError("the %s restore does not hold the source's files" % name)
            must(["btrfs", "subvolume", "delete", received])
            shutil.rmtree(target)
        rounds.append(row)
        log("restore round %d: bare %.2f s (+%.2f sync), ours %.2f s (+%.2f sync)" % (
            index + 1, row["bare"], row["bare_sync"], row["ours"], row["ours_sync"]))
    mib = bench.stream_file.stat().st_size / MIB
    ratios = [r["bare"] / r["ours"] for r in rounds]
    return {"stream_mib": round(mib, 1), "rounds": rounds, "same_stream_sha256": same,
            "how": "tiers/array/restore.py ChainReceiver.receive (TapeLibrary.read_stream into btrfs receive --chroot)",
            "bare_mibps": median([mib / r["bare"] for r in rounds]), "ours_mibps": median([mib / r["ours"] for r in rounds]),
            "ratios": ratios, "ratio": median(ratios),
            "ratio_durable": median([(r["bare"] + r["bare_sync"]) / (r["ours"] + r["ours_sync"]) for r in rounds]),
            "met": median(ratios) >= TARGETS["restore"]}


# -- PostgreSQL on two subvolumes -----------------------------------------------------------------

class PgGroup:
    """A PostgreSQL 15 cluster on two subvolumes: the data directory on `pgdata`, and on the second
    either pg_wal (`initdb -X`, layout "wal") or a tablespace holding the tables written (layout
    "tablespace", the array tier's documented example: /srv/pg and /srv/pgts)."""

    def __init__(self, work: Path, wal_segsize: int, layout: str, settings: dict[str, str] | None = None) -> None:
        self.work = work
        self.wal_segsize = wal_segsize
        self.settings = settings or {}
        self.layout = layout
        self.fs: LoopMount | None = None
        self.cluster = None
        self.load: WriteLoad | None = None

    def start(self) -> None:
        self.work.mkdir(parents=True, mode=0o755)
        self.fs = loop_mount(self.work / "pg.img", self.work / "pgfs", "btrfs", 8192)
        mount = self.fs.mountpoint
        os.chmod(mount, 0o755)
        self.volumes = [mount / "pgdata", mount / ("pgwal" if self.layout == "wal" else "pgts")]
        for volume in self.volumes:
            must(["btrfs", "subvolume", "create", volume])
        self.root = self.work / "pgroot"
        self.root.mkdir()
        for path in (self.root, *self.volumes):
            chown_tree(path, "postgres")
        datadir = self.volumes[0] / "data"
        wal = ["-X", str(self.volumes[1] / "wal")] if self.layout == "wal" else []
        subprocess.run([str(pg_bindir() / "initdb"), "-D", str(datadir), *wal, "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
                        "--wal-segsize=%d" % self.wal_segsize], env=pg_env(self.root), check=True, capture_output=True,
                       cwd=str(self.root), user="postgres", group="postgres", extra_groups=[])
        self.cluster = pg_start(self.root, datadir, {"fsync": "on", "wal_level": "replica", "max_wal_size": "256MB",
                                                     **self.settings})
        cluster = self.cluster
        cluster.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PG_ROLE, PG_PASSWORD))
        cluster.psql("GRANT pg_checkpoint TO %s" % PG_ROLE)
        cluster.psql("GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO %s" % PG_ROLE)
        if self.layout == "tablespace":
            location = self.volumes[1] / "ts"
            location.mkdir()
            chown_tree(location, "postgres")
            cluster.psql("CREATE TABLESPACE bench LOCATION '%s'" % location)
            cluster.psql("CREATE DATABASE %s TABLESPACE bench" % APP_DB)
        else:
            cluster.psql("CREATE DATABASE %s" % APP_DB)
        cluster.psql("CREATE TABLE seed (id int PRIMARY KEY, payload text)", db=APP_DB)
        cluster.psql("INSERT INTO seed SELECT g, md5(g::text) FROM generate_series(1, 20000) g", db=APP_DB)

    def consistency(self) -> dict[str, Any]:
        return {"type": "postgresql", "max_freeze": "10s",
                "postgresql": {"mode": "backup_api", "host": str(self.cluster.socket_dir), "port": self.cluster.port,
                               "user": PG_ROLE, "password": PG_PASSWORD}}

    def start_load(self, table: str) -> WriteLoad:
        self.cluster.psql("CREATE TABLE %s (n int PRIMARY KEY, at timestamptz DEFAULT now())" % table, db=APP_DB)
        self.load = WriteLoad(self.cluster.client_argv(APP_DB), table, env=pg_env(self.root), user="postgres").start()
        self.load.wait_for(100)
        return self.load

    def stop_load(self) -> int:
        committed = self.load.stop() if self.load is not None else 0
        self.load = None
        return committed

    def close(self) -> None:
        self.stop_load()
        if self.cluster is not None:
            self.cluster.stop()
        if self.fs is not None:
            release(self.fs)


class TimedProvider(BtrfsSnapshotProvider):
    """The btrfs provider, timing each snapshot it creates (they are inside the window)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def create(self, volume: str, destination: str) -> str:
        began = time.monotonic()
        try:
            return super().create(volume, destination)
        finally:
            self.seconds.append(time.monotonic() - began)


def bench_freeze(pg: PgGroup, runs: int) -> dict[str, Any]:
    status_dir = pg.work / "freeze-status"
    status_dir.mkdir()
    provider = TimedProvider()
    engine = group_snapshot_from_config(SnapshotGroup("freeze", [str(v) for v in pg.volumes]), provider,
                                        pg.consistency(), str(status_dir))
    pg.start_load("freeze_rows")
    windows: list[float] = []
    takes: list[float] = []
    failures: list[str] = []
    for run in range(runs):
        began = time.monotonic()
        try:
            manifest = engine.take()
        except Exception as exc:  # pylint: disable=broad-except  # the window is still recorded in the status
            status = json.loads((status_dir / "snapshot-freeze.json").read_text())
            seconds = (status.get("consistency") or {}).get("seconds")
            failures.append(str(exc)[:300])
            if not seconds:
                raise
            windows.append(seconds)
        else:
            windows.append(manifest["freeze_seconds"])
            if not manifest["consistent"]:
                failures.append(manifest["reason"][:300])
            engine.delete(manifest["id"])
        takes.append(time.monotonic() - began)
        if (run + 1) % 10 == 0 or run + 1 == runs:
            log("freeze: %d runs, window median %.1f ms, max %.1f ms, %d failed" % (
                run + 1, median(windows) * 1000, max(windows) * 1000, len(failures)))
    committed = pg.stop_load()
    p99 = percentile(windows, 0.99)
    return {"runs": runs, "volumes": 2, "rows_committed_during_runs": committed,
            "freeze_window": ms_summary(windows), "take_including_outside_work": ms_summary(takes),
            "snapshots_inside_window": ms_summary([a + b for a, b in zip(provider.seconds[::2], provider.seconds[1::2])]),
            "windows_ms": [round(w * 1000, 2) for w in windows],
            "completed": runs - len(failures), "failures": len(failures), "first_failure": failures[0] if failures else "",
            "met": p99 < TARGETS["freeze"]}


# -- a minute schedule ----------------------------------------------------------------------------

def sustain_job(pg: PgGroup, root: Path) -> tuple[Path, Path]:
    """The array job's configuration (the spec's tier options) and its library's configuration."""
    library_root = pg.fs.mountpoint / "vtl"
    library = library_config(root / "vtl.json", library_root, 2 * 1024 * MIB, slots=64)
    open_fresh_library(library)
    document = {"format": 1, "tier": "array", "dataset": "pgarr", "host": "bench", "status_dir": str(root / "status"),
                "options": {"volumes": [str(v) for v in pg.volumes], "provider": "btrfs", "snapshot_dir": None,
                            "retention": SUSTAIN_RETENTION,
                            "export": {"library_config": str(library), "pool": POOL, "every": 1,
                                       "chain_length": SUSTAIN_CHAIN}},
                "consistency": pg.consistency()}
    (root / "status").mkdir()
    config = root / "pgarr.json"
    config.write_text(json.dumps(document, indent=2))
    os.chmod(config, 0o600)  # it holds the PostgreSQL password, as the job module's file does
    return config, library


def job_command(via: str, config: Path, engine: Path) -> tuple[list[str], dict[str, str]]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
    if via == "cli":
        return ([HOST_PYTHON, "-m", "restorable_agent", "run", "--config", str(config), "--ignore-load",
                 "--ignore-window"], dict(env, PYTHONPATH=str(engine)))
    return [HOST_PYTHON, "-c", RUNNER_CHILD, str(config)], dict(env, PYTHONPATH=str(COLLECTIONS))


def install_engine(engine: Path) -> None:
    """The standalone copy a host runs (install_standalone ships every registered tier)."""
    from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import install_standalone  # noqa: PLC0415
    install_standalone(str(engine))
    os.chmod(engine, 0o755)


def small_writes(pg: PgGroup, minute: int) -> None:
    """Rows into PostgreSQL and a small file into each volume: what changes between two runs."""
    pg.cluster.psql("INSERT INTO sustain_rows (n) SELECT %d * 100 + g FROM generate_series(1, 100) g" % minute, db=APP_DB)
    for volume in pg.volumes:
        directory = volume / "bench-files"
        directory.mkdir(exist_ok=True)
        (directory / ("m%04d.bin" % minute)).write_bytes(os.urandom(SMALL_WRITE))


def finish_run(process: subprocess.Popen, status: int, usage: Any, out: Any, err: Any, started: float,
               began: float) -> dict[str, Any]:
    """The record of a run reaped by os.wait4 (its rusage covers the job's whole process tree)."""
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    CHILDREN.running.remove(process)
    seconds = time.monotonic() - started
    texts = []
    for handle in (out, err):
        handle.seek(0)
        texts.append(handle.read().decode(errors="replace"))
        handle.close()
    try:
        record = json.loads(texts[0]) if texts[0].strip() else {}
    except ValueError:
        record = {}
    code = os.waitstatus_to_exitcode(status)
    exports = [{key: done.get(key) for key in ("kind", "bytes", "seconds", "cartridges")}
               for done in record.get("export") or [] if isinstance(done, dict)]
    return {"started": round(started - began, 1), "seconds": round(seconds, 2),
            "cpu": round(usage.ru_utime + usage.ru_stime, 3), "exit": code,
            "result": record.get("result"), "point": record.get("snapshot_id"), "exports": exports,
            "freeze_seconds": (record.get("consistency") or {}).get("seconds"),
            "reason": "" if record.get("result") == "success" else (record.get("reason") or texts[1].strip())[-400:]}


def bench_sustain(pg: PgGroup, minutes: float, via: str) -> dict[str, Any]:
    root = pg.work / "sustain"
    root.mkdir()
    config, library_json = sustain_job(pg, root)
    engine = root / "engine"
    if via == "cli":
        install_engine(engine)
    argv, env = job_command(via, config, engine)
    pg.cluster.psql("CREATE TABLE sustain_rows (n int PRIMARY KEY, at timestamptz DEFAULT now())", db=APP_DB)
    runs: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    process: subprocess.Popen | None = None
    out = err = None
    started = 0.0
    time.sleep(60 - time.time() % 60)  # the timer's first regular start
    began = time.monotonic()
    end = began + minutes * 60
    next_start, next_write, minute = began, began + 30, 0
    while True:
        now = time.monotonic()
        reaped = os.wait4(process.pid, os.WNOHANG) if process is not None else (0, 0, None)
        if reaped[0]:
            runs.append(finish_run(process, reaped[1], reaped[2], out, err, started, began))
            run = runs[-1]
            log("sustain minute %d: %s in %.1f s, CPU %.2f s%s" % (len(runs), run["result"], run["seconds"], run["cpu"],
                                                                   (" (%s)" % run["reason"]) if run["reason"] else ""))
            process = None
        if now >= end and process is None:
            break
        if now >= next_start and now < end:
            if process is None:
                out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # pylint: disable=consider-using-with
                started = now
                process = CHILDREN.start(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            else:  # a timer does not start a service that still runs
                missed.append({"minute": minute, "why": "previous run still running"})
            next_start += 60
            minute += 1
        if now >= next_write and now < end:
            small_writes(pg, minute)
            next_write += 60
        time.sleep(0.2)
    catalog = catalog_points(library_json, "pgarr")
    for run in runs:
        if run["exit"] or run["result"] != "success":
            missed.append({"minute": int(run["started"] // 60), "why": "run failed: %s" % run["reason"]})
        elif run["point"] and catalog is not None and run["point"] not in catalog:
            missed.append({"minute": int(run["started"] // 60), "why": "point %s not in the catalog" % run["point"]})
    cpus = [r["cpu"] for r in runs]
    seconds = [r["seconds"] for r in runs]
    windows = [r["freeze_seconds"] for r in runs if r["freeze_seconds"] is not None]
    command = " ".join(argv[:3] + ["...", argv[-1]]) if via == "runner" else " ".join(argv)
    return {"minutes": minutes, "via": via, "command": command,
            "runs": runs, "scheduled": minute, "started": len(runs), "missed": missed, "misses": len(missed),
            "catalog_points": len(catalog) if catalog is not None else None,
            "cpu_median": median(cpus), "cpu_max": max(cpus) if cpus else float("nan"),
            "seconds_median": median(seconds), "seconds_max": max(seconds) if seconds else float("nan"),
            "freeze_window": ms_summary(windows) if windows else None,
            "met": not missed and len(runs) == minute}


def catalog_points(library_json: Path, group: str) -> set[str] | None:
    try:
        library = open_fresh_library(library_json)
        return {str(p.get("point")) for p in library.points(group)}
    except Exception as exc:  # pylint: disable=broad-except  # reported, not fatal
        log("cannot read the catalog: %s" % exc)
        return None


# -- main ---------------------------------------------------------------------------------------

def report(results: dict[str, Any]) -> None:
    lines = []
    if "export" in results:
        r = results["export"]
        figures = (r["stream_mib"], r["bare_mibps"], r["ours_mibps"], r["ratio"], r["ratio_durable"],
                   "met" if r["met"] else "NOT met")
        lines.append("export: %.0f MiB stream; bare send|dd %.1f MiB/s, ours %.1f MiB/s; ratio ours/bare %.3f "
                     "(%.3f to durable); target >= 0.9: %s" % figures)
        if "span_ratio" in r:
            lines.append("export spanning %d cartridges: %.1f MiB/s, ratio %.3f (%.3f to durable)" % (
                r["span_cartridges"], r["span_mibps"], r["span_ratio"], r["span_ratio_durable"]))
    if "restore" in results:
        r = results["restore"]
        figures = (r["bare_mibps"], r["ours_mibps"], r["ratio"], r["ratio_durable"], r["same_stream_sha256"],
                   "met" if r["met"] else "NOT met")
        lines.append("restore: bare cat|receive %.1f MiB/s, ours %.1f MiB/s; ratio %.3f (%.3f to durable); same stream "
                     "%s; target >= 0.9: %s" % figures)
    if "freeze" in results:
        r = results["freeze"]
        w = r["freeze_window"]
        lines.append("freeze: %d runs (%d completed), window median %.1f ms, p99 %.1f ms, max %.1f ms (both btrfs "
                     "snapshots inside: median %.1f ms); %d rows committed meanwhile; target p99 < 100 ms: %s%s" % (
                         r["runs"], r["completed"], w["median_ms"], w["p99_ms"], w["max_ms"],
                         r["snapshots_inside_window"]["median_ms"],
                         r["rows_committed_during_runs"], "met" if r["met"] else "NOT met",
                         ("; first failure: " + r["first_failure"]) if r["failures"] else ""))
    if "sustain" in results:
        r = results["sustain"]
        lines.append("sustain: %.0f min via %s, %d scheduled, %d started, %d missed, %s catalog points; run %.1f s "
                     "median (max %.1f s), CPU of the job's process tree %.2f s median (max %.2f s); freeze window "
                     "median %s ms, max %s ms: %s%s" % (
                         r["minutes"], r["via"], r["scheduled"], r["started"], r["misses"], r["catalog_points"],
                         r["seconds_median"], r["seconds_max"], r["cpu_median"], r["cpu_max"],
                         (r["freeze_window"] or {}).get("median_ms"), (r["freeze_window"] or {}).get("max_ms"),
                         "no missed interval" if r["met"] else "NOT met",
                         ("; first miss: %s" % json.dumps(r["missed"][0])) if r["missed"] else ""))
    for name, error in results.get("errors", {}).items():
        lines.append("%s: not measured: %s" % (name, error))
    print("\n".join(lines))


def run_part(results: dict[str, Any], names: list[str], action: Callable[[], dict[str, Any]]) -> None:
    """A part's figures, or its error: one part failing does not lose the others'."""
    try:
        results.update(action() or {})
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # pylint: disable=broad-except  # reported in the summary
        log("%s failed: %s" % ("/".join(names), exc))
        results.setdefault("errors", {}).update({name: str(exc)[-1500:] for name in names})
    finally:
        CHILDREN.kill_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated, of: " + ", ".join(ALL))
    parser.add_argument("--skip-sustain", action="store_true", help="leave out the sustained minute schedule")
    parser.add_argument("--runs", type=int, help="rounds of export and restore (default 5; quick 2)")
    parser.add_argument("--size-mib", type=int, help="data in the exported subvolume (default 1024; quick 64)")
    parser.add_argument("--span", type=int, default=3, help="cartridges the spanning variant fills (0: none)")
    parser.add_argument("--freeze-runs", type=int, help="group snapshots of the freeze part (default 100; quick 10)")
    parser.add_argument("--sustain-minutes", type=float, help="length of the schedule (default 30; quick 2)")
    parser.add_argument("--sustain-via", choices=["cli", "runner"], default="cli",
                        help="the standalone command line (default) or runner_for in a child process")
    parser.add_argument("--wal-segsize", type=int, default=16,
                        help="PostgreSQL's WAL segment size in MiB (default 16, initdb's; bench/pg_freeze_window.py uses 1)")
    parser.add_argument("--pg-setting", action="append", default=[], type=lambda text: tuple(text.split("=", 1)),
                        metavar="NAME=VALUE", help="a server setting of the bench's cluster (e.g. wal_init_zero=off, "
                        "PostgreSQL's advice for copy-on-write filesystems such as btrfs); repeatable")
    parser.add_argument("--pg-layout", choices=["wal", "tablespace"], default="wal",
                        help="the second volume holds pg_wal (initdb -X, default) or the app database's tablespace")
    parser.add_argument("--quick", action="store_true", help="small and short, for debugging")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(ALL))
    if unknown:
        parser.error("unknown parts: %s" % ", ".join(unknown))
    if args.skip_sustain and "sustain" in parts:
        parts.remove("sustain")
    quick = args.quick
    runs = args.runs or (2 if quick else 5)
    size_mib = args.size_mib or (64 if quick else 1024)
    freeze_runs = args.freeze_runs or (10 if quick else 100)
    minutes = args.sustain_minutes or (2 if quick else 30)
    if os.geteuid():
        raise SystemExit("needs root (loop devices, btrfs send/receive, postgres as its user)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks clean up
    summary: dict[str, Any] = {"parts": parts, "runs": runs, "size_mib": size_mib, "freeze_runs": freeze_runs,
                               "wal_segsize_mib": args.wal_segsize, "pg_settings": dict(args.pg_setting), "pg_layout": args.pg_layout, "span": args.span,
                               "sustain_via": args.sustain_via,
                               "sustain_minutes": minutes, "quick": quick, "nproc": os.cpu_count(),
                               "kernel": os.uname().release, "load_before": os.getloadavg(),
                               "started": utcnow().isoformat(timespec="seconds"), "commit": checkout_state()}
    results: dict[str, Any] = {}
    left = mounts_below(WORK)
    if left:
        raise SystemExit("a killed run left %s mounted: unmount it (and detach its loop device) first" % ", ".join(left))
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    os.chmod(WORK, 0o755)  # postgres traverses it
    try:
        if {"export", "restore"} & set(parts):
            fs = None
            made: list[ExportBench] = []
            try:
                fs = loop_mount(WORK / "tape.img", WORK / "tapefs", "btrfs", max(8192, size_mib * 12))
                chosen = [p for p in ("export", "restore") if p in parts]
                run_part(results, chosen, lambda: made.append(ExportBench(fs, size_mib, args.span)))
                if made and "export" in parts:
                    run_part(results, ["export"], lambda: {"export": bench_export(made[0], runs)})
                if made and "restore" in parts:
                    run_part(results, ["restore"], lambda: {"restore": bench_restore(made[0], runs)})
            finally:
                CHILDREN.kill_all()
                if fs is not None:
                    made.clear()
                    release(fs)
        if {"freeze", "sustain"} & set(parts):
            pg = PgGroup(WORK / "pg", args.wal_segsize, args.pg_layout, dict(args.pg_setting))
            try:
                run_part(results, [p for p in ("freeze", "sustain") if p in parts], pg.start)
                if pg.cluster is not None and "freeze" in parts:
                    run_part(results, ["freeze"], lambda: {"freeze": bench_freeze(pg, freeze_runs)})
                if pg.cluster is not None and "sustain" in parts:
                    run_part(results, ["sustain"], lambda: {"sustain": bench_sustain(pg, minutes, args.sustain_via)})
            finally:
                CHILDREN.kill_all()
                pg.close()
    finally:
        CHILDREN.kill_all()
        shutil.rmtree(WORK, ignore_errors=True)
    summary.update(results=results, load_after=os.getloadavg(), finished=utcnow().isoformat(timespec="seconds"))
    report(results)
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started was stopped by the finally blocks on the way out
        log("interrupted")
        sys.exit(130)
