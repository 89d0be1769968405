#!/usr/bin/env python
"""Benchmark: controller planning of a synthetic fleet, 100 hosts against 1,000 (target: ratio <= 12).

Each run validates the fleet with the tier registry, then plans every host as one play does:
the plan text, each tier's jobs and secrets, and the drills that run on the host (fleet_plan,
through hostvars). One host in ten is a drill host for the nine after it; one host in five also
has a host-tier dataset, which is reported, not planned. In process, no SSH, one core; reports
the median wall and CPU time of each size and the ratios of the medians (compare CPU when other
work shares the machine).

    .venv/bin/python bench/plan_fleet.py [--runs 5] [--sizes 100 1000]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Mapping

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "collections"))

from ansible_collections.restorable.backup.plugins.filter.fleet_plan import fleet_plan  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.plan import plan_lines  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS  # noqa: E402
from validate_fleet import GROUP_VARS as VALIDATE_GROUP_VARS  # noqa: E402  (bench/ is the script's directory)

TARGET_RATIO = 12
# validate_fleet's shared variables, with a database password: secrets are part of the plan.
GROUP_VARS = dict(VALIDATE_GROUP_VARS, restorable_consistency_profiles={
    "pg": {"type": "postgresql", "postgresql": {"mode": "dump", "port": 5432, "password": "{{ vault_pg }}"}}})


def fleet(hosts: int) -> dict:
    inventory = {}
    for h in range(hosts):
        datasets = {
            "data%d" % d: {"tier": "agent", "paths": ["/srv/host%d/data%d" % (h, d)], "targets": ["nas", "cloud"],
                           "schedule": "nightly", "retention": {"daily": 7, "weekly": 4}, "consistency": "pg"}
            for d in range(3)
        }
        if h % 5 == 0:
            datasets["vms"] = {"tier": "host", "vms": {"all": True}, "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}}
        drill_host = "host%05d" % (h - h % 10)  # the first host of every ten drills the others
        drills = {"weekly": {"datasets": sorted(datasets), "calendar": "Sun *-*-* 06:00:00", "drill_host": drill_host}}
        inventory["host%05d" % h] = dict(GROUP_VARS, restorable_datasets=datasets, restorable_drills=drills)
    return inventory


class Hostvars(Mapping):
    """Ansible's hostvars as a filter gets it: one object per play, a host's variables by name."""

    def __init__(self, inventory: dict) -> None:
        self.inventory = inventory

    def __getitem__(self, host: str) -> dict:
        return self.inventory[host]

    def __iter__(self):
        return iter(self.inventory)

    def __len__(self) -> int:
        return len(self.inventory)


def one_play(inventory: dict, validator: FleetValidator) -> int:
    """Validate, then plan every host: plan text, jobs, secrets and drills. Returns the jobs planned."""
    report = validator.validate(inventory)
    assert not report.errors, report.lines()[:5]
    for host, policy in inventory.items():
        plan_lines(policy, report.compliance.get(host), host, TIERS)
    plans = fleet_plan(Hostvars(inventory), list(inventory))  # a new hostvars: nothing carried over from the last run
    return sum(len(tier["jobs"]) for plan in plans.values() for tier in plan["tiers"].values())


def measure(hosts: int, runs: int) -> dict:
    inventory = fleet(hosts)
    timings, cpu = [], []
    for _run in range(runs):
        validator = FleetValidator(tiers=TIERS)  # compiles the schema, as every play does (not timed)
        gc.collect()  # the last run's plans are garbage: not this run's to collect
        started, started_cpu = time.perf_counter(), time.process_time()
        jobs = one_play(inventory, validator)
        timings.append(time.perf_counter() - started)
        # CPU time of this process: what one core spends, even when other work shares the machine.
        cpu.append(time.process_time() - started_cpu)
        assert jobs == hosts * 3 * 2, jobs
    return {"hosts": hosts, "median_s": statistics.median(timings), "min_s": min(timings), "max_s": max(timings),
            "median_cpu_s": statistics.median(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs=2, default=[100, 1000], metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    small, large = (measure(size, args.runs) for size in args.sizes)
    ratio = large["median_s"] / small["median_s"]
    cpu_ratio = large["median_cpu_s"] / small["median_cpu_s"]
    print("| hosts | median | min | max | median CPU |")
    print("|---|---|---|---|---|")
    for row in (small, large):
        print("| %d | %.3f s | %.3f s | %.3f s | %.3f s |" % (row["hosts"], row["median_s"], row["min_s"], row["max_s"], row["median_cpu_s"]))
    print("ratio %d/%d: %.2f, CPU %.2f (target <= %d)" % (large["hosts"], small["hosts"], ratio, cpu_ratio, TARGET_RATIO))
    print(json.dumps({"runs": args.runs, "small": small, "large": large, "ratio": round(ratio, 2), "cpu_ratio": round(cpu_ratio, 2),
                      "target_ratio": TARGET_RATIO, "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
