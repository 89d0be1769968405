# -*- coding: utf-8 -*-
"""The Runner owns the run for any tier: lock, gates, hooks, deadline, status and metrics happen
the same way whatever the TierDriver does. An in-process fake driver records what it was asked."""
from __future__ import annotations

import datetime
import json
import sys

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.common.locks import FileLock
from ansible_collections.restorable.backup.plugins.module_utils.core.driver import RunContext, RunFailed, TierDriver
from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions, Runner
from ansible_collections.restorable.backup.plugins.module_utils.storage.repository import RepositoryError

NOON = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=datetime.timezone.utc)


class FakeDriver(TierDriver):
    """A tier that takes a point called fake-1 unless told to fail at a step."""

    tier = "fake"

    def __init__(self, fail_at: str = "", error: BaseException | None = None) -> None:
        self.fail_at = fail_at
        self.error = error or RunFailed("the fake %s failed" % fail_at)
        self.calls: list[str] = []
        self.time_left: float | None = None

    def record_details(self):
        return {"fake_field": None}

    def _step(self, name: str) -> None:
        self.calls.append(name)
        if self.fail_at == name:
            raise self.error

    def preflight(self, run: RunContext) -> None:
        self._step("preflight")

    def capture(self, run: RunContext) -> None:
        self.time_left = run.time_left()
        self._step("capture")
        run.record.snapshot_id = "fake-1"
        run.record.details["fake_field"] = "captured"

    def maintain(self, run: RunContext) -> None:
        self._step("maintain")

    @classmethod
    def drill(cls, params, check_only=False):
        return {"tier": cls.tier, "drill": params["drill"], "result": "skipped" if check_only else "passed"}


def spec(tmp_path, **extra) -> JobConfig:
    doc = {"dataset": "www", "host": "web01", "tier": "fake",
           "repository": {"url": str(tmp_path / "repo"), "password_file": str(tmp_path / "pw")},
           "paths": [str(tmp_path)], "status_dir": str(tmp_path / "status"), "metrics_dir": str(tmp_path / "metrics")}
    doc.update(extra)
    return JobConfig.from_dict(doc)


def hook(tmp_path, name: str, code: int = 0) -> dict:
    """A hook that leaves a marker file (and the variables it was given) and exits with code."""
    marker = tmp_path / ("hook-" + name)
    script = "import os, sys; open(%r, 'w').write(os.environ.get('RESTORABLE_RESULT', '')); sys.exit(%d)" % (
        str(marker), code)
    return {"argv": [sys.executable, "-c", script]}


def status(tmp_path) -> dict:
    return json.loads((tmp_path / "status" / "www.json").read_text())


def run(config, driver, **kwargs):
    return Runner(config, driver, RunOptions(), now=lambda: NOON, **kwargs).run()


def test_a_good_run_calls_the_driver_in_order_and_records_it(tmp_path):
    driver = FakeDriver()
    record = run(spec(tmp_path), driver)
    assert driver.calls == ["preflight", "capture", "maintain"]
    assert record.ok and record.tier == "fake" and record.snapshot_id == "fake-1"
    saved = status(tmp_path)
    assert saved["tier"] == "fake" and saved["fake_field"] == "captured" and saved["result"] == "success"
    assert saved["last_success"]["snapshot_id"] == "fake-1"
    metrics = (tmp_path / "metrics" / "restorable_www.prom").read_text()
    assert 'restorable_job_info{dataset="www",host="web01",tier="fake"} 1' in metrics
    assert 'restorable_backup_last_result{dataset="www",host="web01",result="success"} 1' in metrics
    assert not (tmp_path / "status" / "www.running").exists()


def test_a_held_lock_refuses_the_run_before_the_driver(tmp_path):
    config, driver = spec(tmp_path), FakeDriver()
    (tmp_path / "status").mkdir()
    with FileLock(config.lock_path):
        record = run(config, driver)
    assert record.result == "locked" and driver.calls == []


def test_outside_the_window_the_driver_is_never_called(tmp_path):
    driver = FakeDriver()
    record = run(spec(tmp_path, schedule={"window": {"start": "22:00", "end": "06:00", "timezone": "UTC"}}), driver)
    assert record.result == "deferred" and driver.calls == []
    assert status(tmp_path)["consecutive_deferrals"] == 1


def test_a_failing_pre_hook_stops_before_capture_and_post_hooks_still_run(tmp_path):
    driver = FakeDriver()
    record = run(spec(tmp_path, hooks={"pre": [hook(tmp_path, "pre", 3)], "post": [hook(tmp_path, "post")]}), driver)
    assert record.result == "failed" and "backup not started" in record.reason
    assert driver.calls == ["preflight"]
    assert (tmp_path / "hook-post").read_text() == "failed"


@pytest.mark.parametrize("error, reason", [
    (RunFailed("the fake capture failed"), "the fake capture failed"),
    (RepositoryError(RepositoryError.UNREACHABLE, "the repository is unreachable"), "the repository is unreachable"),
    (ZeroDivisionError("division by zero"), "unexpected error: ZeroDivisionError: division by zero"),
])
def test_a_driver_that_raises_leaves_no_lock_and_a_failed_record(tmp_path, error, reason):
    config, driver = spec(tmp_path, hooks={"post": [hook(tmp_path, "post")]}), FakeDriver("capture", error)
    record = run(config, driver)
    assert record.result == "failed" and record.reason == reason and record.exit_code == 1
    assert driver.calls == ["preflight", "capture"], "no maintenance after a failed capture"
    assert (tmp_path / "hook-post").read_text() == "failed", "post hooks run whatever happened"
    assert status(tmp_path)["consecutive_failures"] == 1
    assert not (tmp_path / "status" / "www.running").exists()
    with FileLock(config.lock_path):  # free again: the failed run released it
        pass


def test_a_failing_post_hook_fails_a_good_capture_and_skips_maintenance(tmp_path):
    driver = FakeDriver()
    record = run(spec(tmp_path, hooks={"post": [hook(tmp_path, "post", 2)]}), driver)
    assert record.result == "failed" and "(snapshot fake-1 was saved)" in record.reason
    assert driver.calls == ["preflight", "capture"]


def test_the_deadline_bounds_what_the_driver_may_take(tmp_path):
    clock = {"t": 100.0}

    class Slow(FakeDriver):
        def preflight(self, run):
            clock["t"] += 30.0  # the storage took half of max_runtime to open
            super().preflight(run)
    driver = Slow()
    record = Runner(spec(tmp_path, schedule={"max_runtime": "1m"}), driver, RunOptions(), now=lambda: NOON,
                    monotonic=lambda: clock["t"]).run()
    assert record.ok and driver.time_left == pytest.approx(30.0)


def test_an_interrupted_previous_run_is_reported_to_the_driver(tmp_path):
    config = spec(tmp_path)
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "www.running").write_text(json.dumps({"pid": 4242, "started": "2026-03-10T11:00:00Z"}))
    seen = {}

    class Watching(FakeDriver):
        def preflight(self, run):
            seen["interrupted"] = run.interrupted
            super().preflight(run)
    record = run(config, Watching())
    assert seen["interrupted"]["pid"] == 4242
    assert record.warnings == ["the previous run (pid 4242, started 2026-03-10T11:00:00Z) was interrupted before "
                               "it finished"]
