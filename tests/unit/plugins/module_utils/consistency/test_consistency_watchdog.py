# -*- coding: utf-8 -*-
"""The release watchdog: acts on deadline, on runner death and on request; never when disarmed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency import watchdog as watchdog_module
from ansible_collections.restorable.backup.plugins.module_utils.consistency.watchdog import (
    Watchdog, WatchdogError, _process_start_ticks, _run_action_kill)

MODULE = "ansible_collections.restorable.backup.plugins.module_utils.consistency.watchdog"


def wait_for_file(path, timeout: float) -> float | None:
    """Seconds until path exists, None if it did not appear in time."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if os.path.exists(path):
            return time.monotonic() - began
        time.sleep(0.02)
    return None


def test_disarmed_watchdog_does_nothing(tmp_path):
    dog = Watchdog(2, log_path=str(tmp_path / "wd.log"))
    dog.start()
    dog.add_command(["touch", str(tmp_path / "fired")])
    assert dog.disarm() is False
    time.sleep(2.3)
    assert not (tmp_path / "fired").exists()
    assert dog.proc.poll() == 0
    log = (tmp_path / "wd.log").read_text()
    assert "armed" in log and "disarmed" in log and "firing" not in log


def test_deadline_runs_the_actions_last_registered_first(tmp_path):
    order = tmp_path / "order"
    dog = Watchdog(1, log_path=str(tmp_path / "wd.log"))
    began = time.monotonic()
    dog.start()
    for word in ("first", "second", "third"):
        dog.add_command(["sh", "-c", "echo %s >> %s" % (word, order)])
    assert wait_for_file(order, 3) is not None
    time.sleep(0.2)
    assert 0.9 <= time.monotonic() - began
    assert order.read_text().split() == ["third", "second", "first"]
    assert dog.disarm() is True  # too late: it reports that it fired
    assert "deadline" in dog.fired["reason"] and len(dog.fired["actions"]) == 3
    assert "firing: deadline" in (tmp_path / "wd.log").read_text()


def test_release_now_acts_at_once_and_reports(tmp_path):
    dog = Watchdog(60)
    dog.start()
    dog.add_command(["sh", "-c", "echo out; exit 3"])
    began = time.monotonic()
    assert dog.release_now() is True
    assert time.monotonic() - began < 2
    action = dog.fired["actions"][0]
    assert action["returncode"] == 3 and action["output"] == "out"


def test_runner_death_fires_long_before_the_deadline(tmp_path):
    marker = tmp_path / "released"
    script = (
        "import sys, time\n"
        "sys.path[:0] = %r\n"
        "from %s import Watchdog\n"
        "dog = Watchdog(60, log_path=%r)\n"
        "dog.start()\n"
        "dog.add_command(['touch', %r])\n"
        "print(dog.pid, flush=True)\n"
        "time.sleep(120)\n" % (sys.path, MODULE, str(tmp_path / "wd.log"), str(marker)))
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        watchdog_pid = int(runner.stdout.readline())
        runner.kill()
        runner.wait()
        assert wait_for_file(marker, 3) is not None, "the watchdog did not act after its runner died"
        assert "runner gone" in (tmp_path / "wd.log").read_text()
        for _attempt in range(100):  # it exits after acting
            if _process_start_ticks(watchdog_pid) is None or _is_zombie(watchdog_pid):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the watchdog process is still running")
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.stdout.close()


def _is_zombie(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_watchdog_survives_sigterm(tmp_path):
    dog = Watchdog(60)
    dog.start()
    dog.add_command(["touch", str(tmp_path / "fired")])
    os.kill(dog.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert dog.proc.poll() is None
    assert not (tmp_path / "fired").exists()
    assert dog.disarm() is False


def test_kill_action_kills_the_registered_process():
    victim = subprocess.Popen(["sleep", "60"])
    try:
        dog = Watchdog(60)
        dog.start()
        dog.add_kill(victim.pid)
        assert dog.release_now() is True
        assert victim.wait(timeout=3) == -signal.SIGKILL
        assert dog.fired["actions"][0]["result"] == "killed"
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_kill_action_spares_a_reused_pid():
    victim = subprocess.Popen(["sleep", "60"])
    try:
        ticks = _process_start_ticks(victim.pid)
        outcome = _run_action_kill(victim.pid, ticks + 1)
        assert "reused" in outcome["result"]
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    assert _run_action_kill(victim.pid, ticks)["result"] == "already gone"


def test_a_hanging_action_is_killed_after_its_timeout(tmp_path):
    dog = Watchdog(60)
    dog.start()
    dog.add_command(["touch", str(tmp_path / "after")])
    dog.add_command(["sleep", "100"], timeout=0.5)  # runs first
    began = time.monotonic()
    assert dog.release_now() is True
    assert time.monotonic() - began < 3
    hung, after = dog.fired["actions"]
    assert hung["timed_out"] is True and hung["returncode"] == -signal.SIGKILL
    assert after["returncode"] == 0 and (tmp_path / "after").exists()


def test_command_env_reaches_the_action_but_not_the_log(tmp_path):
    out = tmp_path / "env"
    log = tmp_path / "wd.log"
    dog = Watchdog(60, log_path=str(log))
    dog.start()
    dog.add_command(["sh", "-c", "echo $APP_TOKEN > %s" % out], env={"APP_TOKEN": "tok-secret-1234"})
    dog.release_now()
    assert out.read_text().strip() == "tok-secret-1234"
    assert "tok-secret-1234" not in log.read_text()
    assert "tok-secret-1234" not in " ".join(_cmdline(dog.pid))


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def test_runs_as_a_module_by_hand(tmp_path):
    marker = tmp_path / "fired"
    config = json.dumps({"deadline": time.monotonic() + 30, "max_seconds": 30})
    proc = subprocess.run([sys.executable, "-m", MODULE, config], capture_output=True, text=True, timeout=20, check=False,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                          input=json.dumps({"op": "command", "argv": ["touch", str(marker)]}) + "\n")
    events = [json.loads(line)["event"] for line in proc.stdout.splitlines()]
    assert events == ["ready", "ok", "fired"]  # end of input without disarm: the runner is gone
    assert marker.exists()


def test_starts_from_a_zip_like_ansiballz(tmp_path):
    archive = tmp_path / "payload.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(watchdog_module.__file__, "pkg/watchdog.py")
        bundle.writestr("pkg/__init__.py", "")
    marker = tmp_path / "fired"
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from pkg.watchdog import Watchdog\n"
              "dog = Watchdog(30); dog.start(); dog.add_command(['touch', %r]); print(dog.release_now())\n"
              % (str(archive), str(marker)))
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert proc.stdout.strip() == "True", proc.stderr
    assert marker.exists()


def test_errors_before_start_and_bad_deadline():
    with pytest.raises(ValueError):
        Watchdog(0)
    with pytest.raises(WatchdogError):
        Watchdog(5).add_command(["true"])
    assert Watchdog(5).disarm() is False


def test_a_watchdog_that_cannot_start_is_an_error(monkeypatch):
    monkeypatch.setattr(watchdog_module.sys, "executable", "/nonexistent/python")
    with pytest.raises(WatchdogError, match="cannot start"):
        Watchdog(5).start()
