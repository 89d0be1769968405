"""Benchmark: the CDP tier (btrfs points replicated over SSH, PostgreSQL WAL archiving and
point-in-time restore) against the bare tools, in the same run.

Needs root, btrfs-progs, loop devices, OpenSSH (client and server), PostgreSQL 15, pgbench and
restic. The machinery is the system tests': tests/system/cdp_btrfs (Dataset, Clock), the loop
devices of tests/system/snapshot, the sshd fleet of tests/system/fleet, and tests/system/cdp_pg
(CdpPg and pg_archive_rate's cluster fixture and pgbench method), imported through sys.path. The
standalone engine (runtime/standalone.py install_standalone) is installed once in the work
directory; it is both the source's `python3 -m restorable_agent` and the replica's forced
command. Everything started here is stopped by PID, the filesystems unmounted and the loops
detached at the end (also on failure, Ctrl-C or SIGTERM).

Targets (--targets a,b; default all):

  replication  two btrfs filesystems on loop devices (source, replica), one replica sshd. Each
               round rewrites --change-mib of random data in place in the dataset's subvolume,
               then times (a) the CDP job (the Runner with CdpDriver, in process): snapshot, then
               `btrfs send -p BASE NEW | ssh ... receive NEW` into the replica's forced command;
               the send's own seconds are what the job records (details.replica.sent[].seconds);
               (b) bare `btrfs send -p BASE NEW | ssh ... btrfs receive DIR` of the same two
               points, over the same sshd with the same ssh options (the job's ssh_options and
               the options ReplicaLink adds), logged in with the session key (no forced command).
               `sync` before each. Throughput ratio ours/bare = bare seconds / our seconds, per
               round; target median >= 0.9.
  idle_cpu     user+sys CPU (os.wait4 of the process, with its reaped children) of
               `python3 -m restorable_agent run --config FILE --ignore-load` from the standalone
               copy, nothing changed since the last run, with the replica. Target median <= 0.3 s.
               Also measured, to say where the time goes: `python3 -c pass`, the import of the
               command line (-X importtime), one bare `ssh ... list` to the replica with the
               default and with curve25519 key exchange, and the idle run with
               `ssh_options: [-o KexAlgorithms=curve25519-sha256]`.
  rpo          a writer process rewrites files of the subvolume at --write-mbps (5 MB/s; 64
               files of 5 MB, one per second); the standalone run is started every minute on the
               minute (not while the previous one still runs, as a systemd timer would); every
               5 s the replica's RPO (now - time of the newest point on the replica) is sampled,
               for --rpo-minutes (30; --quick 5). Thinning keeps the filesystems small (points
               older than 5 min: one an hour; none beyond 15 min). Target p99 < 120 s.
  archiver     PostgreSQL 15 with 16 MiB segments (pg_archive_rate's cluster fixture and its
               run_pgbench: pgbench -c 4 -j 2 for --pgbench-seconds, then switch and wait until
               the last segment is archived); archive_command the agent (local WAL store) or
               `cp`, alternating. Rate = WAL written / (pgbench seconds + time to archive the
               rest); ratio agent/cp per round, target median >= 0.8. Also (no target) what each
               drains: BACKLOG segments made while archive_command is '' (PostgreSQL keeps them),
               then the command set and timed until the last is archived (MB/s).
  pitr         on the same cluster archiving with the agent: a base backup by the CDP job into a
               local restic repository, pgbench, the target time, pgbench again; then each round
               (a) pitr.restore (CdpPg.pitr, recovery_target_time) until the server answers with
               recovery ended; (b) by hand: `restic dump SNAP /postgresql/base.tar | tar -x`,
               recovery.signal, postgresql.auto.conf with restore_command `cp` from a plain copy
               of the WAL store, the same recovery target and server settings (port, socket,
               archive_mode=off, hot_standby=off, fsync=off as pitr's durable=False), `pg_ctl
               start -w`, then polled until pg_is_in_recovery() is false. Alternating order;
               ratio a/b per round, target median <= 1.2.

Reports medians and ratios, exits 0 whether or not a target is met; logs go to stderr, the
figures to stdout, the last line of which is a JSON summary.

    .venv/bin/python bench/cdp.py [--targets replication,idle_cpu,rpo,archiver,pitr] [--runs 5]
        [--quick] [--change-mib 256] [--rpo-minutes 30] [--write-mbps 5] [--pgbench-seconds 10]

--quick (for debugging): 2 runs, 64 MiB changes, 5 rpo minutes, 4 s of pgbench; explicit
options still win.
"""
from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
SYSTEM_TESTS = REPO / "tests" / "system"
for _path in (SYSTEM_TESTS / "cdp_pg", SYSTEM_TESTS / "databases", SYSTEM_TESTS / "snapshot",
              SYSTEM_TESTS / "cdp_btrfs", SYSTEM_TESTS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import collection_path  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position  # the checkout's collection

from cdp_btrfs_helpers import Clock, Dataset, must, names_in  # noqa: E402
from loop_helpers import LoopMount, loop_mount  # noqa: E402
from fleet.sshd import AddressAllocator, SshClient, SshFleet, SshKey, start_fleet  # noqa: E402

from ansible_collections.restorable.backup.plugins.module_utils.converge.replica_access import (  # noqa: E402
    DEFAULT_PYTHON, ReplicaEntry)
from ansible_collections.restorable.backup.plugins.module_utils.runtime import cli  # noqa: E402,F401
from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import install_standalone  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp import driver  # noqa: E402,F401

WORK = Path("/var/tmp/restorable-bench/cdp")
HOST_PYTHON = "/usr/bin/python3"
MIB = 1 << 20
FS_MB = 10240  # sparse images: replication keeps every point of its rounds, twice on the replica
TARGETS = {"replication": 0.9, "idle_cpu": 0.3, "rpo": 120.0, "archiver": 0.8, "pitr": 1.2}
ALL = list(TARGETS)
# install_standalone ships the modules loaded: the command line (run, replica-serve, wal) and the tier.
SHIPPED = (cli, driver)
CURVE = ["-o", "KexAlgorithms=curve25519-sha256"]
RPO_THINNING = {"thinning": [{"older_than": 300, "keep_every": 3600}], "max_age": 900}
SAMPLE_SECONDS = 5.0
WRITER_FILES = 64


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S ") + message, file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: a value that was observed)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(-(-fraction * len(ordered) // 1)) - 1))] if ordered else float("nan")


def point_time(name: str) -> datetime.datetime:
    return datetime.datetime.strptime(name, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class RealClock(Clock):
    """The Dataset helper's clock, but the wall clock: point names are real times here."""

    def __call__(self) -> datetime.datetime:
        return utcnow().replace(microsecond=0)

    def advance(self, **delta: float) -> datetime.datetime:
        return self()


def rewrite(path: Path, size: int, chunk: int = 4 * MIB) -> None:
    """size bytes of random data over the start of path, in place: that many changed extents."""
    with open(path, "r+b" if path.exists() else "wb") as handle:
        for _offset in range(0, size, chunk):
            handle.write(os.urandom(chunk))


def timed_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, user+sys CPU seconds of the process tree, stdout) of one command."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.monotonic()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            _pid, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        wall = time.monotonic() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if process.returncode:
        raise RuntimeError("%s exited %d: %s" % (" ".join(argv[:5]), process.returncode, (stderr or stdout)[-1500:]))
    return wall, usage.ru_utime + usage.ru_stime, stdout


def pipeline_seconds(producer: list[str], consumer: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of `producer | consumer`, both checked; env is the producer's."""
    began = time.monotonic()
    first = subprocess.Popen(producer, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    second = subprocess.Popen(consumer, stdin=first.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert first.stdout is not None
    first.stdout.close()  # the consumer holds the pipe alone: producer sees EPIPE if it dies
    _out, second_err = second.communicate(timeout=1800)
    _out, first_err = first.communicate(timeout=60)
    seconds = time.monotonic() - began
    if first.returncode or second.returncode:
        raise RuntimeError("pipeline failed: %s / %s" % (first_err.decode()[-500:], second_err.decode()[-500:]))
    return seconds


# -- the btrfs side -----------------------------------------------------------------------------

class BtrfsBench:
    """Source and replica filesystems, the replica's sshd and the standalone engine."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.source: LoopMount | None = None
        self.replica: LoopMount | None = None
        self.fleet: SshFleet | None = None
        self.engine = work / "engine"
        self.datasets: list[Dataset] = []

    def start(self) -> None:
        self.source = loop_mount(self.work / "source.img", self.work / "source", "btrfs", FS_MB)
        self.replica = loop_mount(self.work / "replica.img", self.work / "replica", "btrfs", FS_MB)
        key = SshKey.generate(self.work / "ssh" / "id_ed25519", "restorable cdp bench")
        control = Path(tempfile.mkdtemp(prefix="rbk-cdp-", dir="/tmp"))
        self.client = SshClient(key=key, control_dir=control)
        self.fleet = start_fleet(1, self.work / "ssh" / "sshd", self.work / "ssh" / "hosts", self.client,
                                 AddressAllocator("127.0.2.2"), prefix="cdpbench")
        install_standalone(str(self.engine))
        os.chmod(self.engine, 0o755)

    @property
    def host(self):
        assert self.fleet is not None
        return self.fleet[0]

    def dataset(self, name: str) -> Dataset:
        """A subvolume, its replica directory and a key whose forced command serves only it."""
        assert self.source is not None and self.replica is not None
        subvolume = self.source.mountpoint / name
        must(["btrfs", "subvolume", "create", subvolume])
        home = self.work / "datasets" / name
        home.mkdir(parents=True)
        key = SshKey.generate(home / "replica.key", "cdp bench %s" % name)
        replica_root = self.replica.mountpoint / "replicas" / "web01" / name
        entry = ReplicaEntry.from_params({"source": "web01", "dataset": name, "path": str(replica_root),
                                          "public_key": key.public.read_text()})
        with open(self.host.base_dir / "authorized_keys", "a", encoding="utf-8") as handle:
            handle.write(entry.authorized_line(str(self.engine), DEFAULT_PYTHON) + "\n")
        (home / "status").mkdir()
        dataset = Dataset(name, subvolume, replica_root, key.private, home / "status", self.host.address,
                          self.host.port, RealClock())
        self.datasets.append(dataset)
        return dataset

    def write_config(self, dataset: Dataset, extra_ssh: list[str] | None = None, **options: Any) -> Path:
        """The job's configuration file, as the policy module writes it for the timer."""
        document = dataset.config(**options).to_dict()
        if extra_ssh:
            document["options"]["replica"]["ssh_options"] = list(extra_ssh) + document["options"]["replica"]["ssh_options"]
        path = self.work / "datasets" / dataset.name / ("job%s.json" % ("-kex" if extra_ssh else ""))
        path.write_text(json.dumps(document, indent=2))
        return path

    def agent_argv(self, config: Path, *python_flags: str) -> list[str]:
        return [HOST_PYTHON, *python_flags, "-m", "restorable_agent", "run", "--config", str(config), "--ignore-load"]

    def agent_env(self) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(self.engine), "LC_ALL": "C.UTF-8"}

    def bare_ssh(self, dataset: Dataset, command: str, extra: list[str] | None = None) -> list[str]:
        """ssh as the job calls it (its ssh_options, then what ReplicaLink adds), with the session
        key: the same sshd and key exchange, no forced command."""
        return ["ssh", *(extra or []), *dataset.ssh_options(), "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-p", str(dataset.replica_port),
                "-l", "root", "-i", str(self.client.key.private), "-o", "IdentitiesOnly=yes",
                dataset.replica_address, command]

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop_all()
        for mount in (self.replica, self.source):  # subvolumes go with their filesystem
            if mount is not None:
                mount.close()
        if getattr(self, "client", None) is not None:
            shutil.rmtree(self.client.control_dir, ignore_errors=True)


def bench_replication(btrfs: BtrfsBench, runs: int, change_mib: int) -> dict[str, Any]:
    dataset = btrfs.dataset("repl")
    config = dataset.config()
    data = dataset.subvolume / "data.bin"
    rewrite(data, change_mib * MIB)
    seed = dataset.run(config)  # the full send that starts the replica's chain, untimed
    if not seed.ok:
        raise RuntimeError("seeding run failed: %s" % seed.reason)
    bare_dir = dataset.replica_root.parent / "bare-repl"
    bare_dir.mkdir(parents=True)
    pipeline_seconds(["btrfs", "send", "-q", str(dataset.snapshot_dir / seed.snapshot_id)],
                     btrfs.bare_ssh(dataset, "btrfs receive %s" % bare_dir))
    base = seed.snapshot_id
    rounds: list[dict[str, float]] = []
    for index in range(runs):
        rewrite(data, change_mib * MIB)
        os.sync()
        began = time.monotonic()
        record = dataset.run(config)
        job = time.monotonic() - began
        if not record.ok:
            raise RuntimeError("run failed: %s" % record.reason)
        sent = record.details["replica"]["sent"]
        if [(s["point"], s["parent"]) for s in sent] != [(record.snapshot_id, base)]:
            raise RuntimeError("expected one incremental send from %s, the job sent %s" % (base, sent))
        os.sync()
        bare = pipeline_seconds(["btrfs", "send", "-q", "-p", str(dataset.snapshot_dir / base),
                                 str(dataset.snapshot_dir / record.snapshot_id)],
                                btrfs.bare_ssh(dataset, "btrfs receive %s" % bare_dir))
        os.sync()
        rounds.append({"job": job, "send": sent[0]["seconds"], "bare": bare})
        log("replication round %d: job %.2f s, its send %.2f s, bare %.2f s (%d MiB changed)" % (
            index + 1, job, sent[0]["seconds"], bare, change_mib))
        base = record.snapshot_id
    mib = float(change_mib)
    send_ratios = [r["bare"] / r["send"] for r in rounds]
    job_ratios = [r["bare"] / r["job"] for r in rounds]
    return {"change_mib": change_mib, "rounds": rounds,
            "send_mibps": median([mib / r["send"] for r in rounds]), "job_mibps": median([mib / r["job"] for r in rounds]),
            "bare_mibps": median([mib / r["bare"] for r in rounds]),
            "ratio_send": median(send_ratios), "ratio_job": median(job_ratios),
            "ratios_send": send_ratios, "ratios_job": job_ratios,
            "met": median(send_ratios) >= TARGETS["replication"]}


def cpu_of(argv: list[str], env: dict[str, str]) -> float:
    return timed_child(argv, env)[1]


def importtime(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """python -X importtime of one idle run: total self time and the heaviest top-level imports."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    total, top = 0, []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|", 2))
        total += int(own)
        if not name.startswith(" "):
            top.append((int(cumulative), name.strip()))
    top.sort(reverse=True)
    return {"self_total_s": total / 1e6, "top": [{"module": n, "cumulative_s": c / 1e6} for c, n in top[:8]]}


# The agent's own CPU apart from its children's (ssh, btrfs), printed at exit by a wrapper.
SPLIT = ("import atexit, resource, runpy, sys\n"
         "def report():\n"
         "    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
         "    sys.stderr.write('RUSAGE %f %f\\n' % (own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime))\n"
         "atexit.register(report)\n"
         "sys.argv = ['restorable_agent'] + sys.argv[1:]\n"
         "runpy.run_module('restorable_agent', run_name='__main__', alter_sys=True)\n")


def split_cpu(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(the python process's own CPU, its reaped children's) of one run through SPLIT."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    line = [line for line in result.stderr.splitlines() if line.startswith("RUSAGE ")]
    if result.returncode or not line:
        raise RuntimeError("split run failed: %s" % result.stderr[-1500:])
    own, kids = line[-1].split()[1:]
    return float(own), float(kids)


def bench_idle_cpu(btrfs: BtrfsBench, runs: int) -> dict[str, Any]:
    dataset = btrfs.dataset("idle")
    dataset.write("data.txt", "idle")
    env = btrfs.agent_env()
    configs = {"default": btrfs.write_config(dataset), "curve25519": btrfs.write_config(dataset, extra_ssh=CURVE)}
    timed_child(btrfs.agent_argv(configs["default"]), env)  # first point and its full send, untimed
    samples: dict[str, list[float]] = {"default": [], "curve25519": [], "wall_default": []}
    statuses = []
    for _round in range(runs):
        for variant in ("default", "curve25519"):
            time.sleep(1.1)  # point names have one-second resolution
            wall, cpu, stdout = timed_child(btrfs.agent_argv(configs[variant]), env)
            status = json.loads(stdout)
            if status.get("result") not in ("success", "skipped") and not status.get("ok", False):
                raise RuntimeError("idle run did not succeed: %s" % stdout[-1500:])
            samples[variant].append(cpu)
            if variant == "default":
                samples["wall_default"].append(wall)
                statuses.append({k: status.get(k) for k in ("result", "snapshot_id", "duration_seconds")})
        log("idle_cpu round: default %.3f s CPU (%.2f s wall), curve25519 %.3f s CPU" % (
            samples["default"][-1], samples["wall_default"][-1], samples["curve25519"][-1]))
    # Where the time goes: the interpreter, the imports, one ssh call of each key exchange.
    parts: dict[str, list[float]] = {"python_c_pass": [], "import_cli": [], "ssh_list_default": [],
                                     "ssh_list_curve25519": [], "run_python_self": [], "run_children": []}
    for _round in range(runs):
        parts["python_c_pass"].append(cpu_of([HOST_PYTHON, "-c", "pass"], env))
        parts["import_cli"].append(cpu_of([HOST_PYTHON, "-c", "import restorable_agent.runtime.cli"], env))
        time.sleep(1.1)
        own, kids = split_cpu([HOST_PYTHON, "-c", SPLIT] + btrfs.agent_argv(configs["default"])[3:], env)
        parts["run_python_self"].append(own)
        parts["run_children"].append(kids)
        parts["ssh_list_default"].append(cpu_of(btrfs.bare_ssh(dataset, "true"), env))
        parts["ssh_list_curve25519"].append(cpu_of(btrfs.bare_ssh(dataset, "true", CURVE), env))
    kex = subprocess.run(btrfs.bare_ssh(dataset, "true")[:1] + ["-v"] + btrfs.bare_ssh(dataset, "true")[1:],
                         env=env, capture_output=True, text=True, timeout=60, check=False).stderr
    chosen = [line.split("kex: algorithm:")[1].strip() for line in kex.splitlines() if "kex: algorithm:" in line]
    time.sleep(1.1)
    imports = importtime(btrfs.agent_argv(configs["default"], "-X", "importtime"), env)
    figure = median(samples["default"])
    return {"cpu_default": figure, "cpu_curve25519": median(samples["curve25519"]),
            "wall_default": median(samples["wall_default"]), "runs": samples, "statuses": statuses,
            "parts": {name: median(values) for name, values in parts.items()}, "parts_runs": parts,
            "default_kex": chosen[:1], "imports": imports,
            "met": figure <= TARGETS["idle_cpu"], "met_with_curve25519": median(samples["curve25519"]) <= TARGETS["idle_cpu"]}


def writer(directory: str, mbps: float, stop: Any) -> None:
    """Rewrite WRITER_FILES files round robin, one whole file (mbps MB) per second, 1 MB at a time."""
    chunk = 1000 * 1000
    per_file = int(mbps)
    began = time.monotonic()
    written = 0
    index = 0
    while not stop.is_set():
        path = os.path.join(directory, "load%02d.bin" % (index % WRITER_FILES))
        with open(path, "wb") as handle:
            for _part in range(per_file):
                handle.write(os.urandom(chunk))
                written += chunk
                pause = began + written / (mbps * chunk) - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        index += 1


def bench_rpo(btrfs: BtrfsBench, minutes: float, mbps: float) -> dict[str, Any]:
    dataset = btrfs.dataset("rpo")
    env = btrfs.agent_env()
    config = btrfs.write_config(dataset, **RPO_THINNING)
    load_dir = dataset.subvolume / "load"
    load_dir.mkdir()
    stop = multiprocessing.Event()
    load = multiprocessing.Process(target=writer, args=(str(load_dir), mbps, stop), daemon=True)
    load.start()
    runs: list[dict[str, Any]] = []
    samples: list[float] = []
    process: subprocess.Popen | None = None
    started = 0.0
    out = None
    try:
        time.sleep(10)
        timed_child(btrfs.agent_argv(config), env)  # the replica's first point, untimed
        # Measure from the next minute on: the timer's first regular start.
        wait = 60 - time.time() % 60
        time.sleep(wait)
        began = time.monotonic()
        end = began + minutes * 60
        next_start = began
        next_sample = began
        while True:
            now = time.monotonic()
            if process is not None:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    out.seek(0)
                    try:
                        record = json.loads(out.read().decode(errors="replace"))
                    except ValueError:
                        record = {}
                    out.close()
                    replica = record.get("replica") or {}
                    runs.append({"started": round(started - began, 1), "seconds": round(now - started, 2),
                                 "cpu": round(usage.ru_utime + usage.ru_stime, 2),
                                 "exit": os.waitstatus_to_exitcode(status), "result": record.get("result"),
                                 "sent_seconds": [s.get("seconds") for s in replica.get("sent") or []]})
                    process = None
            if now >= end and process is None:
                break
            if now >= next_start and now < end:
                if process is None:
                    out = tempfile.TemporaryFile()
                    started = now
                    process = subprocess.Popen(btrfs.agent_argv(config), env=env, stdout=out,
                                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                else:  # a timer does not start a service that still runs
                    runs.append({"started": round(now - began, 1), "skipped": "previous run still running"})
                next_start += 60
            if now >= next_sample and now < end:
                names = names_in(dataset.replica_root)
                samples.append((utcnow() - point_time(names[-1])).total_seconds() if names else float("inf"))
                next_sample += SAMPLE_SECONDS
                if len(samples) % 12 == 0:
                    log("rpo: %.1f min, replica age %.0f s, %d runs" % ((now - began) / 60, samples[-1], len(runs)))
            time.sleep(0.2)
        elapsed = time.monotonic() - began
    finally:
        stop.set()
        load.join(30)
        if load.is_alive():
            load.kill()
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(60)
    failed = [run for run in runs if run.get("exit") not in (0, None) or "skipped" in run]
    p99 = percentile(samples, 0.99)
    return {"minutes": round(elapsed / 60, 2), "write_mbps": mbps, "samples": len(samples),
            "p50": percentile(samples, 0.5), "p99": p99, "max": max(samples) if samples else float("nan"),
            "runs": runs, "failed_or_skipped": len(failed),
            "run_seconds_median": median([r["seconds"] for r in runs if "seconds" in r]),
            "run_seconds_max": max([r["seconds"] for r in runs if "seconds" in r] or [float("nan")]),
            "met": p99 < TARGETS["rpo"]}


# -- the PostgreSQL side ------------------------------------------------------------------------

class PgBench:
    """pg_archive_rate's cluster (16 MiB segments, archive_mode on) with the standalone agent, and
    for pitr a restic repository and CdpPg around the same cluster."""

    def __init__(self, work: Path) -> None:
        import pg_archive_rate  # noqa: PLC0415
        from db_helpers import shared_tmpdir  # noqa: PLC0415

        self.speed = pg_archive_rate
        self.root = shared_tmpdir("restorable-bench-cdp-pg-")  # postgres must traverse it
        self.agent = self.root / "agent"
        install_standalone(str(self.agent))
        os.chmod(self.agent, 0o755)
        self.fixture = pg_archive_rate.bench(SimpleNamespace(agent_dir=self.agent))
        self.cluster, self.commands = next(self.fixture)
        self.speed_root = self.cluster.root.parent
        del work

    def close(self) -> None:
        self.fixture.close()  # the fixture's finally: stops the cluster by PID, removes its directory
        shutil.rmtree(self.root, ignore_errors=True)


BACKLOG = 32  # segments of the backlog each archive_command drains (16 MiB each)


def drain_rate(pg: PgBench, command: str) -> float:
    """MB/s an archive_command drains a backlog at: BACKLOG segments made while archiving was
    paused (archive_command '': PostgreSQL keeps the .ready files), then the command set and
    timed until the last of them is archived. What it can do, not what pgbench asks of it."""
    cluster = pg.cluster
    cluster.psql("ALTER SYSTEM SET archive_command = ''")
    cluster.psql("SELECT pg_reload_conf()")
    cluster.psql("CREATE TABLE IF NOT EXISTS bench_switch (at timestamptz)")
    script = "INSERT INTO bench_switch VALUES (now());\nSELECT pg_switch_wal();\n" * BACKLOG
    cluster.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"], input=script)
    ready = int(cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"))
    size = int(cluster.psql("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'"))
    began = time.monotonic()
    pg.speed.use(cluster, command)  # sets it, reloads, switches once more and waits until all is archived
    return (ready + 1) * size / (time.monotonic() - began) / 1e6


def bench_archiver(pg: PgBench, runs: int, seconds: int) -> dict[str, Any]:
    speed = pg.speed
    speed.SECONDS = seconds  # run_pgbench reads it at call time
    rounds: dict[str, list[dict[str, float]]] = {"cp": [], "agent": []}
    for index in range(runs):
        order = ("cp", "agent") if index % 2 == 0 else ("agent", "cp")
        for name in order:
            speed.use(pg.cluster, pg.commands[name])
            result = speed.run_pgbench(pg.cluster)
            # What archiving kept up with: the WAL written over the time until the last of it was archived.
            result["kept_up"] = result["rate"] * seconds / (seconds + result["drain"])
            rounds[name].append(result)
        log("archiver round %d: cp %.1f MB/s (drain %.2f s), agent %.1f MB/s (drain %.2f s)" % (
            index + 1, rounds["cp"][-1]["kept_up"] / 1e6, rounds["cp"][-1]["drain"],
            rounds["agent"][-1]["kept_up"] / 1e6, rounds["agent"][-1]["drain"]))
    ratios = [a["kept_up"] / c["kept_up"] for a, c in zip(rounds["agent"], rounds["cp"])]
    drained: dict[str, list[float]] = {"cp": [], "agent": []}
    for index in range(runs):
        for name in (("cp", "agent") if index % 2 == 0 else ("agent", "cp")):
            drained[name].append(drain_rate(pg, pg.commands[name]))
        log("archiver backlog round %d: cp %.0f MB/s, agent %.0f MB/s" % (index + 1, drained["cp"][-1], drained["agent"][-1]))
    backlog_ratios = [a / c for a, c in zip(drained["agent"], drained["cp"])]
    return {"seconds": seconds, "rounds": rounds, "ratios": ratios, "ratio": median(ratios),
            "backlog_mbps": {name: median(values) for name, values in drained.items()}, "backlog_runs": drained,
            "backlog_ratios": backlog_ratios, "backlog_ratio": median(backlog_ratios),
            "cp_mbps": median([r["kept_up"] / 1e6 for r in rounds["cp"]]),
            "agent_mbps": median([r["kept_up"] / 1e6 for r in rounds["agent"]]),
            "pgbench_wal_mbps": {name: median([r["rate"] / 1e6 for r in rows]) for name, rows in rounds.items()},
            "met": median(ratios) >= TARGETS["archiver"]}


def _hand_restore(pg: PgBench, cdp: Any, target: str, walcopy: Path, sandbox: Path) -> tuple[float, Any]:
    """The restore an operator would do; (seconds, stop callable)."""
    from cdp_pg_helpers import chown  # noqa: PLC0415
    from db_helpers import free_port, pg_bindir  # noqa: PLC0415

    began = time.monotonic()
    data = sandbox / "data"
    data.mkdir(parents=True, mode=0o700)
    chown(sandbox)
    os.chmod(sandbox, 0o711)
    base = cdp.bases()[0]
    env = {"PATH": os.environ["PATH"], "RESTIC_PASSWORD_FILE": str(cdp.password_file), "RESTIC_CACHE_DIR": str(pg.root / "cache")}
    pipeline_seconds(["restic", "-r", str(cdp.repo_path), "dump", base.id, "/postgresql/base.tar"],
                     ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", "tar", "-x", "-f", "-",
                      "-C", str(data)], env)
    (data / "pg_wal" / "archive_status").mkdir(parents=True, exist_ok=True)
    (data / "recovery.signal").touch()
    port = free_port()
    with open(data / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write("port = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\narchive_mode = off\n"
                   "hot_standby = off\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                   "restore_command = 'cp %s/%%f %%p'\nrecovery_target_time = '%s'\n"
                   "recovery_target_action = promote\n" % (port, sandbox, walcopy, target))
    chown(sandbox)
    pg_ctl = [str(pg_bindir() / "pg_ctl"), "-D", str(data), "-l", str(sandbox / "postgresql.log"), "-w", "-t", "600"]
    as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    pg_env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PGTZ": "UTC", "HOME": str(sandbox)}
    subprocess.run(as_pg + pg_ctl + ["start"], env=pg_env, check=True, capture_output=True, cwd=str(sandbox))
    query = as_pg + [str(pg_bindir() / "psql"), "-X", "-A", "-t", "-h", str(sandbox), "-p", str(port), "-U", "postgres",
                     "-c", "SELECT pg_is_in_recovery()"]
    while subprocess.run(query, env=pg_env, capture_output=True, text=True, check=False).stdout.strip() != "f":
        time.sleep(0.1)
    seconds = time.monotonic() - began

    def stop() -> None:
        subprocess.run(as_pg + pg_ctl + ["-m", "fast", "stop"], env=pg_env, check=False, capture_output=True)
    return seconds, stop


def bench_pitr(pg: PgBench, runs: int, seconds: int) -> dict[str, Any]:
    from cdp_pg_helpers import DATASET, CdpPg, chown, write_owned  # noqa: PLC0415
    from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal import pitr  # noqa: PLC0415
    from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiver import archiver_document  # noqa: PLC0415
    from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.settings import archive_command  # noqa: PLC0415

    speed = pg.speed
    speed.SECONDS = seconds
    # CdpPg's jobs are dataset pgmain: an archiver configuration and a store of its own for it.
    (pg.root / "store").mkdir()
    store = chown(pg.root / "store")
    config = write_owned(pg.root / "archiver.json", json.dumps(archiver_document(
        DATASET, {"type": "local", "path": str(store)})), mode=0o644)
    password = write_owned(pg.root / "restic.password", "cdp-bench-restic-password\n", user="root")
    repo = pg.root / "repo"
    subprocess.run(["restic", "-r", str(repo), "init"], env={"PATH": os.environ["PATH"], "RESTIC_PASSWORD_FILE": str(password)},
                   check=True, capture_output=True)
    cdp = CdpPg(pg.root, pg.cluster, {}, pg.agent, config, {"type": "local", "path": str(store)}, repo, password, None)
    speed.use(pg.cluster, archive_command(str(config), str(pg.agent)))
    record = cdp.run("base_backup")
    if not record.ok:
        raise RuntimeError("base backup failed: %s" % record.reason)
    first = speed.run_pgbench(pg.cluster)
    target_text = pg.cluster.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(0.5)
    speed.run_pgbench(pg.cluster)  # WAL beyond the target: recovery must stop, not run out
    target = datetime.datetime.strptime(target_text[:-3], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
    walcopy = pg.root / "walcopy"
    shutil.copytree(store, walcopy)
    subprocess.run(["chown", "-R", "postgres:postgres", str(walcopy)], check=True)
    wal_mb = sum(p.stat().st_size for p in walcopy.iterdir() if not p.name.endswith(".sha256")) / 1e6
    rounds: dict[str, list[float]] = {"ours": [], "hand": []}
    for index in range(runs):
        order = ("ours", "hand") if index % 2 == 0 else ("hand", "ours")
        for name in order:
            sandbox = pg.root / "sandboxes" / ("%s%d" % (name, index))
            if name == "ours":
                began = time.monotonic()
                server = cdp.pitr(pitr.RecoveryTarget(kind="time", time=target), sandbox.name)
                rounds["ours"].append(time.monotonic() - began)
                stop: Callable[[], None] = server.stop
            else:
                took, stop = _hand_restore(pg, cdp, target_text, walcopy, sandbox)
                rounds["hand"].append(took)
            stop()
            shutil.rmtree(sandbox, ignore_errors=True)
        log("pitr round %d: ours %.2f s, by hand %.2f s" % (index + 1, rounds["ours"][-1], rounds["hand"][-1]))
    ratios = [o / h for o, h in zip(rounds["ours"], rounds["hand"])]
    return {"rounds": rounds, "ratios": ratios, "ratio": median(ratios), "ours": median(rounds["ours"]),
            "hand": median(rounds["hand"]), "wal_mb_in_store": round(wal_mb, 1),
            "wal_mb_to_target": round(first["rate"] * seconds / 1e6, 1), "met": median(ratios) <= TARGETS["pitr"]}


# -- main ---------------------------------------------------------------------------------------

def report(results: dict[str, Any]) -> None:
    lines = []
    if "replication" in results:
        r = results["replication"]
        lines.append("replication: %d MiB per point; send ours %.1f MiB/s, whole job %.1f MiB/s, bare %.1f MiB/s; "
                     "ratio ours/bare %.3f (send), %.3f (whole job); target >= 0.9: %s" % (
                         r["change_mib"], r["send_mibps"], r["job_mibps"], r["bare_mibps"], r["ratio_send"], r["ratio_job"],
                         "met" if r["met"] else "NOT met"))
    if "idle_cpu" in results:
        r = results["idle_cpu"]
        lines.append("idle_cpu: %.3f s CPU (%.3f s with curve25519 kex), wall %.2f s; parts %s; imports %.3f s; "
                     "target <= 0.3 s: %s" % (r["cpu_default"], r["cpu_curve25519"], r["wall_default"],
                                              json.dumps(r["parts"]), r["imports"]["self_total_s"],
                                              "met" if r["met"] else "NOT met"))
    if "rpo" in results:
        r = results["rpo"]
        figures = (r["minutes"], r["write_mbps"], r["samples"], r["p50"], r["p99"], r["max"], len(r["runs"]),
                   r["run_seconds_median"], r["run_seconds_max"], "met" if r["met"] else "NOT met")
        lines.append("rpo: %.1f min at %.0f MB/s, %d samples: p50 %.1f s, p99 %.1f s, max %.1f s; runs %d (median %.1f s, "
                     "max %.1f s); target p99 < 120 s: %s" % figures)
    if "archiver" in results:
        r = results["archiver"]
        lines.append("archiver: under pgbench cp %.1f MB/s, agent %.1f MB/s, ratio %.3f; target >= 0.8: %s; "
                     "draining a backlog of %d segments cp %.0f MB/s, agent %.0f MB/s, ratio %.3f" % (
                         r["cp_mbps"], r["agent_mbps"], r["ratio"], "met" if r["met"] else "NOT met", BACKLOG,
                         r["backlog_mbps"]["cp"], r["backlog_mbps"]["agent"], r["backlog_ratio"]))
    if "pitr" in results:
        r = results["pitr"]
        lines.append("pitr: ours %.2f s, by hand %.2f s, ratio %.3f; target <= 1.2: %s" % (
            r["ours"], r["hand"], r["ratio"], "met" if r["met"] else "NOT met"))
    print("\n".join(lines))


def checkout_state() -> str:
    """HEAD, and whether the plugins differ from it: others change them while benches run."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False).stdout.strip()
    changed = git("status", "--porcelain", "--", "plugins").splitlines()
    return git("rev-parse", "--short", "HEAD") + (" + %d changed plugin file(s)" % len(changed) if changed else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--targets", default=",".join(ALL), help="comma-separated, of: " + ", ".join(ALL))
    parser.add_argument("--runs", type=int, help="rounds per target (default 5; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="small and short, for debugging")
    parser.add_argument("--change-mib", type=int, help="changed data per point for replication (default 256; quick 64)")
    parser.add_argument("--rpo-minutes", type=float, help="length of the rpo measurement (default 30; quick 5)")
    parser.add_argument("--write-mbps", type=float, default=5.0, help="write load of the rpo target (default 5)")
    parser.add_argument("--pgbench-seconds", type=int, help="pgbench -T of archiver and pitr (default 10; quick 4)")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(ALL))
    if unknown:
        parser.error("unknown targets: %s" % ", ".join(unknown))
    quick = args.quick
    runs = args.runs or (2 if quick else 5)
    change_mib = args.change_mib or (64 if quick else 256)
    rpo_minutes = args.rpo_minutes or (5 if quick else 30)
    pg_seconds = args.pgbench_seconds or (4 if quick else 10)
    if os.geteuid():
        raise SystemExit("needs root (loop devices, btrfs receive, the replica's sshd, postgres as its user)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally blocks clean up
    summary: dict[str, Any] = {"targets": targets, "runs": runs, "quick": quick, "nproc": os.cpu_count(),
                               "kernel": os.uname().release, "load_before": os.getloadavg(),
                               "started": utcnow().isoformat(timespec="seconds"), "commit": checkout_state()}
    results: dict[str, Any] = {}
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    try:
        if {"replication", "idle_cpu", "rpo"} & set(targets):
            btrfs = BtrfsBench(WORK)
            try:
                btrfs.start()
                if "replication" in targets:
                    results["replication"] = bench_replication(btrfs, runs, change_mib)
                if "idle_cpu" in targets:
                    results["idle_cpu"] = bench_idle_cpu(btrfs, runs)
                if "rpo" in targets:
                    results["rpo"] = bench_rpo(btrfs, rpo_minutes, args.write_mbps)
            finally:
                btrfs.close()
        if {"archiver", "pitr"} & set(targets):
            pg = PgBench(WORK)
            try:
                if "archiver" in targets:
                    results["archiver"] = bench_archiver(pg, runs, pg_seconds)
                if "pitr" in targets:
                    results["pitr"] = bench_pitr(pg, runs, pg_seconds)
            finally:
                pg.close()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    summary.update(results=results, load_after=os.getloadavg(), finished=utcnow().isoformat(timespec="seconds"))
    report(results)
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
