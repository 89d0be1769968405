#!/usr/bin/env python
"""Benchmark: a converged re-apply of the agent tier on 10 hosts against a trivial play.

Starts 10 OpenSSH daemons on loopback addresses (the test fleet of tests/system/fleet/sshd.py:
shared filesystem, one data directory per host), writes an inventory in which every host has
its own agent_root and one or two agent datasets backing up to a local repository in its data
directory, and converges it once with restorable.backup.apply. Then, alternating the order
(A B, B A, ...), it times

  A  ansible-playbook -i INV --forks 10 restorable.backup.apply     (converged: must be changed=0)
  B  ansible-playbook -i INV --forks 10 trivial.yml                 (4 x ansible.builtin.command
                                                                     /bin/true, gather_facts false)

with the same inventory, SSH settings (pipelining, ControlPersist) and forks. Afterwards three
more runs of each, not timed, go through an in-process recorder that logs every module Ansible
executes on a host and every task's duration per host: module invocations per host, and where
the time of a re-apply goes (the recorded run with the median wall time is reported).

Reports medians and ratios and exits 0 whether or not a target is met; the last line of output
is a JSON summary.

    .venv/bin/python bench/reapply_fleet.py [--hosts 10] [--runs 5] [--forks 10] [--collections-path DIR]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

TARGET_RATIO = 1.5
TARGET_MODULES_PER_HOST = 8
PLAYBOOK_TIMEOUT = 600
_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")

TRIVIAL_PLAY = """\
---
- name: Trivial play (reference)
  hosts: all
  gather_facts: false
  tasks:
%s
""" % "".join("""\
    - name: Task %d
      ansible.builtin.command: /bin/true
      changed_when: false
""" % (i + 1) for i in range(4))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- recorder: runs ansible-playbook in this process with two functions wrapped ---------------


def record_playbook(log_path: str, argv: list) -> int:
    """ansible-playbook ARGV, logging each module execution and each task per host (JSON lines).

    Workers are forked from this process, so they inherit the wrappers."""
    from ansible.cli.playbook import PlaybookCLI
    from ansible.executor.task_executor import TaskExecutor
    from ansible.plugins.action import ActionBase

    current = {"host": None}

    def write(event: dict) -> None:
        with open(log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")

    run_task = TaskExecutor.run

    def task_run(self):  # type: ignore[no-untyped-def]
        current["host"] = self._host.name
        start = time.time()
        try:
            return run_task(self)
        finally:
            write({"kind": "task", "host": self._host.name, "task": self._task.get_name(),
                   "action": self._task.action, "start": start, "end": time.time()})

    execute_module = ActionBase._execute_module

    def module_run(self, module_name=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.time()
        try:
            return execute_module(self, module_name, *args, **kwargs)
        finally:
            write({"kind": "module", "host": current["host"], "task": self._task.get_name(),
                   "module": module_name or self._task.action, "start": start, "end": time.time()})

    TaskExecutor.run = task_run
    ActionBase._execute_module = module_run
    start = time.time()
    try:
        return PlaybookCLI.cli_executor(["ansible-playbook"] + argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        write({"kind": "playbook", "start": start, "end": time.time()})


# -- inventory ---------------------------------------------------------------------------------


def write_inventory(directory: str, fleet, password_file: str) -> dict:
    """Every host: agent_root and repository in its data dir; odd hosts one dataset, even two.

    JSON files: the policy validator refuses integers that Ansible's YAML loader tagged."""
    from fleet.inventory import inventory_data

    group_vars = {
        "agent_root": "{{ fleet_data_dir }}/root",
        "restorable_targets": {"local-repo": {
            "type": "local", "path": "{{ fleet_data_dir }}/repository",
            "password": "{{ lookup('ansible.builtin.file', '%s') }}" % password_file,
        }},
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00", "jitter": "1h"}},
    }
    for sub in ("group_vars", "host_vars"):
        os.makedirs(os.path.join(directory, sub), exist_ok=True)
    _write_json(os.path.join(directory, "hosts.json"), inventory_data({"fleet": fleet.hosts}))
    _write_json(os.path.join(directory, "group_vars", "all.json"), group_vars)
    datasets_per_host = {}
    for index, host in enumerate(fleet.hosts):
        datasets = {}
        for name in ("app", "www")[: 1 + index % 2]:
            source = host.data_dir / "srv" / name
            source.mkdir(parents=True, exist_ok=True)
            for n in range(20):
                (source / ("file-%02d.txt" % n)).write_text("%s %s %d\n" % (host.name, name, n) * 100)
            datasets[name] = {"tier": "agent", "paths": [str(source)], "targets": ["local-repo"],
                              "schedule": "nightly", "rpo": "26h", "retention": {"last": 7, "daily": 7}}
        _write_json(os.path.join(directory, "host_vars", host.name + ".json"), {"restorable_datasets": datasets})
        datasets_per_host[host.name] = len(datasets)
    return datasets_per_host


def _write_json(path: str, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)


# -- running plays -----------------------------------------------------------------------------


def parse_recap(stdout: str) -> dict:
    lines = stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("PLAY RECAP")]
    recap = {}
    for line in lines[starts[-1] + 1:] if starts else []:
        match = _RECAP_LINE.match(line.strip())
        if match:
            recap[match["host"]] = {k: int(v) for k, v in (p.split("=") for p in match["counts"].split())}
    return recap


def play(argv: list, env: dict) -> tuple:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL, timeout=PLAYBOOK_TIMEOUT)
    seconds = time.perf_counter() - started
    recap = parse_recap(result.stdout)
    if result.returncode != 0 or not recap or any(r.get("failed") or r.get("unreachable") for r in recap.values()):
        raise SystemExit("`%s` failed (exit %d):\n%s\n%s" % (
            " ".join(argv), result.returncode, result.stdout[-4000:], result.stderr[-2000:]))
    return seconds, recap


# -- the recorder's log, summarised ------------------------------------------------------------


def read_events(path: str) -> list:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def profile(events: list) -> dict:
    playbook = next(e for e in events if e["kind"] == "playbook")
    tasks = [e for e in events if e["kind"] == "task"]
    modules = [e for e in events if e["kind"] == "module"]
    per_host: dict = defaultdict(list)
    for event in modules:
        per_host[event["host"]].append(event["module"])
    by_task: dict = {}
    for event in tasks:
        entry = by_task.setdefault(event["task"], {"action": event["action"], "hosts": 0, "first_start": event["start"],
                                                   "last_end": event["end"], "host_seconds": 0.0,
                                                   "module_seconds": 0.0, "modules": Counter()})
        entry["hosts"] += 1
        entry["first_start"] = min(entry["first_start"], event["start"])
        entry["last_end"] = max(entry["last_end"], event["end"])
        entry["host_seconds"] += event["end"] - event["start"]
    for event in modules:
        entry = by_task.get(event["task"])
        if entry is not None:
            entry["module_seconds"] += event["end"] - event["start"]
            entry["modules"][event["module"]] += 1
    wall = playbook["end"] - playbook["start"]
    spans = sorted((e["first_start"], e["last_end"]) for e in by_task.values())
    covered, reach = 0.0, playbook["start"]
    for start, end in spans:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    task_rows = []
    for name, entry in sorted(by_task.items(), key=lambda item: item[1]["first_start"]):
        task_rows.append({
            "task": name, "action": entry["action"], "hosts": entry["hosts"],
            "wall_seconds": round(entry["last_end"] - entry["first_start"], 3),
            "mean_host_seconds": round(entry["host_seconds"] / entry["hosts"], 3),
            "mean_module_seconds": round(entry["module_seconds"] / entry["hosts"], 3),
            "modules_per_host": {k: v / entry["hosts"] for k, v in sorted(entry["modules"].items())},
        })
    counts = {host: len(names) for host, names in sorted(per_host.items())}
    return {
        "wall_seconds": round(wall, 3),
        "outside_tasks_seconds": round(wall - covered, 3),  # start-up, inventory, play set-up, exit
        "tasks": task_rows,
        "module_invocations_per_host": counts,
        "max_module_invocations_per_host": max(counts.values()) if counts else 0,
        "modules_of_a_host": per_host[sorted(per_host)[0]] if per_host else [],
    }


def collection_version(collections_path: str | None) -> dict:
    """Which code was measured: the checkout's commit, and whether the collection's code differed."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", REPO] + list(args), capture_output=True, text=True,
                              check=False).stdout.strip()
    if collections_path:
        return {"collections_path": collections_path}
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_changes": bool(git("status", "--porcelain", "--", "plugins", "roles", "playbooks"))}


def time_restic_open(repository: str, password_file: str) -> float:
    """One `restic cat config` (what the repository module runs per repository on every apply)."""
    env = dict(os.environ, RESTIC_PASSWORD_FILE=password_file)
    started = time.perf_counter()
    subprocess.run(["restic", "-r", repository, "--no-cache", "cat", "config"], env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - started


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each play (default 5)")
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--first-address", default="127.0.1.2",
                        help="loopback address of the first host (default 127.0.1.2, apart from the tests' 127.0.0.x)")
    parser.add_argument("--workdir", default="/var/tmp/restorable-bench",
                        help="a fresh directory is made below it and removed at the end")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--collections-path", help="measure the collection found below this directory "
                        "(ansible_collections/restorable/backup, e.g. an export of a commit) instead of the checkout")
    parser.add_argument("--record", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.record:
        return record_playbook(args.record[0], args.record[1:])
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from fleet.inventory import ansible_bin, ansible_env
    from fleet.sshd import AddressAllocator, SshClient, SshKey, start_fleet

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    os.makedirs(args.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="reapply-fleet-", dir=args.workdir)
    control_dir = tempfile.mkdtemp(prefix="rbk-bench-cp-", dir="/tmp")  # short socket paths
    fleet = None
    try:
        key = SshKey.generate(Path(work, "id_ed25519"), "restorable bench")
        client = SshClient(key=key, control_dir=Path(control_dir))
        started = time.monotonic()
        fleet = start_fleet(args.hosts, base_dir=Path(work, "sshd"), data_root=Path(work, "hosts"),
                            client=client, addresses=AddressAllocator(args.first_address), prefix="bench")
        addresses = ", ".join("%s:%d" % (h.address, h.port) for h in fleet)
        log("%d sshd hosts up in %.2f s: %s" % (len(fleet), time.monotonic() - started, addresses))
        password_file = os.path.join(work, "repository-password")
        with open(os.open(password_file, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as handle:
            handle.write(os.urandom(16).hex() + "\n")
        inventory = os.path.join(work, "inventory")
        datasets = write_inventory(inventory, fleet, password_file)
        trivial = os.path.join(work, "trivial.yml")
        with open(trivial, "w", encoding="utf-8") as handle:
            handle.write(TRIVIAL_PLAY)

        env = ansible_env(**({"ANSIBLE_COLLECTIONS_PATH": args.collections_path} if args.collections_path else {}))
        playbook = str(ansible_bin("ansible-playbook"))
        common = ["-i", inventory, "--forks", str(args.forks)]
        commands = {"apply": common + ["restorable.backup.apply"], "trivial": common + [trivial]}

        seconds, recap = play([playbook] + commands["apply"], env)
        log("converging apply: %.2f s, changed per host %s" % (seconds, sorted({r["changed"] for r in recap.values()})))
        converge = {"seconds": round(seconds, 3), "changed": {h: r["changed"] for h, r in recap.items()}}

        samples: dict = {"apply": [], "trivial": []}
        changed: list = []
        load_before = os.getloadavg()
        for round_ in range(args.runs):
            order = ("apply", "trivial") if round_ % 2 == 0 else ("trivial", "apply")
            for name in order:
                seconds, recap = play([playbook] + commands[name], env)
                samples[name].append(seconds)
                if name == "apply":
                    changed.append(sum(r["changed"] for r in recap.values()))
            log("round %d/%d: apply %.2f s (changed=%d), trivial %.2f s" % (
                round_ + 1, args.runs, samples["apply"][-1], changed[-1], samples["trivial"][-1]))
        load_after = os.getloadavg()

        # Recorded runs, not timed: of three, the one with the median wall time is reported.
        profiles = {}
        for name in ("apply", "trivial"):
            recorded = []
            for attempt in range(3):
                events_path = os.path.join(work, "%s-events-%d.jsonl" % (name, attempt))
                record = [sys.executable, os.path.abspath(__file__), "--record", events_path] + commands[name]
                seconds, recap = play(record, env)
                recorded.append(profile(read_events(events_path)))
                recorded[-1]["changed"] = sum(r["changed"] for r in recap.values())
            profiles[name] = sorted(recorded, key=lambda p: p["wall_seconds"])[1]

        host = fleet.hosts[0]
        secret = host.data_dir / "root/etc/restorable/secrets/local-repo.password"
        restic_open = statistics.median(time_restic_open(str(host.data_dir / "repository"), str(secret))
                                        for _attempt in range(3))
    finally:
        if fleet is not None:
            fleet.stop_all()
        shutil.rmtree(control_dir, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = med["apply"] / med["trivial"]
    per_host_modules = profiles["apply"]["max_module_invocations_per_host"]
    summary = {
        "bench": "reapply_fleet",
        "date": date,
        "hosts": args.hosts,
        "datasets_per_host": datasets,
        "forks": args.forks,
        "collection": collection_version(args.collections_path),
        "runs": args.runs,
        "commands": {k: "ansible-playbook " + " ".join(v) for k, v in commands.items()},
        "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "converge": converge,
        "reapply_changed_total_per_run": changed,
        "converged": all(c == 0 for c in changed),
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "min_max_seconds": {k: [round(min(v), 3), round(max(v), 3)] for k, v in samples.items()},
        "samples_seconds": {k: [round(s, 3) for s in v] for k, v in samples.items()},
        "ratio_apply_over_trivial": round(ratio, 3),
        # Median of the per-round ratios: the two plays of a round ran side by side in time.
        "ratio_paired": round(statistics.median(a / t for a, t in zip(samples["apply"], samples["trivial"])), 3),
        "restic_cat_config_seconds": round(restic_open, 3),
        "profile": profiles,
        "target": {"ratio_max": TARGET_RATIO, "ratio_met": ratio <= TARGET_RATIO,
                   "modules_per_host_max": TARGET_MODULES_PER_HOST,
                   "modules_met": per_host_modules <= TARGET_MODULES_PER_HOST},
    }
    log("converged re-apply %.2f s, trivial 4-task play %.2f s, ratio %.3f (paired %.3f, target <= %.1f); "
        "module invocations per host %d (target <= %d): %s" % (
            med["apply"], med["trivial"], ratio, summary["ratio_paired"], TARGET_RATIO, per_host_modules,
            TARGET_MODULES_PER_HOST,
            ", ".join(profiles["apply"]["modules_of_a_host"])))
    for row in profiles["apply"]["tasks"]:
        log("  %-70s wall %6.2f s  per host %5.2f s (modules %5.2f s)" % (
            row["task"][:70], row["wall_seconds"], row["mean_host_seconds"], row["mean_module_seconds"]))
    log("  %-70s %6.2f s" % ("(outside tasks: start-up, inventory, play set-up)",
                             profiles["apply"]["outside_tasks_seconds"]))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
