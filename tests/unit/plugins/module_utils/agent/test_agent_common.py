# -*- coding: utf-8 -*-
"""Shared helpers: durations, atomic files, run locks, processes and secrets."""
from __future__ import annotations

import os
import signal
import time

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.common.durations import format_duration, parse_duration
from ansible_collections.restorable.backup.plugins.module_utils.common.fileio import atomic_write, read_json
from ansible_collections.restorable.backup.plugins.module_utils.common.locks import FileLock, LockBusy
from ansible_collections.restorable.backup.plugins.module_utils.common.process import (
    Redactor, SecretFileError, base_env, read_env_file, read_secret_file, run_command)


@pytest.mark.parametrize("value, seconds", [("30s", 30), ("15m", 900), ("26h", 93600), ("7d", 604800),
                                            ("2w", 1209600), (45, 45), (2.5, 2)])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["15", "m", "1.5h", "-3s", True, None, [], -1])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="^timeout: "):
        parse_duration(value, "timeout")


def test_format_duration():
    assert [format_duration(s) for s in (5, 90, 3600, 5400, 86400 * 7)] == ["5s", "1m30s", "1h", "90m", "1w"]


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "sub" / "status.json"
    atomic_write(str(path), '{"a": 1}', mode=0o640)
    assert read_json(str(path)) == {"a": 1}
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"
    atomic_write(str(path), b'{"a": 2}')
    assert read_json(str(path)) == {"a": 2}
    assert os.listdir(path.parent) == ["status.json"]
    assert read_json(str(tmp_path / "absent.json")) is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        read_json(str(tmp_path / "bad.json"))


def test_lock_is_exclusive_and_names_its_holder(tmp_path):
    path = str(tmp_path / "www.lock")
    with FileLock(path) as first:
        assert first.held
        with pytest.raises(LockBusy) as busy:
            FileLock(path).acquire()
        assert busy.value.holder.startswith("pid %d since " % os.getpid())
    with FileLock(path):
        pass


def test_lock_dies_with_its_process(tmp_path):
    path = str(tmp_path / "www.lock")
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: take the lock, say so, and get killed holding it
        FileLock(path).acquire()
        os.write(ready_write, b"1")
        time.sleep(60)
        os._exit(0)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"1"
    os.close(ready_read)
    with pytest.raises(LockBusy):
        FileLock(path).acquire()
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with FileLock(path) as lock:
        assert lock.held


def test_run_command_output_and_exit_code():
    result = run_command(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr, result.ok) == (3, "out\n", "err\n", False)
    assert run_command(["/nonexistent/tool"]).returncode == 127


def test_run_command_timeout_stops_the_whole_process_group(tmp_path):
    marker = tmp_path / "grandchild-survived"
    script = "(sleep 3; touch %s) & sleep 30" % marker
    started = time.monotonic()
    result = run_command(["/bin/sh", "-c", script], timeout=0.5, stop_grace=2)
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 5
    time.sleep(3.5)
    assert not marker.exists(), "a child of the timed-out command kept running"


def test_run_command_escalates_to_sigkill():
    started = time.monotonic()
    result = run_command(["/bin/sh", "-c", "trap '' TERM; sleep 30"], timeout=0.3, stop_grace=0.5)
    assert result.timed_out and result.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_base_env_is_a_whitelist(monkeypatch):
    monkeypatch.setenv("RESTIC_PASSWORD", "leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = base_env({"EXTRA": "1"})
    assert env["LANG"] == "C.UTF-8" and env["EXTRA"] == "1" and "PATH" in env
    assert "RESTIC_PASSWORD" not in env and "AWS_SECRET_ACCESS_KEY" not in env


def test_secret_files(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cr3t-password\n")
    os.chmod(pw, 0o600)
    assert read_secret_file(str(pw)) == "s3cr3t-password"
    os.chmod(pw, 0o640)
    with pytest.raises(SecretFileError, match=r"readable by group or others \(mode 0640\); it must be 0600"):
        read_secret_file(str(pw), "repository password file")
    with pytest.raises(SecretFileError, match="does not exist"):
        read_secret_file(str(tmp_path / "absent"))
    env = tmp_path / "env"
    env.write_text("# keys\nAWS_ACCESS_KEY_ID=AKIA\n\nAWS_SECRET_ACCESS_KEY=a=b=c\n")
    os.chmod(env, 0o600)
    assert read_env_file(str(env)) == {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "a=b=c"}
    env.write_text("export AWS_SECRET_ACCESS_KEY secret-value\n")
    with pytest.raises(SecretFileError) as error:
        read_env_file(str(env))
    assert "line 1 is not NAME=VALUE" in str(error.value) and "secret-value" not in str(error.value)


def test_redactor():
    redact = Redactor(["hunter2-long", "", "ab"])
    redact.add("hunter2-long-and-longer")
    assert redact("a hunter2-long-and-longer b hunter2-long c ab") == "a *** b *** c ab"
