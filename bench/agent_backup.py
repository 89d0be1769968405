#!/usr/bin/env python
"""Benchmark: a backup through the collection's run path against bare restic, in the same run.

1 GiB of random data (several files, generated once and kept in the work directory) is backed
up into a fresh local restic repository by

  a  bare restic:        restic -r REPO backup --json DATA
  b  the run module:     ansible -i INV localhost -m restorable.backup.run -a "job=bench root=ROOT"
                         (after restorable.backup.apply converged a one-host inventory, so the job
                         configuration, credentials and runtime exist); timed whole, and
     b_task              the run task alone as Ansible times it: from the worker starting it
                         (payload build, transfer, module run) to its result, without the `ansible`
                         CLI start-up, inventory parsing and play setup (bench/callback_plugins/
                         bench_task_timing.py, loaded for b and d only)
  c  the runner:         PYTHONPATH=ROOT/usr/local/lib/restorable python3 -m restorable_agent run
                         --config ROOT/etc/restorable/bench.json   (what the timer runs, no Ansible)
  d  restic via Ansible: ansible -i INV localhost -m ansible.builtin.command
                         -a "restic -r REPO --password-file PW backup --json DATA"
                         the bare tool through the same CLI, so the CLI's fixed cost shows
                         (d - a) apart from the run module's own (b - d); d_task as b_task

then once more with the data unchanged (incremental). Every variant starts from a freshly
initialised repository on the same file system (init is not timed; b and c also from no job
status, so their count of backups since the last prune starts at 0). The dataset's retention is
{last: 7, prune_every: 7}: the run path applies it (restic forget --prune) after every 7th
backup, so neither backup of a round does; bare restic's forget --prune is timed after each of
its backups (a_forget_*) to show what the 7th backup adds, and the "amortised" ratios add a
seventh of it to both sides. The order alternates (a b c d, d c b a, ...) so that drift cancels.
The data stay in the page cache for every run (read once before the first run): the page cache
is not dropped, as that would touch every other process on the machine.

Reports medians and ratios, each against a, and exits 0 whether or not a target is met; the
last line of output is a JSON summary.

    .venv/bin/python bench/agent_backup.py [--runs 5] [--size-mib 1024] [--files 8] [--collections-path DIR]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
HOST_PYTHON = "/usr/bin/python3"
JOB = "bench"
TARGET = "bench-repo"
HOST = "localhost"
RETENTION = {"last": 7, "prune_every": 7}
TASK_TIMING = os.path.join(REPO, "bench", "callback_plugins")
TARGET_RATIO = 1.05
CHUNK = 4 << 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- data -----------------------------------------------------------------------------------


def ensure_data(directory: str, size_mib: int, files: int) -> None:
    """files x size_mib/files MiB of random data; generated once, reused while the size matches."""
    marker = os.path.join(directory, ".complete")
    wanted = "%d MiB in %d files\n" % (size_mib, files)
    try:
        with open(marker, encoding="utf-8") as handle:
            if handle.read() == wanted:
                return
    except FileNotFoundError:
        pass
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    per_file = (size_mib << 20) // files
    log("generating %s of random data in %s" % (wanted.strip(), directory))
    for index in range(files):
        with open(os.path.join(directory, "random-%02d.bin" % index), "wb") as handle:
            left = per_file
            while left:
                block = min(CHUNK, left)
                handle.write(os.urandom(block))
                left -= block
    with open(marker, "w", encoding="utf-8") as handle:
        handle.write(wanted)


def warm(directory: str) -> None:
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as handle:
            while handle.read(CHUNK):
                pass


# -- setup through the collection -------------------------------------------------------------


def write_inventory(work: str, data: str) -> str:
    inventory = os.path.join(work, "inventory")
    os.makedirs(os.path.join(inventory, "group_vars"), exist_ok=True)
    password = os.path.join(work, "repository-password")
    if not os.path.exists(password):
        with open(os.open(password, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as handle:
            handle.write(os.urandom(16).hex() + "\n")
    hosts = {"all": {"hosts": {HOST: {"ansible_connection": "local", "ansible_python_interpreter": HOST_PYTHON}}}}
    group_vars = {
        "agent_root": os.path.join(work, "root"),
        "agent_install_restic": False,  # installed already; the bench times backups, not apt
        "restorable_targets": {TARGET: {
            "type": "local", "path": os.path.join(work, "repo-run"),
            "password": "{{ lookup('ansible.builtin.file', '%s') }}" % password,
        }},
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
        "restorable_datasets": {JOB: {
            "tier": "agent", "paths": [data], "targets": [TARGET], "schedule": "nightly",
            "rpo": "26h", "retention": dict(RETENTION),
        }},
    }
    with open(os.path.join(inventory, "hosts.json"), "w", encoding="utf-8") as handle:
        json.dump(hosts, handle, indent=2)
    with open(os.path.join(inventory, "group_vars", "all.json"), "w", encoding="utf-8") as handle:
        json.dump(group_vars, handle, indent=2)
    return inventory


def environment(work: str, collections_path: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "ANSIBLE_", "PYTHON"))}
    env.update(
        PATH=VENV_BIN + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        XDG_CACHE_HOME=os.path.join(work, "cache"),  # restic's cache, emptied before each run
    )
    if collections_path:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    return env


def collection_version(collections_path: str | None) -> dict:
    """Which code was measured: the checkout's commit, and whether the collection's code differed."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True,
                              check=False).stdout.strip()
    if collections_path:
        return {"collections_path": collections_path}
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": bool(git("status", "--porcelain", "--", "plugins", "roles", "playbooks"))}


def checked(argv: list, env: dict, what: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise SystemExit("%s failed (exit %d): %s\n%s\n%s" % (what, result.returncode, " ".join(argv),
                                                              result.stdout[-3000:], result.stderr[-3000:]))
    return result


# -- the three ways to back up ----------------------------------------------------------------


class Bench:
    def __init__(self, work: str, data: str, inventory: str, collections_path: str | None) -> None:
        self.work = work
        self.data = data
        self.inventory = inventory
        self.root = os.path.join(work, "root")
        self.env = environment(work, collections_path)
        self.password_file = os.path.join(self.root, "etc/restorable/secrets/%s.password" % TARGET)
        self.config = os.path.join(self.root, "etc/restorable/%s.json" % JOB)
        self.status = os.path.join(self.root, "var/lib/restorable/%s.json" % JOB)
        self.run_repo = os.path.join(work, "repo-run")  # named by the job configuration
        self.bare_repo = os.path.join(work, "repo-bare")  # same file system
        self.ansible_restic_repo = os.path.join(work, "repo-ansible-restic")
        self.task_timing = os.path.join(work, "task-timing.jsonl")
        self.ansible_env = dict(self.env, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_CALLBACK_PLUGINS=TASK_TIMING,
                                ANSIBLE_CALLBACKS_ENABLED="bench_task_timing", BENCH_TASK_TIMING_FILE=self.task_timing)
        self.samples: dict = {}
        self.checks: dict = {}

    def restic_env(self) -> dict:
        return dict(self.env, RESTIC_PASSWORD_FILE=self.password_file)

    def fresh(self, repository: str) -> None:
        shutil.rmtree(repository, ignore_errors=True)
        shutil.rmtree(self.env["XDG_CACHE_HOME"], ignore_errors=True)
        checked(["restic", "-r", repository, "init"], self.restic_env(), "restic init")
        os.sync()

    def fresh_job(self) -> None:
        """A fresh repository for the job, and no status of runs into the old one: its count of
        backups since the last prune starts again, so no timed run is a prune_every-th."""
        self.fresh(self.run_repo)
        if os.path.exists(self.status):
            os.unlink(self.status)

    def record(self, key: str, seconds: float) -> None:
        self.samples.setdefault(key, []).append(seconds)

    def timed(self, key: str, argv: list, env: dict, what: str) -> tuple:
        """Wall seconds of the command; its CPU seconds (user + system of it and every process it
        waited for) are recorded under cpu_KEY: they hardly depend on other load on the machine."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = checked(argv, env, what)
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.record("cpu_" + key, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        return seconds, result

    def bare(self) -> None:
        self.fresh(self.bare_repo)
        for phase in ("full", "incremental"):
            backup = ["restic", "-r", self.bare_repo, "backup", "--json", self.data]
            seconds, result = self.timed("a_%s" % phase, backup, self.restic_env(), "bare restic backup")
            summary = _restic_summary(result.stdout)
            self.record("a_%s" % phase, seconds)
            self.checks.setdefault("a_%s_bytes_added" % phase, []).append(summary.get("data_added"))
            self.checks.setdefault("a_%s_bytes_processed" % phase, []).append(summary.get("total_bytes_processed"))
            forget = ["restic", "-r", self.bare_repo, "forget", "--keep-last", str(RETENTION["last"]), "--prune"]
            seconds, _unused = self.timed("a_forget_%s" % phase, forget, self.restic_env(), "bare restic forget --prune")
            self.record("a_forget_%s" % phase, seconds)
            os.sync()

    def module(self) -> None:
        self.fresh_job()
        for phase in ("full", "incremental"):
            argv = ["ansible", "-i", self.inventory, HOST, "-o", "-m", "restorable.backup.run",
                    "-a", "job=%s root=%s" % (JOB, self.root)]
            seconds, result = self.ansible("b", phase, argv)
            status = json.loads(result.stdout.split("=>", 1)[1])["status"]
            self._status("b", phase, seconds, status)
            os.sync()

    def ansible_restic(self) -> None:
        self.fresh(self.ansible_restic_repo)
        for phase in ("full", "incremental"):
            command = "restic -r %s --password-file %s backup --json %s" % (
                self.ansible_restic_repo, self.password_file, self.data)
            argv = ["ansible", "-i", self.inventory, HOST, "-m", "ansible.builtin.command", "-a", command]
            seconds, result = self.ansible("d", phase, argv)
            summary = _restic_summary(result.stdout)
            self.record("d_%s" % phase, seconds)
            self.checks.setdefault("d_%s_bytes_added" % phase, []).append(summary.get("data_added"))
            self.checks.setdefault("d_%s_bytes_processed" % phase, []).append(summary.get("total_bytes_processed"))
            os.sync()

    def ansible(self, variant: str, phase: str, argv: list) -> tuple:
        """Run an ad-hoc ansible command; the task's own seconds are recorded under VARIANT_task_PHASE."""
        if os.path.exists(self.task_timing):
            os.unlink(self.task_timing)
        seconds, result = self.timed("%s_%s" % (variant, phase), argv, self.ansible_env, " ".join(argv[4:6]))
        with open(self.task_timing, encoding="utf-8") as handle:
            tasks = [json.loads(line) for line in handle]
        if len(tasks) != 1 or tasks[0]["status"] != "ok":
            raise SystemExit("expected one successful task, the timing callback saw %s" % tasks)
        self.record("%s_task_%s" % (variant, phase), tasks[0]["seconds"])
        return seconds, result

    def runner(self) -> None:
        self.fresh_job()
        env = dict(self.env, PYTHONPATH=os.path.join(self.root, "usr/local/lib/restorable"))
        for phase in ("full", "incremental"):
            argv = [HOST_PYTHON, "-m", "restorable_agent", "run", "--config", self.config]
            seconds, result = self.timed("c_%s" % phase, argv, env, "python3 -m restorable_agent run")
            self._status("c", phase, seconds, json.loads(result.stdout))
            os.sync()

    def _status(self, variant: str, phase: str, seconds: float, status: dict) -> None:
        if status.get("result") != "success":
            raise SystemExit("%s %s backup did not succeed: %s" % (variant, phase, status))
        self.record("%s_%s" % (variant, phase), seconds)
        self.checks.setdefault("%s_%s_bytes_added" % (variant, phase), []).append(status.get("bytes_added"))
        self.checks.setdefault("%s_%s_bytes_processed" % (variant, phase), []).append(status.get("bytes_processed"))
        # The runner's own account of its run (lock to status), without interpreter start-up.
        self.record("%s_%s_runner_seconds" % (variant, phase), status.get("duration_seconds") or 0.0)


def _restic_summary(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("message_type") == "summary":
                return message
    raise SystemExit("restic printed no summary:\n" + stdout[-2000:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds; each times every variant once (default 5)")
    parser.add_argument("--size-mib", type=int, default=1024, help="random data to back up (default 1024)")
    parser.add_argument("--files", type=int, default=8, help="number of data files (default 8)")
    parser.add_argument("--workdir", default="/var/tmp/restorable-bench/agent-backup",
                        help="data, repositories and the host root live here (kept for reruns)")
    parser.add_argument("--collections-path", help="measure the collection found below this directory "
                        "(ansible_collections/restorable/backup, e.g. an export of a commit) instead of the checkout")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    started = datetime.datetime.now(datetime.timezone.utc)
    work = os.path.abspath(args.workdir)
    data = os.path.join(work, "data")
    os.makedirs(work, exist_ok=True)
    ensure_data(data, args.size_mib, args.files)
    inventory = write_inventory(work, data)
    bench = Bench(work, data, inventory, args.collections_path)
    for stale in (os.path.join(work, "root"), bench.run_repo, bench.bare_repo, bench.ansible_restic_repo):
        shutil.rmtree(stale, ignore_errors=True)

    log("applying the one-host inventory with restorable.backup.apply")
    checked(["ansible-playbook", "-i", inventory, "restorable.backup.apply"], bench.env, "restorable.backup.apply")
    versions = {
        "restic": checked(["restic", "version"], bench.env, "restic version").stdout.split()[1],
        "ansible_core": checked(["ansible", "--version"], bench.env, "ansible --version").stdout.split("\n")[0],
    }
    warm(data)
    variants = {"a": bench.bare, "b": bench.module, "c": bench.runner, "d": bench.ansible_restic}
    load_before = os.getloadavg()
    for round_ in range(args.runs):
        order = "abcd" if round_ % 2 == 0 else "dcba"
        for variant in order:
            variants[variant]()
        log("round %d/%d (%s): %s" % (round_ + 1, args.runs, " ".join(order), ", ".join(
            "%s %.2f s" % (k, v[-1]) for k, v in sorted(bench.samples.items()) if k[0] in "abcd" and "runner" not in k)))
    load_after = os.getloadavg()

    samples = bench.samples
    med = {k: statistics.median(v) for k, v in samples.items()}
    summary: dict = {
        "bench": "agent_backup",
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": args.runs,
        "data_bytes": args.size_mib << 20,
        "data_files": args.files,
        "versions": versions,
        "collection": collection_version(args.collections_path),
        "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "median_seconds": {k: round(v, 3) for k, v in sorted(med.items())},
        "samples_seconds": {k: [round(x, 3) for x in v] for k, v in sorted(samples.items())},
        "bytes": {k: sorted(set(v)) for k, v in sorted(bench.checks.items())},
    }

    def paired(numerator: list, denominator: list) -> float:
        """Median of the per-round ratios: the variants of one round ran side by side in time."""
        return round(statistics.median(n / d for n, d in zip(numerator, denominator)), 3)

    def difference(smaller: str, larger: str, phase: str) -> float:
        """Median of the per-round differences larger - smaller."""
        return round(statistics.median(x - y for x, y in zip(samples["%s_%s" % (larger, phase)],
                                                             samples["%s_%s" % (smaller, phase)])), 3)

    prune_every = RETENTION["prune_every"]
    ratios = {}
    for phase in ("full", "incremental"):
        a, forget = samples["a_%s" % phase], samples["a_forget_%s" % phase]
        r = ratios[phase] = {}
        for variant in ("b", "b_task", "c", "d", "d_task"):
            x = samples["%s_%s" % (variant, phase)]
            r["%s_over_a" % variant] = round(med["%s_%s" % (variant, phase)] / med["a_%s" % phase], 3)
            r["%s_over_a_paired" % variant] = paired(x, a)
        for variant in ("b", "c", "d"):
            r["cpu_%s_over_a" % variant] = round(med["cpu_%s_%s" % (variant, phase)] / med["cpu_a_%s" % phase], 3)
        for variant in ("b", "c"):
            # The prune that every prune_every-th run does, spread over the runs (and added to bare restic too).
            share = [f / prune_every for f in forget]
            r["%s_over_a_amortised_prune_paired" % variant] = paired(
                [x + y for x, y in zip(samples["%s_%s" % (variant, phase)], share)], [x + y for x, y in zip(a, share)])
        r["ansible_cli_d_minus_d_task_seconds"] = difference("d_task", "d", phase)
        r["ansible_cli_b_minus_b_task_seconds"] = difference("b_task", "b", phase)
        r["run_module_b_task_minus_d_task_seconds"] = difference("d_task", "b_task", phase)
        r["ansible_b_minus_c_seconds"] = difference("c", "b", phase)
        r["ansible_b_minus_c_cpu_seconds"] = difference("cpu_c", "cpu_b", phase)
    ratios["full"]["mib_per_s"] = {v: round(args.size_mib / med["%s_full" % v], 1) for v in "abcd"}
    summary["ratios"] = ratios
    summary["target"] = {
        "b_over_a_max": TARGET_RATIO,
        "met_full": ratios["full"]["b_over_a"] <= TARGET_RATIO,
        "met_incremental": ratios["incremental"]["b_over_a"] <= TARGET_RATIO,
        "task_met_full": ratios["full"]["b_task_over_a"] <= TARGET_RATIO,
        "task_met_incremental": ratios["incremental"]["b_task_over_a"] <= TARGET_RATIO,
    }

    for phase in ("full", "incremental"):
        r = ratios[phase]
        log("%-11s  a bare %.2f s (forget --prune %.2f s)  b ansible run %.2f s (task %.2f s)  c runner %.2f s  "
            "d ansible restic %.2f s (task %.2f s)" % (
                phase, med["a_%s" % phase], med["a_forget_%s" % phase], med["b_%s" % phase],
                med["b_task_%s" % phase], med["c_%s" % phase], med["d_%s" % phase], med["d_task_%s" % phase]))
        log("%-11s  over a: b %.3f (paired %.3f, cpu %.3f)  b_task %.3f  c %.3f (paired %.3f)  d %.3f  d_task %.3f  "
            "amortised prune: b %.3f c %.3f" % (
                "", r["b_over_a"], r["b_over_a_paired"], r["cpu_b_over_a"], r["b_task_over_a"], r["c_over_a"],
                r["c_over_a_paired"], r["d_over_a"], r["d_task_over_a"], r["b_over_a_amortised_prune_paired"],
                r["c_over_a_amortised_prune_paired"]))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
