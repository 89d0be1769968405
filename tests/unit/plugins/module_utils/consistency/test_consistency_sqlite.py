# -*- coding: utf-8 -*-
"""SQLite copies made while a writer commits: whole, checked, and a gap-free prefix of the rows."""
from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import QuiesceFailed, profile_from_config

# Commits rows 1, 2, 3, ... one transaction each, each with a payload, until killed. A busy
# application, not a tight loop: readers of a rollback-journal database starve under a writer
# that never lets go of its lock (SQLite's busy handler polls), whatever copies them.
WRITER = r"""
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
n = db.execute("select coalesce(max(n), 0) from rows").fetchone()[0]
print("writing", flush=True)
while True:
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("insert into rows (n, payload) values (?, randomblob(2000))", (n,))
    db.execute("update counter set last = ?", (n,))
    db.execute("COMMIT")
    time.sleep(0.002)
"""


def make_database(path, journal_mode: str) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=%s" % journal_mode)
    db.execute("create table rows (n integer primary key, payload blob)")
    db.execute("create table counter (last integer)")
    db.execute("insert into counter values (0)")
    # Ballast, so that one copy takes long enough for the writer to commit during it.
    db.execute("create table ballast (b blob)")
    db.executemany("insert into ballast values (randomblob(100000))", [()] * 200)
    db.commit()
    db.close()


def profile(tmp_path, databases, **config):
    config.update({"type": "sqlite", "sqlite": {"databases": [str(path) for path in databases]}})
    return profile_from_config(config, str(tmp_path / "staging"), str(tmp_path))


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_copies_under_a_concurrent_writer_are_gap_free_prefixes(tmp_path, journal_mode):
    database = tmp_path / "app.db"
    make_database(database, journal_mode)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(database)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        time.sleep(0.2)
        counts, during = [], []
        for _round in range(3):
            sqlite_profile = profile(tmp_path, [database])
            before = _last(database)
            (copy,) = sqlite_profile.prepare_files()
            after = _last(database)
            copied = sqlite3.connect(copy)
            try:
                assert copied.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                numbers = [row[0] for row in copied.execute("select n from rows order by n")]
                last = copied.execute("select last from counter").fetchone()[0]
                assert copied.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            finally:
                copied.close()
            assert numbers == list(range(1, len(numbers) + 1)), "the copy has gaps"
            assert last == len(numbers), "the two tables come from different moments"
            assert before <= len(numbers) <= after
            counts.append(len(numbers))
            during.append(after - before)
            assert not os.path.exists(copy + "-wal")
            sqlite_profile.cleanup()
            assert not os.path.exists(copy)
        assert counts[-1] > counts[0] > 0, "the writer did not make progress between the copies"
        assert max(during) > 0, "no commit happened while a copy was made: the test proves nothing"
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()


def _last(database) -> int:
    db = sqlite3.connect(database, timeout=30)
    try:
        return db.execute("select last from counter").fetchone()[0]
    finally:
        db.close()


def test_copies_are_private_and_mirror_the_original_path(tmp_path):
    database = tmp_path / "data" / "app.db"
    database.parent.mkdir()
    make_database(database, "wal")
    sqlite_profile = profile(tmp_path, [database])
    (copy,) = sqlite_profile.prepare_files()
    assert copy == str(tmp_path / "staging" / "sqlite") + str(database)
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "staging" / "sqlite").st_mode) == 0o700
    assert sqlite_profile.records[0].label == str(database) and sqlite_profile.records[0].seconds > 0
    sqlite_profile.cleanup()
    assert not (tmp_path / "staging" / "sqlite").exists()


def test_missing_or_corrupt_databases_fail(tmp_path):
    with pytest.raises(QuiesceFailed, match="does not exist"):
        profile(tmp_path, [tmp_path / "nope.db"]).prepare_files()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(QuiesceFailed, match="cannot copy"):
        profile(tmp_path, [garbage]).prepare_files()
    with pytest.raises(QuiesceFailed, match="without databases"):
        profile_from_config({"type": "sqlite", "sqlite": {"databases": []}}, str(tmp_path))


def test_frozen_holds_writers_off_and_lets_go(tmp_path):
    database = tmp_path / "app.db"
    make_database(database, "wal")
    sqlite_profile = profile(tmp_path, [database], max_freeze="30s")

    def snapshot():
        other = sqlite3.connect(database, timeout=0.2)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("insert into counter values (1)")
        finally:
            other.close()
        return "snap"

    result, record = sqlite_profile.frozen(snapshot)
    assert result == "snap" and record.consistent and record.seconds > 0
    other = sqlite3.connect(database, timeout=1)
    other.execute("insert into counter values (2)")
    other.commit()
    other.close()


def test_a_killed_runner_does_not_leave_the_database_locked(tmp_path):
    database = tmp_path / "app.db"
    make_database(database, "delete")
    script = (
        "import sys, time\n"
        "sys.path[:0] = %r\n"
        "from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import profile_from_config\n"
        "p = profile_from_config({'type': 'sqlite', 'max_freeze': '30s', 'sqlite': {'databases': [%r]}}, %r)\n"
        "def snap():\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
        "p.frozen(snap)\n" % (sys.path, str(database), str(tmp_path)))
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert runner.stdout.readline().strip() == "locked"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    runner.stdout.close()
    other = sqlite3.connect(database, timeout=3)
    began = time.monotonic()
    other.execute("insert into counter values (3)")
    other.commit()
    other.close()
    assert time.monotonic() - began < 3
