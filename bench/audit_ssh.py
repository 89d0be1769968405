#!/usr/bin/env python
"""Benchmark: the fleet audit over SSH of 10 hosts against a trivial one-task play.

Starts 10 OpenSSH daemons on loopback addresses (the test fleet of tests/system/fleet/sshd.py:
shared filesystem, one data directory per host), writes an inventory in which every host has its
own agent_root and one or two agent datasets backing up to a local repository in its data
directory, applies it and backs every job up once (restorable.backup.apply, .backup), so each host
has real job status, repositories and job configurations to report. Then, alternating the order
(A B, B A, ...), it times

  A  ansible-playbook -i INV --forks 10 restorable.backup.audit   (audit_facts on every host, then
                                                                  the evaluation and the JSON, JUnit
                                                                  and HTML report on the controller)
  B  ansible-playbook -i INV --forks 10 trivial.yml               (1 x ansible.builtin.command
                                                                  /bin/true, gather_facts false)

with the same inventory, SSH settings (pipelining, ControlPersist) and forks. Reports medians and
the ratio (target <= 1.5) and exits 0 whether or not the target is met; the last line of output is
a JSON summary.

    .venv/bin/python bench/audit_ssh.py [--hosts 10] [--runs 5] [--forks 10] [--collections-path DIR]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

from reapply_fleet import write_inventory  # noqa: E402  the same fleet as the re-apply bench

TARGET_RATIO = 1.5
PLAYBOOK_TIMEOUT = 600

TRIVIAL_PLAY = """\
---
- name: Trivial play (reference)
  hosts: all
  gather_facts: false
  tasks:
    - name: The one task
      ansible.builtin.command: /bin/true
      changed_when: false
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def play(argv: list, env: dict, cwd: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL, timeout=PLAYBOOK_TIMEOUT)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit("`%s` failed (exit %d):\n%s\n%s" % (
            " ".join(argv), result.returncode, result.stdout[-4000:], result.stderr[-2000:]))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each play (default 5)")
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--first-address", default="127.0.3.2",
                        help="loopback address of the first host (default 127.0.3.2, apart from the tests' 127.0.0.x)")
    parser.add_argument("--workdir", default="/var/tmp/restorable-bench",
                        help="a fresh directory is made below it and removed at the end")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--collections-path", help="measure the collection found below this directory instead of the checkout")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from fleet.inventory import ansible_bin, ansible_env
    from fleet.sshd import AddressAllocator, SshClient, SshKey, start_fleet

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    os.makedirs(args.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="audit-ssh-", dir=args.workdir)
    control_dir = tempfile.mkdtemp(prefix="rbk-bench-cp-", dir="/tmp")  # short socket paths
    fleet = None
    try:
        key = SshKey.generate(Path(work, "id_ed25519"), "restorable bench")
        client = SshClient(key=key, control_dir=Path(control_dir))
        fleet = start_fleet(args.hosts, base_dir=Path(work, "sshd"), data_root=Path(work, "hosts"),
                            client=client, addresses=AddressAllocator(args.first_address), prefix="bench")
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
        for name in ("apply", "backup"):
            log("%s: %.2f s" % (name, play([playbook] + common + ["restorable.backup.%s" % name], env, work)))
        commands = {"audit": common + ["restorable.backup.audit", "-e", "audit_dir=%s" % os.path.join(work, "audit-report")],
                    "trivial": common + [trivial]}

        samples: dict = {"audit": [], "trivial": []}
        load_before = os.getloadavg()
        for round_ in range(args.runs):
            order = ("audit", "trivial") if round_ % 2 == 0 else ("trivial", "audit")
            for name in order:
                samples[name].append(play([playbook] + commands[name], env, work))
            log("round %d/%d: audit %.2f s, trivial %.2f s" % (round_ + 1, args.runs, samples["audit"][-1], samples["trivial"][-1]))
        load_after = os.getloadavg()
        with open(os.path.join(work, "audit-report", "audit.json"), encoding="utf-8") as handle:
            audited = json.load(handle)["summary"]
    finally:
        if fleet is not None:
            fleet.stop_all()
        shutil.rmtree(control_dir, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = med["audit"] / med["trivial"]
    summary = {
        "bench": "audit_ssh", "date": date, "hosts": args.hosts, "datasets_per_host": datasets, "forks": args.forks,
        "runs": args.runs, "commands": {k: "ansible-playbook " + " ".join(v) for k, v in commands.items()},
        "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "audit_summary": audited,
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "min_max_seconds": {k: [round(min(v), 3), round(max(v), 3)] for k, v in samples.items()},
        "samples_seconds": {k: [round(s, 3) for s in v] for k, v in samples.items()},
        "ratio_audit_over_trivial": round(ratio, 3),
        # Median of the per-round ratios: the two plays of a round ran side by side in time.
        "ratio_paired": round(statistics.median(a / t for a, t in zip(samples["audit"], samples["trivial"])), 3),
        "target": {"ratio_max": TARGET_RATIO, "ratio_met": ratio <= TARGET_RATIO},
    }
    log("audit over SSH of %d hosts %.2f s, trivial one-task play %.2f s, ratio %.3f (paired %.3f, target <= %.1f)" % (
        args.hosts, med["audit"], med["trivial"], ratio, summary["ratio_paired"], TARGET_RATIO))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
