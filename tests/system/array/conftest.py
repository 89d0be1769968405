# -*- coding: utf-8 -*-
"""Fixtures of the array tier's system tests: a btrfs on a loop device for the volumes, their
snapshots and the restore sandboxes; an XFS on a loop device for directory tape libraries with
small cartridges; a btrfs of its own that the timer test mounts into the systemd host's container
(tests/system/fleet); a real PostgreSQL 15 whose data directory lives on one subvolume and whose
application database lives in a tablespace on a second one (one group, two volumes), and one whose
pg_wal lives on a second subvolume (initdb -X).

Loop devices follow tests/system/snapshot (loop_helpers), servers and write loads are the helpers
of tests/system/databases/db_helpers.py. Everything is stopped by its PID and only the loop
devices attached here are detached.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "snapshot"))
sys.path.insert(0, str(HERE.parent / "databases"))
sys.path.insert(0, str(HERE.parent / "cdp_btrfs"))  # timer_helpers (the systemd host's mounts and runs)
sys.path.insert(0, str(HERE.parent / "tape"))  # s3_tape_helpers (Object Lock buckets on the moto server)

import db_helpers  # noqa: E402  pylint: disable=wrong-import-position
import s3_tape_helpers  # noqa: E402  pylint: disable=wrong-import-position
from array_helpers import ArrayDataset, Libraries, Sandboxes  # noqa: E402  pylint: disable=wrong-import-position
from array_helpers import s3_library_config  # noqa: E402  pylint: disable=wrong-import-position
from db_helpers import (APP_DB, PgCluster, WriteLoads, chown_tree, pg_bindir, pg_env, pg_initdb,  # noqa: E402
                        pg_start, rmtree_quiet, shared_tmpdir)
from loop_helpers import LoopMount, loop_mount, must  # noqa: E402  pylint: disable=wrong-import-position

db_helpers.make_collection_importable()

BTRFS_MB = 2048
TIMER_BTRFS_MB = 512
LIBRARY_MB = 1024
NEEDED = ("losetup", "mount", "mkfs.btrfs", "mkfs.xfs", "btrfs", "fsfreeze")
_NAMES = itertools.count(1)


def _unusable() -> str | None:
    """Why this machine cannot run the suite (CI runs it as root, where a skip is a broken fixture)."""
    missing = [tool for tool in NEEDED if not shutil.which(tool)]
    reasons = (["not root (loop devices, btrfs send/receive)"] if os.geteuid() else []) + \
        (["not installed: " + ", ".join(missing)] if missing else []) + \
        ([] if os.path.exists("/dev/loop-control") else ["no /dev/loop-control"])
    return "; ".join(reasons) or None


@dataclass
class ArrayFilesystems:
    btrfs: LoopMount  # volumes, snapshots, sandboxes
    tapes: LoopMount  # directory libraries

    def subvolume(self, name: str) -> Path:
        path = self.btrfs.mountpoint / name
        must(["btrfs", "subvolume", "create", path])
        os.chmod(path, 0o755)
        return path


@pytest.fixture(scope="session")
def array_fs():
    reason = _unusable()
    if reason:
        pytest.skip(reason)
    holder = shared_tmpdir("restorable-array-")
    volumes = loop_mount(holder / "btrfs.img", holder / "btrfs", "btrfs", BTRFS_MB)
    try:
        tapes = loop_mount(holder / "tapes.img", holder / "tapes", "xfs", LIBRARY_MB)
    except BaseException:
        volumes.close()
        raise
    os.chmod(volumes.mountpoint, 0o755)
    try:
        yield ArrayFilesystems(volumes, tapes)
    finally:
        tapes.close()
        volumes.close()
        rmtree_quiet(holder)


@pytest.fixture(scope="module")
def timer_btrfs():
    """A btrfs of its own for the timer test, which mounts it into the systemd host's container too:
    the volumes, their snapshots and the directory library the job in there writes."""
    reason = _unusable()
    if reason:
        pytest.skip(reason)
    holder = shared_tmpdir("restorable-array-timer-")
    mounted = loop_mount(holder / "timer.img", holder / "btrfs", "btrfs", TIMER_BTRFS_MB)
    try:
        yield mounted
    finally:
        mounted.close()
        rmtree_quiet(holder)


@pytest.fixture
def dataset(array_fs, tmp_path):
    """make(volume names) -> an ArrayDataset of its own: new subvolumes, status directory."""
    def make(*names: str) -> ArrayDataset:
        number = next(_NAMES)
        volumes = [array_fs.subvolume("%s%d" % (name, number)) for name in names]
        status = tmp_path / ("status%d" % number)
        status.mkdir()
        return ArrayDataset("arr%d" % number, volumes, status)

    return make


@pytest.fixture
def libraries(array_fs):
    """make(...) -> the configuration file of a new directory library on the XFS."""
    made = Libraries(array_fs.tapes.mountpoint)
    yield made
    made.close()


@dataclass
class S3Library:
    """An S3-backed library of one test: its configuration file, Object Lock bucket and settings."""

    config: Path
    bucket: str
    settings: dict
    state_dir: Path


@pytest.fixture
def s3_libraries(moto_server, tmp_path):
    """make(capacity_bytes, pools=..., slots=...) -> an S3Library: a new Object Lock bucket on the
    session's moto server (s3_tape_helpers.lock_bucket), the library's own keys in a 0600
    environment file, its state directory under tmp_path. Locked versions stay in moto's memory
    until the server stops (COMPLIANCE: nobody can delete them before)."""
    def make(capacity_bytes: int, pools: dict | None = None, slots: int = 12, drives: int = 2) -> S3Library:
        number = next(_NAMES)
        name = "s3vtl%02d" % number
        bucket = s3_tape_helpers.lock_bucket(moto_server, "arr")
        env = s3_tape_helpers.env_file(tmp_path / ("%s.env" % name), moto_server)
        settings = s3_tape_helpers.s3_settings(moto_server, bucket, env, prefix=name)
        state_dir = tmp_path / ("%s-state" % name)
        config = s3_library_config(tmp_path / ("%s.json" % name), name, state_dir, settings, capacity_bytes,
                                   slots=slots, drives=drives, pools=pools)
        return S3Library(config, bucket, settings, state_dir)

    return make


@pytest.fixture
def sandboxes(array_fs):
    """new() -> an empty directory on the btrfs (traversable by postgres); removed after the test."""
    boxes = Sandboxes(array_fs.btrfs.mountpoint / "sandboxes")
    yield boxes
    boxes.close()


@dataclass
class PgGroup:
    """PostgreSQL with its data directory (and pg_wal) on `data_volume` and the app database in a
    tablespace on `tablespace_volume`: its rows and its catalog live on different volumes."""

    cluster: PgCluster
    data_volume: Path
    tablespace_volume: Path

    @property
    def volumes(self) -> list[Path]:
        return [self.data_volume, self.tablespace_volume]

    def consistency(self) -> dict:
        return {"type": "postgresql", "max_freeze": "30s",
                "postgresql": {"mode": "backup_api", "host": str(self.cluster.socket_dir), "port": self.cluster.port,
                               "user": "postgres"}}


@pytest.fixture(scope="session")
def pg_group(array_fs):
    data_volume, tablespace_volume = array_fs.subvolume("pg"), array_fs.subvolume("pgts")
    root = shared_tmpdir("restorable-array-pg-")
    for path in (root, data_volume, tablespace_volume):
        chown_tree(path, "postgres")
    (tablespace_volume / "ts").mkdir()
    chown_tree(tablespace_volume, "postgres")
    pg_initdb(data_volume / "data", root)
    cluster = pg_start(root, data_volume / "data", {"wal_level": "replica", "max_wal_size": "256MB"})
    try:
        cluster.psql("CREATE TABLESPACE appspace LOCATION '%s'" % (tablespace_volume / "ts"))
        cluster.psql("CREATE DATABASE %s TABLESPACE appspace" % APP_DB)
        cluster.psql("CREATE EXTENSION amcheck", db=APP_DB)
        cluster.psql("CREATE TABLE seed (id int PRIMARY KEY, payload text)", db=APP_DB)
        cluster.psql("INSERT INTO seed SELECT g, md5(g::text) FROM generate_series(1, 50000) g", db=APP_DB)
        cluster.psql("CREATE INDEX seed_payload ON seed (payload)", db=APP_DB)
        yield PgGroup(cluster, data_volume, tablespace_volume)
    finally:
        cluster.stop()
        rmtree_quiet(root)


@dataclass
class PgWalGroup:
    """PostgreSQL with its data directory on `data_volume` and its pg_wal on `wal_volume` (initdb -X):
    the WAL that makes the data directory's snapshot consistent is on the other volume."""

    cluster: PgCluster
    data_volume: Path
    wal_volume: Path

    @property
    def volumes(self) -> list[Path]:
        return [self.data_volume, self.wal_volume]

    @property
    def wal_directory(self) -> Path:
        return self.wal_volume / "wal"

    def consistency(self) -> dict:
        return {"type": "postgresql", "max_freeze": "30s",
                "postgresql": {"mode": "backup_api", "host": str(self.cluster.socket_dir), "port": self.cluster.port,
                               "user": "postgres"}}


@pytest.fixture
def pg_wal_group(array_fs):
    """A PostgreSQL 15 of its own whose pg_wal lives on a second subvolume; stopped by its PID."""
    data_volume, wal_volume = array_fs.subvolume("pgx"), array_fs.subvolume("pgxwal")
    root = shared_tmpdir("restorable-array-pgx-")
    for path in (root, data_volume, wal_volume):
        chown_tree(path, "postgres")
    subprocess.run([str(pg_bindir() / "initdb"), "-D", str(data_volume / "data"), "-X", str(wal_volume / "wal"),
                    "-U", "postgres", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                   env=pg_env(root), check=True, capture_output=True, cwd=str(root), user="postgres", group="postgres",
                   extra_groups=[])
    cluster = pg_start(root, data_volume / "data", {"wal_level": "replica", "max_wal_size": "256MB"})
    try:
        cluster.psql("CREATE DATABASE %s" % APP_DB)
        cluster.psql("CREATE EXTENSION amcheck", db=APP_DB)
        yield PgWalGroup(cluster, data_volume, wal_volume)
    finally:
        cluster.stop()
        rmtree_quiet(root)


@pytest.fixture
def pg_wal_write_load(pg_wal_group):
    """start(table) -> WriteLoad committing rows 1..N into a new table of pg_wal_group's app database."""
    loads = WriteLoads()
    yield lambda table: loads.postgresql(pg_wal_group.cluster, table)
    loads.stop_all()


@pytest.fixture
def pg_write_load(pg_group):
    """start(table) -> WriteLoad committing rows 1..N into a new table of the app database."""
    loads = WriteLoads()
    yield lambda table: loads.postgresql(pg_group.cluster, table)
    loads.stop_all()


@pytest.fixture
def restored_servers():
    """Restored clusters a test started (pg_start), stopped by PID; their scratch roots removed."""
    servers: list[PgCluster] = []
    roots: list[Path] = []

    def start(datadir: Path) -> PgCluster:
        root = shared_tmpdir("restorable-array-restored-")
        roots.append(root)
        chown_tree(root, "postgres")
        os.chmod(datadir, 0o700)
        cluster = pg_start(root, datadir)
        servers.append(cluster)
        return cluster

    yield start
    for server in servers:
        server.stop()
    for root in roots:
        rmtree_quiet(root)
