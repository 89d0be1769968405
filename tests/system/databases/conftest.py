# -*- coding: utf-8 -*-
"""Fixtures of the database consistency proofs: one real PostgreSQL 15 cluster and one real
MariaDB server for the whole session, sandboxes to restore into, and a write load.

Each server is started by its fixture (never by systemd) and stopped by its own PID.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import db_helpers
from db_helpers import (APP_DB, MARIADB_PASSWORD, MARIADB_USER, PG_PASSWORD, PG_ROLE, MariaDBServer, PgCluster, Sandboxes,
                        WriteLoads, chown_tree, mariadb_install, mariadb_start, pg_initdb, pg_start,
                        rmtree_quiet, shared_tmpdir)

db_helpers.make_collection_importable()


def _require(*binaries: str) -> None:
    missing = [name for name in binaries if not shutil.which(name)]
    if missing:
        pytest.fail("missing %s: run make deps (postgresql, mariadb-server, mariadb-backup)" % ", ".join(missing))


@dataclass
class PgSource:
    """The protected cluster: WAL archived into archive_dir, role PG_ROLE with a password."""

    cluster: PgCluster
    archive_dir: Path
    role: str = PG_ROLE
    password: str = PG_PASSWORD

    @property
    def port(self) -> int:
        return self.cluster.port


@pytest.fixture(scope="session")
def pg_source():
    _require("psql", "pg_dump")
    root = shared_tmpdir("restorable-pg-")
    datadir = root / "data"
    archive = root / "archive"
    archive.mkdir()
    chown_tree(root, "postgres")
    pg_initdb(datadir, root)
    cluster = pg_start(root, datadir, {
        "wal_level": "replica", "archive_mode": "on",
        "archive_command": "test ! -f %s/%%f && cp %%p %s/%%f" % (archive, archive)})
    try:
        cluster.psql("CREATE ROLE %s LOGIN REPLICATION PASSWORD '%s'" % (PG_ROLE, PG_PASSWORD))
        # Least privilege for dumps and the backup API; pg_checkpoint lets the profile
        # checkpoint before backup mode, which keeps pg_backup_start short.
        cluster.psql("GRANT pg_read_all_data, pg_checkpoint TO %s" % PG_ROLE)
        cluster.psql("GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO %s"
                     % PG_ROLE)
        cluster.psql("CREATE DATABASE %s" % APP_DB)
        cluster.psql("CREATE EXTENSION amcheck", db=APP_DB)
        cluster.psql("CREATE TABLE seed (id int PRIMARY KEY, payload text)", db=APP_DB)
        cluster.psql("INSERT INTO seed SELECT g, md5(g::text) FROM generate_series(1, 2000) g", db=APP_DB)
        cluster.psql("CREATE INDEX seed_payload ON seed (payload)", db=APP_DB)
        cluster.psql("CREATE DATABASE second")
        cluster.psql("CREATE TABLE notes (id int PRIMARY KEY)", db="second")
        yield PgSource(cluster, archive)
    finally:
        cluster.stop()
        rmtree_quiet(root)


@pytest.fixture
def pg_sandbox():
    """start(datadir=None, settings=None) -> PgCluster: a restore target on another port.

    Without datadir a fresh cluster is initialised; with one (a restored copy) it is started as is.
    Every sandbox is stopped by PID and removed after the test.
    """
    sandboxes = Sandboxes("restorable-pg-sandbox-")

    def start(datadir: Path | None = None, settings: dict | None = None) -> PgCluster:
        root = sandboxes.new_root()
        if datadir is None:
            datadir = root / "data"
            chown_tree(root, "postgres")
            pg_initdb(datadir, root)
        else:
            chown_tree(root, "postgres")
            chown_tree(datadir, "postgres")
            os.chmod(datadir, 0o700)
        cluster = pg_start(root, datadir, settings)
        sandboxes.servers.append(cluster)
        return cluster

    start.new_root = sandboxes.new_root
    yield start
    sandboxes.close()


@dataclass
class MariaDBSource:
    server: MariaDBServer
    user: str = MARIADB_USER
    password: str = MARIADB_PASSWORD


@pytest.fixture(scope="session")
def mariadb_source():
    _require("mariadb", "mariadbd", "mariadb-install-db", "mariabackup", "mbstream")
    root = shared_tmpdir("restorable-mariadb-")
    datadir = root / "data"
    chown_tree(root, "mysql")
    mariadb_install(datadir)
    server = mariadb_start(root, datadir)
    try:
        server.sql("CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'" % (MARIADB_USER, MARIADB_PASSWORD))
        # What mariabackup and FLUSH TABLES WITH READ LOCK need, no more.
        server.sql("GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SELECT ON *.* TO '%s'@'localhost'"
                   % MARIADB_USER)
        server.sql("CREATE DATABASE %s" % APP_DB)
        server.sql("CREATE TABLE seed (id int PRIMARY KEY, payload varchar(64), KEY (payload)) ENGINE=InnoDB",
                   db=APP_DB)
        server.sql("INSERT INTO seed SELECT seq, md5(seq) FROM seq_1_to_2000", db=APP_DB)
        yield MariaDBSource(server)
    finally:
        server.stop()
        rmtree_quiet(root)


@pytest.fixture
def mariadb_sandbox():
    """start(datadir) -> MariaDBServer on a prepared copy, on another port and socket."""
    sandboxes = Sandboxes("restorable-mariadb-sandbox-")

    def start(datadir: Path) -> MariaDBServer:
        chown_tree(datadir.parent, "mysql")
        server = mariadb_start(datadir.parent, datadir)
        sandboxes.servers.append(server)
        return server

    start.new_root = sandboxes.new_root
    yield start
    sandboxes.close()


@pytest.fixture
def pg_write_load(pg_source):
    """start(table) -> WriteLoad committing rows 1..N into a new table of the app database."""
    loads = WriteLoads()
    yield lambda table: loads.postgresql(pg_source.cluster, table)
    loads.stop_all()


@pytest.fixture
def mariadb_write_load(mariadb_source):
    loads = WriteLoads()
    yield lambda table: loads.mariadb(mariadb_source.server, table)
    loads.stop_all()


@pytest.fixture
def secrets_dir():
    """A private (0700) directory for password files of one test."""
    root = shared_tmpdir("restorable-secrets-")
    os.chmod(root, 0o700)
    yield root
    rmtree_quiet(root)
