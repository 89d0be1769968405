# -*- coding: utf-8 -*-
"""Fixtures of the application-layer drills: one real PostgreSQL 15 cluster and one real MariaDB
server per session, each backed up once (under write load) by the real runner into a restic
repository, plus the broken backups the failure tests drill.

Servers are started by these fixtures and stopped by their own PIDs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "databases"))

from db_helpers import (APP_DB, ArgvWatcher, WriteLoad, chown_tree, mariadb_install, mariadb_start, pg_env, pg_initdb,  # noqa: E402
                        pg_start, rmtree_quiet, shared_tmpdir)
from drill_helpers import PASSWORD, Source  # noqa: E402

HOST = "src-host"


def _require(*binaries: str) -> None:
    missing = [name for name in binaries if not shutil.which(name)]
    if missing:
        pytest.fail("missing %s: run make deps (postgresql, mariadb-server, mariadb-backup)" % ", ".join(missing))


def make_db_source(root: Path, dataset: str, consistency: dict[str, Any] | None = None,
                   paths: list[str] | None = None, excludes: list[str] | None = None,
                   repository: Path | None = None) -> Source:
    """A dataset of HOST backed up by the real runner (BackupRunner) into a (shared) repository."""
    root.mkdir(parents=True, exist_ok=True)
    data = root / "files"
    data.mkdir(exist_ok=True)
    (data / "config.txt").write_text("application configuration of %s\n" % dataset)
    password = root / "password"
    password.write_text(PASSWORD)
    password.chmod(0o600)
    repository = repository or root / "repository"
    config = root / ("%s.json" % dataset)
    document: dict[str, Any] = {
        "format": 1, "dataset": dataset, "host": HOST,
        "repository": {"url": str(repository), "password_file": str(password)},
        "paths": paths or [str(data)], "excludes": excludes or [], "status_dir": str(root / "status"),
        "retention": {"last": 10}, "restic": {"cache_dir": str(root / "cache")}}
    if consistency:
        document["consistency"] = consistency
    config.write_text(json.dumps(document))
    source = Source(root, data, repository, config, dataset=dataset)
    if not (repository / "config").exists():
        source.restic("init")
    return source


def restic_bytes(source: Source, *args: str, data: bytes | None = None) -> bytes:
    """restic on the source's repository with binary input and output (Source.restic is text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
    env["RESTIC_PASSWORD_FILE"] = str(source.root / "password")
    env["RESTIC_CACHE_DIR"] = str(source.root / "cache")
    return subprocess.run(["restic", "-r", str(source.repository), *args], input=data, env=env, check=True,
                          capture_output=True).stdout


def store_stream(source: Source, name: str, data: bytes) -> None:
    """A stream snapshot of the source's latest run, as the runner tags it (for broken backups)."""
    restic_bytes(source, "backup", "--quiet", "--host", HOST, "--stdin", "--stdin-filename", name,
                 "--tag", "dataset:%s" % source.dataset, "--tag", "stream:%s" % name, data=data)


class PgDrillBackups:
    """The session's PostgreSQL cluster and its backups: dump, base backup, crash copy."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cluster = None
        self.load: WriteLoad | None = None
        self.committed = 0
        self.sources: dict[str, Source] = {}

    def start(self) -> None:
        datadir = self.root / "data"
        chown_tree(self.root, "postgres")
        pg_initdb(datadir, self.root)
        self.cluster = pg_start(self.root, datadir, {"wal_level": "replica"})
        cluster = self.cluster
        cluster.psql("CREATE DATABASE %s" % APP_DB)
        cluster.psql("CREATE ROLE appowner LOGIN")
        cluster.psql("CREATE TABLE seed (id int PRIMARY KEY, payload text)", db=APP_DB)
        cluster.psql("INSERT INTO seed SELECT g, md5(g::text) FROM generate_series(1, 2000) g", db=APP_DB)
        cluster.psql("CREATE INDEX seed_payload ON seed (payload)", db=APP_DB)
        cluster.psql("ALTER TABLE seed OWNER TO appowner", db=APP_DB)
        cluster.psql("CREATE TABLE rows_under_load (n int PRIMARY KEY, at timestamptz DEFAULT now())", db=APP_DB)
        self.load = WriteLoad(cluster.client_argv(APP_DB), "rows_under_load", env=pg_env(cluster.root),
                              user="postgres").start()
        self.load.wait_for(200)

    def back_up(self, work: Path) -> None:
        cluster = self.cluster
        connection = {"host": str(cluster.socket_dir), "port": cluster.port, "user": "postgres"}
        self.sources["dump"] = make_db_source(work / "dump", "pgdump", {
            "type": "postgresql", "on_failure": "fail", "postgresql": dict(connection, mode="dump")})
        self.sources["basebackup"] = make_db_source(work / "base", "pgbase", {
            "type": "postgresql", "on_failure": "fail", "postgresql": dict(connection, mode="basebackup")},
            repository=self.sources["dump"].repository)
        # The injected fault: the running cluster's directory copied as plain files, WAL left out.
        self.sources["crash"] = make_db_source(work / "crash", "pgcrash", None, paths=[str(cluster.datadir)],
                                               excludes=[str(cluster.datadir / "pg_wal")],
                                               repository=self.sources["dump"].repository)
        for source in self.sources.values():
            source.backup()
        self.committed = self.load.stop()

    def stop(self) -> None:
        if self.load is not None:
            self.load.stop()
        if self.cluster is not None:
            self.cluster.stop()


def backed_up(kind: type, prefix: str) -> Iterator:
    """A server of kind started in its own directory and backed up once; stopped and removed after."""
    root = shared_tmpdir(prefix + "-")
    work = shared_tmpdir(prefix + "-src-")
    backups = kind(root)
    try:
        backups.start()
        backups.back_up(work)
        yield backups
    finally:
        backups.stop()
        rmtree_quiet(root)
        rmtree_quiet(work)


@pytest.fixture(scope="session")
def pg_drill_backups():
    _require("psql", "pg_dump", "restic")
    yield from backed_up(PgDrillBackups, "restorable-drill-pg")


class MariaDBDrillBackups:
    """The session's MariaDB server and its mariabackup stream (plus a truncated copy)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = None
        self.sources: dict[str, Source] = {}
        self.committed = 0

    def start(self) -> None:
        datadir = self.root / "data"
        chown_tree(self.root, "mysql")
        mariadb_install(datadir)
        self.server = mariadb_start(self.root, datadir)
        server = self.server
        server.sql("CREATE DATABASE %s" % APP_DB)
        server.sql("CREATE TABLE seed (id int PRIMARY KEY, payload varchar(64), KEY (payload)) ENGINE=InnoDB",
                   db=APP_DB)
        server.sql("INSERT INTO seed SELECT seq, md5(seq) FROM seq_1_to_2000", db=APP_DB)
        server.sql("CREATE TABLE rows_under_load (n int PRIMARY KEY) ENGINE=InnoDB", db=APP_DB)

    def back_up(self, work: Path) -> None:
        server = self.server
        load = WriteLoad(server.client_argv(APP_DB), "rows_under_load").start()
        try:
            load.wait_for(100)
            self.sources["good"] = make_db_source(work / "good", "mdb", {
                "type": "mariadb", "on_failure": "fail",
                "mariadb": {"mode": "mariabackup", "socket": str(server.socket)}})
            self.sources["good"].backup()
        finally:
            self.committed = load.stop()
        # The injected fault: the same run's stream cut in half (a copy that broke off).
        good = self.sources["good"]
        whole = restic_bytes(good, "dump", "--tag", "stream:mariadb/backup.xbstream", "latest",
                             "/mariadb/backup.xbstream")
        bad = make_db_source(work / "bad", "mdbbad", None, repository=good.repository)
        bad.backup()
        store_stream(bad, "mariadb/backup.xbstream", whole[:len(whole) // 2])
        self.sources["truncated"] = bad

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture(scope="session")
def mariadb_drill_backups():
    _require("mariadbd", "mariabackup", "mbstream", "restic")
    yield from backed_up(MariaDBDrillBackups, "restorable-drill-mariadb")


def server_processes(path: Path) -> list[str]:
    """Command lines of running processes that name path (a scratch server left behind)."""
    with ArgvWatcher([str(path)]) as watcher:
        while watcher.scans < 1:
            time.sleep(0.01)
    return watcher.hits
