# -*- coding: utf-8 -*-
"""The array tier's minute schedule on a real systemd host: the nspawn container (tests/system/fleet)
gets a btrfs of its own (a loop device of this machine) mounted inside it, two subvolumes made in
there form one array dataset that every minute takes a group snapshot and exports it to a directory
tape library on the same filesystem, planned as apply plans it and converged with
restorable.backup.tape_library and restorable.backup.job. Nothing but the container's systemd
starts the job: its timer fires on the minute, twice; the first export is a full, the second an
incremental on it, as the library's catalog (read here, through this machine's mount) records.

Takes about two minutes (at most three): the first minute boundary after the apply, and one more.
"""
from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from array_helpers import run
from array_timer_helpers import (ArrayPlan, converge_array, library_config_here, minute_array_policy, outside_view,
                                 plan_array)
from loop_helpers import LoopMount
from timer_helpers import STATUS_DIR, ContainerMount, journal_with, wait_for_runs

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.thin import point_time
from fleet.nspawn import SystemdHost

DATASET = "grouped"
LIBRARY = "vtl-timer"
SERVICE = f"restorable-backup-{DATASET}.service"
TIMER = f"restorable-backup-{DATASET}.timer"
MOUNT = "/srv/array-timer"  # where the container sees the timer's btrfs
VOLUMES = [f"{MOUNT}/db", f"{MOUNT}/logs"]
CONTENT = "written before the timer"
# The next minute boundary after the apply, one more, and each run's few seconds.
WAIT_FOR_TWO_RUNS = 150.0


@dataclass
class MinuteArrayJob:
    """The scheduled job and how this machine sees its filesystem and its library."""

    calendar: str
    here: Path  # this machine's mount point of the filesystem the container has at MOUNT
    library_config: Path  # the library's configuration, pointing at this machine's view


def _unschedule(systemd_host: SystemdHost, workdir: Path) -> None:
    # A run in progress first, then the job out of the container's wanted set.
    systemd_host.run(["systemctl", "stop", TIMER, SERVICE], check=False)
    removed = converge_array(systemd_host, workdir, ArrayPlan([], [], []))
    assert removed.returncode == 0, removed.stdout[-4000:] + removed.stderr[-2000:]
    # What the job and the library left in the container's root (the container lives on for the session).
    systemd_host.run(f"rm -f /etc/restorable/{DATASET}.json /etc/restorable/tape/{LIBRARY}.json "
                     f"/{STATUS_DIR}/{DATASET}.* /{STATUS_DIR}/{DATASET}-* /{STATUS_DIR}/metrics/*{DATASET}* "
                     f"/var/lib/systemd/timers/stamp-{TIMER}; rmdir --ignore-fail-on-non-empty /etc/restorable/tape",
                     check=False)


@pytest.fixture
def minute_array_job(systemd_host: SystemdHost, timer_btrfs: LoopMount, tmp_path: Path) -> Iterator[MinuteArrayJob]:
    """The job scheduled in the container; afterwards unscheduled and the btrfs unmounted there
    (its loop device is timer_btrfs')."""
    with ExitStack() as cleanup:
        mount = ContainerMount.mount(systemd_host, timer_btrfs.device, MOUNT)
        cleanup.callback(systemd_host.run, ["rmdir", MOUNT], check=False)  # once unmounted
        cleanup.callback(mount.close)
        # Made inside the container: its btrfs-progs work on the filesystem mounted there.
        systemd_host.run(" && ".join(f"btrfs subvolume create {volume} && echo '{CONTENT}' > {volume}/data.txt"
                                     for volume in VOLUMES) + f" && mkdir {MOUNT}/vtl")
        policy = minute_array_policy(systemd_host.name, DATASET, VOLUMES, LIBRARY, f"{MOUNT}/vtl", capacity_mb=16)
        plan = plan_array(systemd_host.name, policy)
        [job] = plan.jobs
        [library] = plan.libraries
        cleanup.callback(_unschedule, systemd_host, tmp_path / "unschedule")
        applied = converge_array(systemd_host, tmp_path / "apply", plan)
        assert applied.returncode == 0, applied.stdout[-4000:] + applied.stderr[-2000:]
        config = library_config_here(systemd_host.fs / library["config_path"].lstrip("/"), MOUNT,
                                     timer_btrfs.mountpoint, tmp_path / "library-here.json")
        yield MinuteArrayJob(job["calendar"], timer_btrfs.mountpoint, config)


def _read_only(path: Path) -> bool:
    return run(["btrfs", "property", "get", "-ts", path, "ro"]).stdout.strip() == "ro=true"


def _exports(status: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    # The tier's details stand beside the common fields in the status file (RunRecord.to_dict).
    return [(e["point"], e["kind"], e["base"]) for e in status["export"]]


def test_the_minute_timer_takes_group_snapshots_and_exports_them_full_then_incremental(
        minute_array_job: MinuteArrayJob, systemd_host: SystemdHost) -> None:
    timer = (systemd_host.fs / "etc/systemd/system" / TIMER).read_text()
    assert minute_array_job.calendar == "*-*-* *:*:00" and f"OnCalendar={minute_array_job.calendar}" in timer
    assert systemd_host.run(["systemctl", "is-active", TIMER], check=False).stdout.strip() == "active"

    runs = wait_for_runs(systemd_host, DATASET, 2, WAIT_FOR_TWO_RUNS)
    summaries = [f"dataset {DATASET}: success, group point {run['snapshot_id']}" for run in runs]
    journal = journal_with(systemd_host, SERVICE, summaries)
    assert [run["result"] for run in runs] == ["success", "success"], \
        "%s\njournal:\n%s" % ([(r["result"], r.get("reason")) for r in runs], journal[-4000:])
    first, second = (run["snapshot_id"] for run in runs)
    # The timer's two firings, a minute apart (point ids are the snapshots' times).
    assert datetime.timedelta(seconds=55) <= point_time(second) - point_time(first) <= datetime.timedelta(seconds=65)
    # Nothing else runs this job: the service the timer started logged both runs and their exports.
    for summary in summaries:
        assert summary in journal, journal[-4000:]
    assert f"exported {first} (full)" in journal and f"exported {second} (incremental)" in journal, journal[-4000:]

    # One group snapshot per run, of both volumes, read-only where the job took it.
    for status in runs:
        snapshot = status["snapshot"]
        assert snapshot["id"] == status["snapshot_id"] and sorted(snapshot["volumes"]) == VOLUMES
        for path in snapshot["volumes"].values():
            here = outside_view(path, MOUNT, minute_array_job.here)
            assert _read_only(here), here
            assert (here / "data.txt").read_text() == CONTENT + "\n"

    # The first run's export started the chain in full, the second went incrementally from it.
    assert _exports(runs[0]) == [(first, "full", None)]
    assert _exports(runs[1]) == [(second, "incremental", first)]
    library = open_library(str(minute_array_job.library_config))
    points = library.points(DATASET)  # a third firing may have added one
    assert [(p["point"], p["kind"], p["base"], p["chain"], p["position"]) for p in points[:2]] == \
        [(first, "full", None, first, 1), (second, "incremental", first, first, 2)]
    assert all(len(p["streams"]) == len(VOLUMES) for p in points[:2])  # a stream per volume
    assert [record["point"] for record in library.chain(DATASET, second)] == [first, second]
