# -*- coding: utf-8 -*-
"""Custom profile: pre quiesces, post always releases, also through the watchdog."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import QuiesceFailed, profile_from_config
from ansible_collections.restorable.backup.plugins.module_utils.consistency.custom import hooks_from_config


def log_cmd(log, word, code=0):
    return {"argv": ["sh", "-c", 'echo "%s $RESTORABLE_PHASE $APP_MODE" >> %s; exit %d' % (word, log, code)],
            "env": {"APP_MODE": "m1"}, "timeout": "10s"}


def custom(tmp_path, pre, post, **config):
    config.update({"type": "custom", "pre": pre, "post": post})
    return profile_from_config(config, str(tmp_path), str(tmp_path))


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_pre_snapshot_post_in_order_with_env(tmp_path):
    log = tmp_path / "log"
    profile = custom(tmp_path, [log_cmd(log, "pause")], [log_cmd(log, "resume"), log_cmd(log, "notify")])
    result, record = profile.frozen(lambda: lines(log))
    assert result == ["pause pre m1"]
    assert lines(log) == ["pause pre m1", "resume post m1", "notify post m1"]
    assert record.consistent and [outcome.phase for outcome in profile.outcomes] == ["pre", "post", "post"]


def test_post_runs_after_a_failed_pre_and_after_a_failed_snapshot(tmp_path):
    log = tmp_path / "log"
    profile = custom(tmp_path, [log_cmd(log, "pause", 3), log_cmd(log, "never")], [log_cmd(log, "resume")])
    with pytest.raises(QuiesceFailed, match="pre hook sh exited 3"):
        profile.frozen(lambda: "snap")
    assert lines(log) == ["pause pre m1", "resume post m1"]
    log.unlink()
    profile = custom(tmp_path, [log_cmd(log, "pause")], [log_cmd(log, "resume")])
    with pytest.raises(ZeroDivisionError):
        profile.frozen(lambda: 1 / 0)
    assert lines(log) == ["pause pre m1", "resume post m1"]


def test_a_failed_post_is_reported_and_the_watchdog_retries_it(tmp_path):
    log = tmp_path / "log"
    profile = custom(tmp_path, [log_cmd(log, "pause")], [log_cmd(log, "resume", 1)])
    with pytest.raises(QuiesceFailed, match="release failed.*post hook sh exited 1"):
        profile.frozen(lambda: "snap")
    # Once by the runner, once more by the watchdog it asked to release.
    assert lines(log) == ["pause pre m1", "resume post m1", "resume post m1"]


def test_a_pre_hook_timeout_fails_the_quiesce(tmp_path):
    profile = custom(tmp_path, [{"argv": ["sleep", "30"], "timeout": "1s"}], [])
    began = time.monotonic()
    with pytest.raises(QuiesceFailed, match="timed out"):
        profile.frozen(lambda: "snap")
    assert time.monotonic() - began < 15


def test_on_file_level_tiers_prepare_runs_pre_and_cleanup_runs_post(tmp_path):
    log = tmp_path / "log"
    profile = custom(tmp_path, [log_cmd(log, "pause")], [log_cmd(log, "resume")])
    assert profile.prepare_files() == []
    profile.cleanup()
    profile.cleanup()  # post once per pre
    assert lines(log) == ["pause pre m1", "resume post m1"]


def test_post_runs_through_the_watchdog_when_the_runner_is_killed(tmp_path):
    log = tmp_path / "log"
    config = {"type": "custom", "max_freeze": "30s", "pre": [log_cmd(log, "pause")],
              "post": [log_cmd(log, "resume"), log_cmd(log, "notify")]}
    script = (
        "import sys, time\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import profile_from_config\n"
        "def snap():\n"
        "    print('paused', flush=True)\n"
        "    time.sleep(60)\n"
        "profile_from_config(%r, %r).frozen(snap)\n" % (sys.path, config, str(tmp_path)))
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert runner.stdout.readline().strip() == "paused"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    runner.stdout.close()
    began = time.monotonic()
    while len(lines(log)) < 3 and time.monotonic() - began < 5:
        time.sleep(0.05)
    assert lines(log) == ["pause pre m1", "resume post m1", "notify post m1"]


def test_config_errors(tmp_path):
    with pytest.raises(QuiesceFailed, match="without pre or post"):
        custom(tmp_path, [], [])
    with pytest.raises(QuiesceFailed, match=r"pre\[0\].argv"):
        custom(tmp_path, [{"argv": []}], [])
    with pytest.raises(QuiesceFailed, match=r"post\[0\].timeout"):
        custom(tmp_path, [], [{"argv": ["true"], "timeout": "forever"}])
    (hook,) = hooks_from_config([{"argv": ["true"], "timeout": "2m"}], "pre")
    assert hook.timeout == 120 and hook.env == {}
