# -*- coding: utf-8 -*-
"""A consistency profile in an agent run, through the installed standalone runner: a SQLite
database copied with the online backup API under concurrent writes, and what on_failure decides
when the application cannot be made consistent."""
from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent_helpers import restic_snapshots


@pytest.fixture
def database(tmp_path) -> Path:
    path = tmp_path / "app" / "app.db"
    path.parent.mkdir()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE rows (n INTEGER PRIMARY KEY)")
    return path


def _writer(path: Path, stop: threading.Event) -> None:
    connection = sqlite3.connect(path, timeout=30)
    n = 0
    while not stop.is_set():
        n += 1
        connection.execute("INSERT INTO rows VALUES (?)", (n,))
        connection.commit()
    connection.close()


def test_sqlite_copy_under_writes_is_consistent(agent, restic_local_repo, database, tmp_path):
    repo = restic_local_repo
    config = agent.config("appdb", str(repo.path), repo.password_file, [str(database.parent)],
                          excludes=[str(database) + "*"],
                          consistency={"type": "sqlite", "sqlite": {"databases": [str(database)]}})
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(database, stop))
    writer.start()
    try:
        time.sleep(0.3)
        run = agent.run(config)
    finally:
        stop.set()
        writer.join()
    assert run.returncode == 0, run
    status = agent.status("appdb")
    consistency = status["consistency"]
    assert (consistency["profile"], consistency["consistent"], consistency["reason"]) == ("sqlite", True, "")
    assert 0 < consistency["seconds"] < status["duration_seconds"]  # the online backup's window

    snapshot = restic_snapshots(repo.env(), str(repo.path), "--tag", "dataset:appdb")[-1]
    restored = tmp_path / "restored"
    subprocess.run(["restic", "-r", str(repo.path), "restore", snapshot["id"], "--target", str(restored),
                    "--include", "/**/app.db"], env=repo.env(), capture_output=True, check=True)
    [copy] = [p for p in restored.rglob("app.db") if "sqlite" in p.parts]
    with sqlite3.connect(copy) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, low, high = connection.execute("SELECT count(*), min(n), max(n) FROM rows").fetchone()
    assert count > 0 and (low, high) == (1, count)  # committed rows form a gap-free prefix


@pytest.mark.parametrize("on_failure", ["fail", "crash_consistent"])
def test_on_failure_decides_when_quiescing_fails(agent, restic_local_repo, tmp_path, on_failure):
    repo = restic_local_repo
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("payload\n")
    dataset = "quiesce-" + on_failure.replace("_", "-")
    config = agent.config(dataset, str(repo.path), repo.password_file, [str(data)], consistency={
        "type": "sqlite", "on_failure": on_failure, "sqlite": {"databases": [str(tmp_path / "missing.db")]}})
    run = agent.run(config)
    status = agent.status(dataset)
    if on_failure == "fail":
        assert run.returncode != 0 and status["result"] == "failed", run
        assert "could not make sqlite consistent" in status["reason"]
        assert restic_snapshots(repo.env(), str(repo.path), "--tag", "dataset:" + dataset) == []
    else:
        assert run.returncode == 0 and status["result"] == "success", run
        assert status["consistency"]["consistent"] is False and "missing.db" in status["consistency"]["reason"]
        assert any("only crash-consistent" in warning for warning in status["warnings"])
        assert len(restic_snapshots(repo.env(), str(repo.path), "--tag", "dataset:" + dataset)) == 1
