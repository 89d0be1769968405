# -*- coding: utf-8 -*-
"""Proofs of the PostgreSQL profile on a real cluster under write load, restored into sandboxes."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from db_helpers import APP_DB, ArgvWatcher, gap_free_prefix
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    QuiesceFailed, profile_from_config)
from ansible_collections.restorable.backup.plugins.module_utils.consistency.postgresql import (
    PostgreSQLProfile, label_fields, restore_files)


def profile(pg_source, staging: Path, mode: str, **extra) -> PostgreSQLProfile:
    config = {"type": "postgresql", "max_freeze": extra.pop("max_freeze", "30s"),
              "postgresql": {"mode": mode, "host": "127.0.0.1", "port": pg_source.port,
                             "user": pg_source.role, "password": pg_source.password, **extra}}
    made = profile_from_config(config, str(staging), str(staging))
    assert isinstance(made, PostgreSQLProfile)
    return made


def run_stream(source, out_path: Path) -> None:
    """What the runner does with a StreamSource: its stdout straight into the backup."""
    with open(out_path, "wb") as out:
        proc = subprocess.run(source.argv, env=source.env, stdout=out, stderr=subprocess.PIPE, timeout=120,
                              check=False)
    assert proc.returncode == 0, "%s: %s" % (source.describe(), proc.stderr.decode(errors="replace"))


def stream_into_restic(source, repo) -> None:
    """pg_dump | restic backup --stdin --stdin-filename NAME: no temporary copy anywhere."""
    producer = subprocess.Popen(source.argv, env=source.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    restic = subprocess.run(["restic", "-r", str(repo.path), "backup", "--stdin", "--stdin-filename", source.name,
                             "--tag", "pg-dump-proof", "--json"], stdin=producer.stdout, env=repo.env(),
                            capture_output=True, timeout=120, check=False)
    producer.stdout.close()
    assert producer.wait(60) == 0, producer.stderr.read().decode(errors="replace")
    assert restic.returncode == 0, restic.stderr.decode(errors="replace")


def rows_prefix(cluster, table: str) -> int:
    count, low, high = cluster.psql("SELECT count(*), min(n), max(n) FROM %s" % table, db=APP_DB).split("|")
    return gap_free_prefix(int(count), int(low) if low else None, int(high) if high else None)


def amcheck(cluster, db: str = APP_DB) -> None:
    result = cluster.run(["pg_amcheck", "-d", db, "--heapallindexed", "--rootdescend"], check=False)
    assert result.returncode == 0, "pg_amcheck found corruption: %s%s" % (result.stdout, result.stderr)


def no_secret_seen(watcher: ArgvWatcher, programs: set) -> None:
    assert watcher.hits == [], "the password appeared in argv: %s" % watcher.hits
    assert watcher.scans > 3
    assert programs & watcher.seen, "the scan never saw %s running (saw %d programs)" % (programs, len(watcher.seen))


def test_pg_dump_streams_under_write_load_restore_gap_free(pg_source, pg_write_load, pg_sandbox, secrets_dir,
                                                           restic_local_repo):
    load = pg_write_load("dump_rows")
    load.wait_for(300)
    committed_before = load.committed
    made = profile(pg_source, secrets_dir, "dump")
    out = pg_sandbox.new_root()  # readable by postgres, unlike the private staging directory
    with ArgvWatcher([pg_source.password]) as watcher:
        try:
            sources = made.streams()
            passfile = Path(sources[0].env["PGPASSFILE"])
            assert oct(passfile.stat().st_mode & 0o777) == oct(0o600)
            names = [source.name for source in sources]
            assert names == ["postgresql/globals.sql", "postgresql/app.dump", "postgresql/postgres.dump",
                             "postgresql/second.dump"]
            for source in sources:
                if source.name == "postgresql/app.dump":
                    stream_into_restic(source, restic_local_repo)
                else:
                    run_stream(source, out / Path(source.name).name)
        finally:
            made.cleanup()
    committed_after = load.stop()
    assert not passfile.exists(), "cleanup() left the passfile behind"
    no_secret_seen(watcher, {"pg_dump", "pg_dumpall", "psql"})

    dump = out / "app.dump"
    with open(dump, "wb") as handle:
        restored = subprocess.run(["restic", "-r", str(restic_local_repo.path), "dump", "--tag", "pg-dump-proof",
                                   "latest", "/postgresql/app.dump"], env=restic_local_repo.env(), stdout=handle,
                                  stderr=subprocess.PIPE, check=False)
    assert restored.returncode == 0, restored.stderr
    for path in out.iterdir():
        os.chmod(path, 0o644)

    sandbox = pg_sandbox()
    sandbox.run(["psql", "-X", "-q", "-f", out / "globals.sql"])  # roles; "already exists" is fine
    sandbox.run(["pg_restore", "--exit-on-error", "-C", "-d", "postgres", dump])
    amcheck(sandbox)
    assert sandbox.psql("SELECT count(*) FROM seed", db=APP_DB) == "2000"
    k = rows_prefix(sandbox, "dump_rows")
    assert committed_before <= k <= committed_after, (committed_before, k, committed_after)


def copy_tree_live(src: Path, dest: Path) -> None:
    """cp -a of a directory that changes while it is copied: files that vanish are skipped."""
    for root, dirs, files in os.walk(src):
        target = dest / os.path.relpath(root, src)
        target.mkdir(exist_ok=True)
        shutil.copystat(root, target)
        for name in files:
            try:
                shutil.copy2(os.path.join(root, name), target / name)
            except FileNotFoundError:
                pass


def test_backup_api_around_a_copy_restores_from_wal_archive(pg_source, pg_write_load, pg_sandbox, secrets_dir):
    load = pg_write_load("api_rows")
    load.wait_for(300)
    made = profile(pg_source, secrets_dir, "backup_api")
    restore_root = pg_sandbox.new_root()
    copy = restore_root / "data"
    marks = {}

    def snapshot():
        marks["before"] = load.committed  # committed while backup mode is on: must all come back
        copy_tree_live(pg_source.cluster.datadir, copy)
        return str(copy)

    committed_before = load.committed
    with ArgvWatcher([pg_source.password]) as watcher:
        result, record = made.frozen(snapshot)
    made.cleanup()
    committed_after = load.stop()
    no_secret_seen(watcher, {"psql"})
    assert result == str(copy)
    assert record.consistent and record.reason == ""
    assert 0 < record.seconds < 30
    label = json.loads(record.label)
    assert label_fields(label["backup_label"])["LABEL"] == "restorable"
    assert label["start_lsn"] and label["stop_lsn"]
    assert label["wal_archived"] is True
    assert (pg_source.archive_dir / label["stop_wal_file"]).exists(), "the stop segment is not in the archive"

    # Restore: the snapshot without its stale pg_wal and pid file, the label, WAL from the archive.
    (copy / "postmaster.pid").unlink(missing_ok=True)
    for item in (copy / "pg_wal").iterdir():
        if item.is_file():
            item.unlink()
    for name, text in restore_files(record.label).items():
        (copy / name).write_text(text)
    (copy / "recovery.signal").write_text("")
    sandbox = pg_sandbox(copy, {"archive_mode": "off",
                                "restore_command": "cp %s/%%f %%p" % pg_source.archive_dir})
    deadline = time.monotonic() + 60
    while sandbox.psql("SELECT pg_is_in_recovery()") != "f":
        assert time.monotonic() < deadline, "recovery did not finish"
        time.sleep(0.1)
    amcheck(sandbox)
    k = rows_prefix(sandbox, "api_rows")
    assert committed_before <= marks["before"] <= k <= committed_after, (marks, k, committed_after)
    log = sandbox.log_path.read_text()
    # Recovery started from the label's checkpoint (not the copied pg_control) and replayed archived WAL.
    assert "starting backup recovery with redo LSN" in log, log[-3000:]
    assert "restored log file" in log and "archive recovery complete" in log


def test_basebackup_stream_is_a_startable_cluster(pg_source, pg_write_load, pg_sandbox, secrets_dir):
    load = pg_write_load("base_rows")
    load.wait_for(200)
    committed_before = load.committed
    made = profile(pg_source, secrets_dir, "basebackup")
    sources = made.streams()
    assert [source.name for source in sources] == ["postgresql/base.tar"]
    restore_root = pg_sandbox.new_root()
    try:
        run_stream(sources[0], restore_root / "base.tar")
    finally:
        made.cleanup()
    committed_after = load.stop()
    data = restore_root / "data"
    with tarfile.open(restore_root / "base.tar") as tar:
        names = tar.getnames()
        assert "backup_label" in names and any(name.startswith("pg_wal/0") for name in names)
        tar.extractall(data)
    sandbox = pg_sandbox(data, {"archive_mode": "off"})
    amcheck(sandbox)
    k = rows_prefix(sandbox, "base_rows")
    assert committed_before <= k <= committed_after


def test_watchdog_ends_backup_mode_after_max_freeze(pg_source, secrets_dir):
    made = profile(pg_source, secrets_dir, "backup_api", max_freeze="1s")
    seen = {}

    def slow_snapshot():
        seen["pid"] = made._session.pid
        time.sleep(2.5)
        return "late"

    started = time.monotonic()
    with pytest.raises(QuiesceFailed) as raised:
        made.frozen(slow_snapshot)
    assert time.monotonic() - started < 10
    assert raised.value.result == "late"
    assert "max_freeze" in str(raised.value) and "pg_backup_stop" in str(raised.value), str(raised.value)
    assert raised.value.record is not None and not raised.value.record.consistent
    # The session that held backup mode is gone (killed at the deadline): backup mode ended with it.
    assert not Path("/proc/%d" % seen["pid"]).exists()
    assert pg_source.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'restorable'") == "0"


def test_without_a_password_clients_run_as_the_role_s_os_user(pg_source, pg_sandbox, secrets_dir):
    """Peer-style access over the socket: setpriv execs in place, so the session PID is psql's own."""
    config = {"type": "postgresql", "postgresql": {"mode": "dump", "host": str(pg_source.cluster.socket_dir),
                                                   "port": pg_source.port, "user": "postgres",
                                                   "databases": [APP_DB]}}
    made = profile_from_config(config, str(secrets_dir), str(secrets_dir))
    sources = made.streams()
    assert sources[1].argv[0] == "setpriv" and "PGPASSFILE" not in sources[1].env
    out = pg_sandbox.new_root()
    run_stream(sources[1], out / "app.dump")
    listing = subprocess.run(["pg_restore", "--list", str(out / "app.dump")], capture_output=True, text=True,
                             check=False)
    assert listing.returncode == 0 and "TABLE public seed" in listing.stdout

    seen = {}

    def snapshot():
        pid = made._session.pid
        with open("/proc/%d/comm" % pid, encoding="utf-8") as handle:
            seen["comm"] = handle.read().strip()
        seen["uid"] = os.stat("/proc/%d" % pid).st_uid
        return "snap"

    _result, record = made.frozen(snapshot)
    assert seen["comm"] == "psql", "the watchdog would kill %s, not the session" % seen["comm"]
    assert seen["uid"] == pwd.getpwnam("postgres").pw_uid
    assert record.consistent and json.loads(record.label)["wal_archived"] is True
