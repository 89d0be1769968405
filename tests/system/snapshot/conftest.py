# -*- coding: utf-8 -*-
"""Fixtures of the snapshot system tests: one btrfs on a loop device for the session, with a real
PostgreSQL 15 and a real MariaDB whose data directories live on btrfs subvolumes.

Loop devices follow tests/system/consistency/conftest.py; servers, write loads and sandboxes are
the helpers of tests/system/databases/db_helpers.py. Everything is stopped by its PID and only the
loop devices attached here are detached.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "databases"))

import db_helpers  # noqa: E402  pylint: disable=wrong-import-position
from db_helpers import (APP_DB, PG_PASSWORD, PG_ROLE, MariaDBServer, PgCluster, Sandboxes, WriteLoads,  # noqa: E402
                        chown_tree, mariadb_install, mariadb_start, pg_initdb, pg_start, rmtree_quiet,
                        shared_tmpdir)
from loop_helpers import LoopMount, loop_mount, must  # noqa: E402  pylint: disable=wrong-import-position

db_helpers.make_collection_importable()


def _unusable() -> str | None:
    if os.geteuid() != 0:
        return "loop devices and btrfs need root"
    for tool in ("losetup", "mount", "mkfs.btrfs", "btrfs", "fsfreeze", "mkfs.xfs"):
        if shutil.which(tool) is None:
            return "%s is not installed" % tool
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control"
    return None


@dataclass
class Btrfs:
    """The session's btrfs; subvolume(name) makes a volume on it."""

    mount: LoopMount

    @property
    def root(self) -> Path:
        return self.mount.mountpoint

    def subvolume(self, name: str) -> Path:
        path = self.root / name
        must(["btrfs", "subvolume", "create", path])
        os.chmod(path, 0o755)
        return path

    def snapshots(self) -> list[str]:
        """Every snapshot below .restorable-snapshots (what a test left behind)."""
        listing = must(["btrfs", "subvolume", "list", self.root]).splitlines()
        return sorted({line.split(" path ", 1)[1] for line in listing if ".restorable-snapshots" in line})


@pytest.fixture(scope="session")
def btrfs():
    reason = _unusable()
    if reason:
        pytest.skip(reason)
    holder = shared_tmpdir("restorable-snapfs-")
    fs = loop_mount(holder / "btrfs.img", holder / "mnt", "btrfs", 2048)
    os.chmod(fs.mountpoint, 0o755)
    try:
        yield Btrfs(fs)
    finally:
        fs.close()
        rmtree_quiet(holder)


@dataclass
class PgOnBtrfs:
    cluster: PgCluster
    volume: Path  # the subvolume; the data directory is volume/data
    role: str = PG_ROLE
    password: str = PG_PASSWORD


@pytest.fixture(scope="session")
def pg_on_btrfs(btrfs):
    """PostgreSQL 15 with its data directory on a subvolume; WAL not archived (the snapshot must do)."""
    volume = btrfs.subvolume("pg")
    root = shared_tmpdir("restorable-snap-pg-")
    chown_tree(root, "postgres")
    chown_tree(volume, "postgres")
    datadir = volume / "data"
    pg_initdb(datadir, root)
    cluster = pg_start(root, datadir, {"wal_level": "replica", "max_wal_size": "256MB"})
    try:
        cluster.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PG_ROLE, PG_PASSWORD))
        cluster.psql("GRANT pg_checkpoint TO %s" % PG_ROLE)
        cluster.psql("GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean), pg_backup_stop(boolean) TO %s"
                     % PG_ROLE)
        cluster.psql("CREATE DATABASE %s" % APP_DB)
        cluster.psql("CREATE EXTENSION amcheck", db=APP_DB)
        cluster.psql("CREATE TABLE seed (id int PRIMARY KEY, payload text)", db=APP_DB)
        cluster.psql("INSERT INTO seed SELECT g, md5(g::text) FROM generate_series(1, 20000) g", db=APP_DB)
        cluster.psql("CREATE INDEX seed_payload ON seed (payload)", db=APP_DB)
        yield PgOnBtrfs(cluster, volume)
    finally:
        cluster.stop()
        rmtree_quiet(root)


@dataclass
class MariaDBOnBtrfs:
    server: MariaDBServer
    volume: Path


@pytest.fixture(scope="session")
def mariadb_on_btrfs(btrfs):
    volume = btrfs.subvolume("mariadb")
    root = shared_tmpdir("restorable-snap-mariadb-")
    chown_tree(root, "mysql")
    datadir = volume / "data"
    mariadb_install(datadir)
    server = mariadb_start(root, datadir)
    try:
        server.sql("CREATE DATABASE %s" % APP_DB)
        server.sql("CREATE TABLE seed (id int PRIMARY KEY, payload varchar(64), KEY (payload)) ENGINE=InnoDB", db=APP_DB)
        server.sql("INSERT INTO seed SELECT seq, md5(seq) FROM seq_1_to_20000", db=APP_DB)
        yield MariaDBOnBtrfs(server, volume)
    finally:
        server.stop()
        rmtree_quiet(root)


@pytest.fixture
def pg_write_load(pg_on_btrfs):
    """start(table) -> WriteLoad committing rows 1..N into a new table of the app database."""
    loads = WriteLoads()
    yield lambda table: loads.postgresql(pg_on_btrfs.cluster, table)
    loads.stop_all()


@pytest.fixture
def mariadb_write_load(mariadb_on_btrfs):
    loads = WriteLoads()
    yield lambda table: loads.mariadb(mariadb_on_btrfs.server, table)
    loads.stop_all()


@pytest.fixture
def sandboxes():
    """Sandboxes (db_helpers): restored copies on other ports, stopped by PID and removed after the test."""
    boxes = Sandboxes("restorable-snap-sandbox-")
    yield boxes
    boxes.close()


@pytest.fixture
def status_dir():
    path = shared_tmpdir("restorable-snap-status-")
    yield path
    rmtree_quiet(path)


@pytest.fixture
def xfs_images(btrfs):
    """make(name) -> an XFS on a loop image inside a new subvolume `name` (the volume to snapshot)."""
    made: list[LoopMount] = []

    def make(name: str) -> tuple[Path, LoopMount]:
        volume = btrfs.subvolume(name)
        fs = loop_mount(volume / "disk.img", btrfs.root.parent / ("mnt-" + name), "xfs", 320)
        made.append(fs)
        return volume, fs

    yield make
    for fs in reversed(made):
        fs.close()
