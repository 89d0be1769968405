# -*- coding: utf-8 -*-
"""The profile contract: release always runs, the window is measured, on_failure is honoured."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency import base
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    FreezeRecord, NoneProfile, QuiesceFailed, StreamSource, profile_from_config, quiesce_or_crash_consistent)
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    FreezingProfile as ConsistencyProfile)


class Recorder(ConsistencyProfile):
    """A profile that records what happens; quiesce/release can be made to fail."""

    kind = "recorder"

    def __init__(self, tmp_path, fail_quiesce=False, fail_release=False, **config):
        super().__init__(config, str(tmp_path), str(tmp_path))
        self.events = []
        self.marker = tmp_path / "released-by-watchdog"
        self.fail_quiesce = fail_quiesce
        self.fail_release = fail_release

    def quiesce(self, watchdog):
        watchdog.add_command(["touch", str(self.marker)])
        self.events.append("quiesce")
        if self.fail_quiesce:
            raise QuiesceFailed("application refuses to pause")
        return "label-1"

    def release(self):
        self.events.append("release")
        if self.fail_release:
            raise QuiesceFailed("cannot resume")


def test_success_quiesce_snapshot_release_and_a_measured_window(tmp_path):
    profile = Recorder(tmp_path)

    def snapshot():
        profile.events.append("snapshot")
        time.sleep(0.3)
        return "snap"

    result, record = profile.frozen(snapshot)
    assert result == "snap" and profile.events == ["quiesce", "snapshot", "release"]
    assert record.consistent and record.label == "label-1" and record.profile == "recorder"
    assert 0.3 <= record.seconds < 1.0
    assert record.started.endswith("Z") and record.started <= record.ended
    assert not profile.marker.exists()  # the watchdog was disarmed
    assert "disarmed" in (tmp_path / base.WATCHDOG_LOG).read_text()


def test_release_runs_after_an_exception_in_snapshot(tmp_path):
    profile = Recorder(tmp_path)

    def snapshot():
        raise OSError("volume gone")

    with pytest.raises(OSError, match="volume gone"):
        profile.frozen(snapshot)
    assert profile.events == ["quiesce", "release"]
    assert not profile.marker.exists()


def test_release_runs_after_a_failed_quiesce(tmp_path):
    profile = Recorder(tmp_path, fail_quiesce=True)
    with pytest.raises(QuiesceFailed, match="refuses") as caught:
        profile.frozen(lambda: pytest.fail("no snapshot after a failed quiesce"))
    assert profile.events == ["quiesce", "release"]
    record = caught.value.record
    assert record.consistent is False and "refuses" in record.reason and record.ended


def test_a_failed_release_makes_the_watchdog_release_at_once(tmp_path):
    profile = Recorder(tmp_path, fail_release=True)
    with pytest.raises(QuiesceFailed, match="release failed.*cannot resume") as caught:
        profile.frozen(lambda: "snap")
    assert profile.marker.exists()
    assert caught.value.result == "snap" and caught.value.record.consistent is False


def test_a_snapshot_longer_than_max_freeze_is_released_and_not_consistent(tmp_path):
    profile = Recorder(tmp_path, max_freeze="1s")
    seen = {}

    def snapshot():
        began = time.monotonic()
        while not profile.marker.exists() and time.monotonic() - began < 5:
            time.sleep(0.02)
        seen["released_after"] = time.monotonic() - began
        return "late"

    with pytest.raises(QuiesceFailed, match="max_freeze") as caught:
        profile.frozen(snapshot)
    assert seen["released_after"] < 1.5
    assert caught.value.result == "late" and caught.value.record.consistent is False


def test_on_failure_fail_raises_without_a_snapshot(tmp_path):
    calls = []
    with pytest.raises(QuiesceFailed):
        quiesce_or_crash_consistent(Recorder(tmp_path, fail_quiesce=True), "fail", lambda: calls.append(1))
    assert calls == []


def test_on_failure_crash_consistent_takes_the_snapshot_and_says_so(tmp_path):
    calls = []
    profile = Recorder(tmp_path, fail_quiesce=True, on_failure="crash_consistent")
    result, record = quiesce_or_crash_consistent(profile, None, lambda: calls.append(1) or "crash")
    assert result == "crash" and calls == [1]
    assert record.consistent is False and record.reason.startswith("crash-consistent: ") and "refuses" in record.reason


def test_crash_consistent_does_not_take_a_second_snapshot_after_a_late_release(tmp_path):
    calls = []
    profile = Recorder(tmp_path, fail_release=True)
    result, record = quiesce_or_crash_consistent(profile, "crash_consistent", lambda: calls.append(1) or "once")
    assert result == "once" and calls == [1] and record.consistent is False


def test_sigterm_during_the_snapshot_still_releases(tmp_path):
    # The agent runner turns SIGTERM into an exception; the release must still run.
    script = (
        "import sys, time\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.restorable.backup.plugins.module_utils.core.runner import install_signal_handlers\n"
        "from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import FreezingProfile as ConsistencyProfile\n"
        "class P(ConsistencyProfile):\n"
        "    kind = 'p'\n"
        "    def quiesce(self, watchdog):\n"
        "        watchdog.add_command(['touch', %r])\n"
        "    def release(self):\n"
        "        open(%r, 'w').close()\n"
        "install_signal_handlers()\n"
        "def snap():\n"
        "    print('frozen', flush=True)\n"
        "    time.sleep(60)\n"
        "P({'max_freeze': '30s'}, %r).frozen(snap)\n"
        % (sys.path, str(tmp_path / "by-watchdog"), str(tmp_path / "released"), str(tmp_path)))
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert runner.stdout.readline().strip() == "frozen"
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=10) == 1
    assert "Interrupted: SIGTERM" in runner.stderr.read()
    runner.stdout.close()
    runner.stderr.close()
    assert (tmp_path / "released").exists() and not (tmp_path / "by-watchdog").exists()


def test_profile_from_config_types_and_errors(tmp_path, monkeypatch):
    with pytest.raises(QuiesceFailed, match="unknown consistency profile type 'tape'"):
        profile_from_config({"type": "tape"}, str(tmp_path))
    monkeypatch.setitem(base.PROFILE_TYPES, "postgresql", ("no_such_module_here", "PostgreSQLProfile"))
    with pytest.raises(QuiesceFailed, match="profile type postgresql is not available"):
        profile_from_config({"type": "postgresql"}, str(tmp_path))
    monkeypatch.setitem(base.PROFILE_TYPES, "postgresql", ("base", "NoSuchClass"))
    with pytest.raises(QuiesceFailed, match="not available"):
        profile_from_config({"type": "postgresql"}, str(tmp_path))
    none = profile_from_config({"type": "none", "max_freeze": "2m"}, str(tmp_path))
    assert isinstance(none, NoneProfile) and none.max_freeze == 120 and none.on_failure == "fail"
    assert none.streams() == [] and none.prepare_files() == []
    result, record = none.frozen(lambda: 5)
    assert result == 5 and record.consistent is False
    with pytest.raises(QuiesceFailed, match="on_failure"):
        profile_from_config({"type": "none", "on_failure": "ignore"}, str(tmp_path))
    with pytest.raises(ValueError, match="max_freeze"):
        profile_from_config({"type": "none", "max_freeze": "soon"}, str(tmp_path))
    assert profile_from_config({"type": "sqlite", "sqlite": {"databases": ["/x.db"]}}, str(tmp_path)).kind == "sqlite"
    assert os.path.basename(none.watchdog_log_path()) == base.WATCHDOG_LOG


def test_records_and_streams_are_plain_data():
    record = FreezeRecord(profile="fsfreeze", started="a", ended="b", seconds=0.01, label=None)
    assert record.to_dict() == {"profile": "fsfreeze", "started": "a", "ended": "b", "seconds": 0.01,
                                "consistent": True, "reason": "", "label": None}
    stream = StreamSource("postgresql/app.sql", ["pg_dump", "app"], {"PGPASSWORD": "s3cret-pw"}, 600)
    assert "s3cret-pw" not in stream.describe() and stream.describe() == "postgresql/app.sql <- pg_dump app"


def test_the_window_starts_where_quiesce_says_the_blocking_begins(tmp_path):
    class Prepared(Recorder):
        def quiesce(self, watchdog):
            time.sleep(0.4)  # a pre-flush: the application still runs
            self.window_started = time.monotonic()
            return super().quiesce(watchdog)

    profile = Prepared(tmp_path)
    _result, record = profile.frozen(lambda: time.sleep(0.1))
    assert 0.1 <= record.seconds < 0.35
    _result, record = Recorder(tmp_path).frozen(lambda: time.sleep(0.1))
    assert 0.1 <= record.seconds < 0.35 and profile.window_started is not None
