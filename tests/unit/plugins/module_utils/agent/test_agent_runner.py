# -*- coding: utf-8 -*-
"""BackupRunner decisions that happen before restic is involved: lock, window, load gate."""
from __future__ import annotations

import datetime
import json

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.core.driver import EXIT_CODES
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions, nth_backup
from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import runner_for as BackupRunner
from ansible_collections.restorable.backup.plugins.module_utils.common.locks import FileLock

NOON = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.timezone.utc)


def config(tmp_path, **schedule) -> JobConfig:
    return JobConfig.from_dict({
        "dataset": "www", "host": "web01",
        # restic is never reached in these tests: a missing binary would fail them loudly.
        "repository": {"url": str(tmp_path / "repo"), "password_file": str(tmp_path / "pw")},
        "paths": [str(tmp_path)], "status_dir": str(tmp_path / "status"), "metrics_dir": str(tmp_path / "metrics"),
        "restic": {"binary": str(tmp_path / "no-restic")}, "schedule": schedule})


def test_outside_the_window_is_deferred_and_recorded(tmp_path):
    sleeps = []
    runner = BackupRunner(config(tmp_path, window={"start": "22:00", "end": "06:00", "timezone": "UTC"}),
                          now=lambda: NOON, sleep=sleeps.append)
    result = runner.run()
    assert result.result == "deferred" and result.exit_code == EXIT_CODES["deferred"] == 75
    assert result.reason == "outside the backup window 22:00-06:00 UTC (now 12:00 UTC; it opens at 22:00 UTC)"
    assert sleeps == []
    status = json.loads((tmp_path / "status" / "www.json").read_text())
    assert status["result"] == "deferred" and status["consecutive_deferrals"] == 1
    assert status["started"] == status["finished"] == "2026-03-10T12:00:00Z"
    assert 'result="deferred"} 1' in (tmp_path / "metrics" / "restorable_www.prom").read_text()
    assert not (tmp_path / "status" / "www.running").exists()


def test_busy_host_is_deferred_after_max_deferral(tmp_path):
    clock = {"t": NOON, "waited": 0.0}

    def sleep(seconds):
        clock["t"] += datetime.timedelta(seconds=seconds)
        clock["waited"] += seconds
    runner = BackupRunner(config(tmp_path, load_gate={"max_load_per_cpu": 0.5, "max_deferral": "2h",
                                                      "check_every": "10m"}),
                          now=lambda: clock["t"], sleep=sleep, loadavg=lambda: (64.0, 0.0, 0.0),
                          monotonic=lambda: clock["waited"])
    result = runner.run()
    assert result.result == "deferred" and result.deferred_seconds == 7200
    assert result.reason.startswith("load ")
    assert result.reason.endswith(" per CPU is above 0.5 after waiting 7200s (max_deferral 7200s)")


def test_a_run_holding_the_lock_refuses_a_second(tmp_path):
    cfg = config(tmp_path)
    with FileLock(cfg.lock_path):
        result = BackupRunner(cfg, now=lambda: NOON).run()
    assert result.result == "locked" and result.exit_code == 76
    assert result.reason.startswith("another run of dataset www is in progress (pid ")
    assert not (tmp_path / "status" / "www.json").exists(), "the running run owns the status"


def test_ignore_window_goes_on_to_the_repository(tmp_path):
    cfg = config(tmp_path, window={"start": "22:00", "end": "06:00", "timezone": "UTC"})
    result = BackupRunner(cfg, RunOptions(ignore_window=True), now=lambda: NOON).run()
    # It got past the gate: the missing password file is the failure now.
    assert result.result == "failed" and result.exit_code == 1
    assert result.reason == "repository password file %s does not exist" % (tmp_path / "pw")
    assert json.loads((tmp_path / "status" / "www.json").read_text())["consecutive_failures"] == 1


def test_nth_backup_is_due_on_the_every_th_counted_backup():
    # The counter holds the backups before this run; this run's own backup makes it +1.
    assert [nth_backup({"backups_since_prune": n}, "backups_since_prune", 3) for n in range(4)] == [
        False, False, True, True]
    assert nth_backup({}, "backups_since_prune", 1) is True  # a first run with prune_every 1
    assert nth_backup({}, "backups_since_prune", 7) is False
