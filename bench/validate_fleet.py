#!/usr/bin/env python
"""Benchmark: policy validation of a synthetic fleet (default 10,000 hosts x 5 datasets).

Every host has its own datasets (distinct names and paths) so nothing can be shared between
hosts; targets, schedules and profiles come from "group_vars" as in a real inventory. Runs the
validation several times in one process pinned to one core and prints the median.

    .venv/bin/python bench/validate_fleet.py [--hosts 10000] [--datasets 5] [--runs 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "collections"))

from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402

GROUP_VARS = {
    "restorable_targets": {
        "nas": {"type": "sftp", "host": "nas.example.org", "user": "backup", "path": "/srv/restic", "password": "{{ vault_pw }}"},
        "cloud": {
            "type": "s3", "endpoint": "https://s3.example.org", "bucket": "acme-backup", "prefix": "hosts",
            "object_lock": {"mode": "compliance", "days": 30}, "offsite": True,
            "access_key_id": "{{ vault_key }}", "secret_access_key": "{{ vault_secret }}", "password": "{{ vault_pw }}",
        },
    },
    "restorable_schedules": {
        "nightly": {"calendar": "*-*-* 01:00:00", "window": {"start": "01:00", "end": "05:00"}, "jitter": "2h",
                    "load_gate": {"max_load_per_cpu": 0.8, "max_deferral": "2h"}, "nice": 10},
    },
    "restorable_consistency_profiles": {"pg": {"type": "postgresql", "postgresql": {"mode": "dump", "port": 5432}}},
    "restorable_compliance": {"rule_3_2_1_1_0": "report", "drill_max_age": "30d"},
}


def fleet(hosts: int, datasets: int) -> dict:
    inventory = {}
    for h in range(hosts):
        sets = {
            "data%d" % d: {
                "tier": "agent", "paths": ["/srv/host%d/data%d" % (h, d), "/etc"], "excludes": ["*.tmp"],
                "targets": ["nas", "cloud"], "schedule": "nightly", "rpo": "28h",
                "retention": {"last": 3, "daily": 7 + d, "weekly": 4, "monthly": 6}, "consistency": "pg",
                "tags": ["host%d" % h],
            }
            for d in range(datasets)
        }
        drills = {"weekly": {"datasets": sorted(sets), "calendar": "Sun *-*-* 06:00:00",
                             "recovery_point": {"choice": "random", "within_days": 7, "seed": h}}}
        inventory["host%05d" % h] = dict(GROUP_VARS, restorable_datasets=sets, restorable_drills=drills)
    return inventory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--datasets", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    inventory = fleet(args.hosts, args.datasets)
    timings, cpu = [], []
    for _run in range(args.runs):
        validator = FleetValidator()  # compiles the schema, as every play does (not timed)
        started, started_cpu = time.perf_counter(), time.process_time()
        report = validator.validate(inventory)
        timings.append(time.perf_counter() - started)
        # CPU time of this process: what one core spends, even when other work shares the machine.
        cpu.append(time.process_time() - started_cpu)
        assert report.hosts_checked == args.hosts and not report.errors, report.lines()[:5]
    print(json.dumps({
        "hosts": args.hosts, "datasets_per_host": args.datasets, "runs": args.runs,
        "median_s": round(statistics.median(timings), 3), "min_s": round(min(timings), 3),
        "max_s": round(max(timings), 3), "median_cpu_s": round(statistics.median(cpu), 3), "cores": 1,
    }))


if __name__ == "__main__":
    main()
