# -*- coding: utf-8 -*-
"""Proofs of the MariaDB profile on a real server: a hot stream restores gap-free under write
load, the read lock blocks writers while held, and the watchdog releases it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from db_helpers import APP_DB, ArgvWatcher, gap_free_prefix
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    QuiesceFailed, profile_from_config)
from ansible_collections.restorable.backup.plugins.module_utils.consistency.mariadb import MariaDBProfile


def config(mariadb_source, mode: str, max_freeze: str = "30s") -> dict:
    return {"type": "mariadb", "max_freeze": max_freeze,
            "mariadb": {"mode": mode, "socket": str(mariadb_source.server.socket), "user": mariadb_source.user,
                        "password": mariadb_source.password}}


def profile(mariadb_source, staging: Path, mode: str, max_freeze: str = "30s") -> MariaDBProfile:
    made = profile_from_config(config(mariadb_source, mode, max_freeze), str(staging), str(staging))
    assert isinstance(made, MariaDBProfile)
    return made


def start_writer(server, table: str, value: int) -> subprocess.Popen:
    """A separate client inserting one row: it blocks while a global read lock is held."""
    return subprocess.Popen(server.client_argv(APP_DB)[:-1] + ["-e", "INSERT INTO %s (n) VALUES (%d)" % (table, value),
                                                               APP_DB],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def rows_prefix(server, table: str) -> int:
    count, low, high = server.sql("SELECT count(*), min(n), max(n) FROM %s" % table, db=APP_DB).split("\t")
    return gap_free_prefix(int(count), None if low == "NULL" else int(low), None if high == "NULL" else int(high))


def test_mariabackup_stream_under_write_load_restores_gap_free(mariadb_source, mariadb_write_load, mariadb_sandbox,
                                                               secrets_dir):
    load = mariadb_write_load("stream_rows")
    load.wait_for(300)
    committed_before = load.committed
    made = profile(mariadb_source, secrets_dir, "mariabackup")
    restore_root = mariadb_sandbox.new_root()
    data = restore_root / "data"
    data.mkdir()
    with ArgvWatcher([mariadb_source.password]) as watcher:
        try:
            sources = made.streams()
            assert [source.name for source in sources] == ["mariadb/backup.xbstream"]
            option_file = Path(sources[0].argv[1].split("=", 1)[1])
            assert oct(option_file.stat().st_mode & 0o777) == oct(0o600)
            # The runner pipes stdout into the repository; here into mbstream -x, also without a copy.
            producer = subprocess.Popen(sources[0].argv, env=sources[0].env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
            extract = subprocess.run(["mbstream", "-x", "-C", str(data)], stdin=producer.stdout,
                                     capture_output=True, timeout=120, check=False)
            producer.stdout.close()
            stderr = producer.stderr.read().decode(errors="replace")
            assert producer.wait(60) == 0, stderr[-2000:]
            assert extract.returncode == 0, extract.stderr
        finally:
            made.cleanup()
    committed_after = load.stop()
    assert not option_file.exists(), "cleanup() left the option file behind"
    assert watcher.hits == [], "the password appeared in argv: %s" % watcher.hits
    assert "mariabackup" in watcher.seen

    prepared = subprocess.run(["mariabackup", "--prepare", "--target-dir=%s" % data], capture_output=True, text=True,
                              check=False)
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    sandbox = mariadb_sandbox(data)
    assert sandbox.port != mariadb_source.server.port
    checked = sandbox.sql("CHECK TABLE %s.stream_rows, %s.seed" % (APP_DB, APP_DB))
    statuses = [line.split("\t") for line in checked.splitlines()]
    assert statuses and all(row[2] == "status" and row[3] == "OK" for row in statuses), checked
    assert sandbox.sql("SELECT count(*) FROM seed", db=APP_DB) == "2000"
    k = rows_prefix(sandbox, "stream_rows")
    assert committed_before <= k <= committed_after, (committed_before, k, committed_after)


def test_read_lock_blocks_writers_until_released(mariadb_source, secrets_dir):
    server = mariadb_source.server
    server.sql("CREATE TABLE lock_rows (n int PRIMARY KEY) ENGINE=InnoDB", db=APP_DB)
    made = profile(mariadb_source, secrets_dir, "read_lock")
    seen = {}

    def snapshot():
        writer = start_writer(server, "lock_rows", 1)
        time.sleep(1.0)
        seen["blocked"] = writer.poll() is None
        seen["writer"] = writer
        seen["rows_during"] = server.sql("SELECT count(*) FROM lock_rows", db=APP_DB)
        return "snap"

    with ArgvWatcher([mariadb_source.password]) as watcher:
        result, record = made.frozen(snapshot)
    assert result == "snap" and record.consistent
    assert seen["blocked"], "a writer completed while FLUSH TABLES WITH READ LOCK was held"
    assert seen["rows_during"] == "0"
    writer = seen["writer"]
    assert writer.wait(10) == 0, writer.stderr.read()
    assert server.sql("SELECT count(*) FROM lock_rows", db=APP_DB) == "1"
    assert 1.0 <= record.seconds < 5
    assert watcher.hits == []
    left = [path.name for path in secrets_dir.iterdir() if path.name != "consistency-watchdog.log"]
    assert left == [], "the option file outlived frozen(): %s" % left


def test_watchdog_releases_the_lock_at_max_freeze(mariadb_source, secrets_dir):
    server = mariadb_source.server
    server.sql("CREATE TABLE deadline_rows (n int PRIMARY KEY) ENGINE=InnoDB", db=APP_DB)
    made = profile(mariadb_source, secrets_dir, "read_lock", max_freeze="1s")
    seen = {}

    def stuck_snapshot():
        writer = start_writer(server, "deadline_rows", 1)
        started = time.monotonic()
        seen["freed_after"] = None
        while time.monotonic() - started < 4:
            if writer.poll() is not None:
                seen["freed_after"] = time.monotonic() - started
                break
            time.sleep(0.02)
        seen["writer"] = writer
        return "late"

    with pytest.raises(QuiesceFailed) as raised:
        made.frozen(stuck_snapshot)
    assert "max_freeze" in str(raised.value) and "UNLOCK TABLES" in str(raised.value)
    assert raised.value.result == "late" and not raised.value.record.consistent
    # The writer got through while the snapshot was still running: the watchdog had unlocked.
    assert seen["freed_after"] is not None and seen["freed_after"] < 3, seen
    assert seen["writer"].returncode == 0


RUNNER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import profile_from_config
    import json
    profile = profile_from_config(json.loads(sys.argv[2]), sys.argv[3], sys.argv[3])

    def snapshot():
        open(sys.argv[4], "w").write("locked")
        time.sleep(600)

    profile.frozen(snapshot)
""")


def test_lock_released_when_the_runner_is_killed(mariadb_source, secrets_dir, tmp_path):
    server = mariadb_source.server
    server.sql("CREATE TABLE killed_rows (n int PRIMARY KEY) ENGINE=InnoDB", db=APP_DB)
    import ansible_collections
    collection_root = str(Path(ansible_collections.__path__[0]).parent)
    marker = tmp_path / "locked"
    max_freeze = 5
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, collection_root,
                               json.dumps(config(mariadb_source, "read_lock", "%ds" % max_freeze)),
                               str(secrets_dir), str(marker)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert runner.poll() is None, runner.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline, "the runner never took the lock"
            time.sleep(0.02)
        writer = start_writer(server, "killed_rows", 1)
        time.sleep(0.5)
        assert writer.poll() is None, "the writer was not blocked by the lock"
        killed_at = time.monotonic()
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
        assert writer.wait(max_freeze + 5) == 0
        released_after = time.monotonic() - killed_at
    finally:
        if runner.poll() is None:
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait()
    assert released_after < max_freeze + 2, released_after
    assert server.sql("SELECT count(*) FROM killed_rows", db=APP_DB) == "1"
    # The watchdog noticed the runner's death and acted (its session kill may find it gone already).
    log_path = secrets_dir / "consistency-watchdog.log"
    deadline = time.monotonic() + 10
    while "firing" not in (log_path.read_text() if log_path.exists() else ""):
        assert time.monotonic() < deadline, "the watchdog did not fire"
        time.sleep(0.05)
    assert "runner gone" in log_path.read_text()
