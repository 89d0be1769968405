# -*- coding: utf-8 -*-
"""The CDP tier's minute timer on a real systemd host: the nspawn container (tests/system/fleet)
gets the session's source btrfs mounted inside it, a btrfs CDP dataset every minute replicated to a
replica sshd on this machine (the other end of the container's veth link, the replica's btrfs, the
forced command in its authorized_keys), planned as apply plans it and scheduled with
restorable.backup.job. Nothing but the container's systemd starts the job: its timer fires on the
minute, twice, and the replica receives the first point in full and the second incrementally.

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

from cdp_btrfs_helpers import names_in, show
from timer_helpers import (STATUS_DIR, ContainerMount, authorize, converge_jobs, journal_with, plan_minute_job,
                           replica_policy, start_link_sshd, wait_for_runs)

from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import install_standalone
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.points import point_time
from fleet.nspawn import SystemdHost
from fleet.sshd import SshClient

DATASET = "minutely"
SERVICE = f"restorable-backup-{DATASET}.service"
TIMER = f"restorable-backup-{DATASET}.timer"
MOUNT = "/srv/cdp-timer"  # where the container sees the source's btrfs
# The next minute boundary after the apply, one more, and each run's few seconds.
WAIT_FOR_TWO_RUNS = 150.0


@dataclass
class MinuteJob:
    """The scheduled job, its subvolume's points and its replica directory as this machine sees them."""

    snapshot_dir: Path
    replica_root: Path
    calendar: str


def _unschedule(systemd_host: SystemdHost, workdir: Path) -> None:
    # A run in progress first, then the job out of the container's wanted set.
    systemd_host.run(["systemctl", "stop", TIMER, SERVICE], check=False)
    removed = converge_jobs(systemd_host, workdir, [], [])
    assert removed.returncode == 0, removed.stdout[-4000:] + removed.stderr[-2000:]
    # What the job left in the container's root (the container lives on for the session's other tests).
    systemd_host.run(f"rm -f /etc/restorable/{DATASET}.json /etc/restorable/secrets/replica-{DATASET}.* "
                     f"/{STATUS_DIR}/{DATASET}.* /{STATUS_DIR}/{DATASET}-*", check=False)


# cdp_filesystems is conftest's CdpFilesystems, which is not imported (several conftest modules share that name).
@pytest.fixture
def minute_job(systemd_host: SystemdHost, cdp_filesystems: Any, fleet_ssh_client: SshClient,
               tmp_path: Path) -> Iterator[MinuteJob]:
    """The job scheduled in the container; afterwards unscheduled, the replica's sshd stopped by its
    PID and the source's btrfs unmounted there (the session's loop devices are cdp_filesystems')."""
    source_fs = cdp_filesystems.source
    with ExitStack() as cleanup:
        mount = ContainerMount.mount(systemd_host, source_fs.device, MOUNT)
        cleanup.callback(mount.close)
        subvolume = f"{MOUNT}/{DATASET}"
        # Made inside the container: its btrfs-progs work on the filesystem mounted there.
        systemd_host.run(f"btrfs subvolume create {subvolume} && echo 'written before the timer' > {subvolume}/data.txt")

        install_dir = tmp_path / "replica-engine"  # what the replica's forced command runs
        install_standalone(str(install_dir))
        sshd = start_link_sshd(systemd_host, fleet_ssh_client, tmp_path)
        cleanup.callback(sshd.stop)
        replica = replica_policy(sshd.address, sshd.port, cdp_filesystems.replica.mountpoint / "timer-replicas")
        plan = plan_minute_job(systemd_host.name, DATASET, subvolume, replica, tmp_path / "credentials", install_dir)
        authorize(sshd, plan.authorized_line)

        [job] = plan.jobs
        cleanup.callback(_unschedule, systemd_host, tmp_path / "unschedule")
        applied = converge_jobs(systemd_host, tmp_path / "apply", plan.jobs, plan.secrets)
        assert applied.returncode == 0, applied.stdout[-4000:] + applied.stderr[-2000:]
        # The replica's sshd runs on this machine: the job's replica path is a path here too.
        yield MinuteJob(source_fs.mountpoint / ".restorable-cdp" / DATASET,
                        Path(job["config"]["options"]["replica"]["path"]), job["calendar"])


def _sent(status: dict[str, Any]) -> list[tuple[str, str | None]]:
    # The tier's details stand beside the common fields in the status file (RunRecord.to_dict).
    return [(s["point"], s["parent"]) for s in status["replica"]["sent"]]


def test_the_minute_timer_takes_points_and_the_replica_receives_them_incrementally(minute_job: MinuteJob,
                                                                                   systemd_host: SystemdHost) -> None:
    timer = (systemd_host.fs / "etc/systemd/system" / TIMER).read_text()
    assert minute_job.calendar == "*-*-* *:00/1:00" and f"OnCalendar={minute_job.calendar}" in timer
    assert systemd_host.run(["systemctl", "is-active", TIMER], check=False).stdout.strip() == "active"

    runs = wait_for_runs(systemd_host, DATASET, 2, WAIT_FOR_TWO_RUNS)
    summaries = [f"dataset {DATASET}: success, btrfs point {run['snapshot_id']}" for run in runs]
    journal = journal_with(systemd_host, SERVICE, summaries)
    assert [run["result"] for run in runs] == ["success", "success"], \
        "%s\njournal:\n%s" % ([(r["result"], r.get("reason")) for r in runs], journal[-4000:])
    first, second = (run["snapshot_id"] for run in runs)
    # The timer's two firings, a minute apart (point names are the runs' start times).
    assert datetime.timedelta(seconds=55) <= point_time(second) - point_time(first) <= datetime.timedelta(seconds=65)
    # Nothing else runs this job: the service the timer started logged both points.
    for summary in summaries:
        assert summary in journal, journal[-4000:]

    # The first point seeded the empty replica in full, the second went incrementally from it.
    assert _sent(runs[0]) == [(first, None)]
    assert runs[0]["replica"]["full"]["reason"] == "the replica held no point yet"
    assert _sent(runs[1]) == [(second, first)] and runs[1]["replica"]["full"] is None

    source, replica = names_in(minute_job.snapshot_dir), names_in(minute_job.replica_root)
    assert {first, second} <= set(source) & set(replica)
    # A third firing may have taken a point it is still sending.
    assert replica[-1] in source[-2:], (source, replica)
    received = {name: show(minute_job.replica_root / name / name) for name in (first, second)}
    assert received[second]["Parent UUID"] == received[first]["UUID"]
    assert received[second]["Received UUID"] == show(minute_job.snapshot_dir / second)["UUID"]
    assert received[second]["Flags"] == "readonly"
    data = minute_job.replica_root / second / second / "data.txt"
    assert data.read_text() == "written before the timer\n"
