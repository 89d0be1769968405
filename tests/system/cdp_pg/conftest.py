# -*- coding: utf-8 -*-
"""Fixtures of the CDP PostgreSQL proofs: one PostgreSQL 15 cluster for the session whose
archive_command is the installed agent, writing into a moto S3 bucket through a proxy the tests
can cut; a restic repository for its base backups; and the first base backup.

The cluster starts without archiving; settings.configure_archiving() turns it on (ALTER SYSTEM)
and the fixture restarts the cluster, as an operator would after the module said so. Everything
is stopped by its PID at the end of the session.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "databases"))

import db_helpers  # noqa: E402  pylint: disable=wrong-import-position
from db_helpers import chown_tree, pg_start, rmtree_quiet, shared_tmpdir  # noqa: E402

db_helpers.make_collection_importable()

from cdp_pg_helpers import BUCKET, DATASET, HOST, CdpPg, TcpProxy, initdb, restart, write_owned  # noqa: E402

from ansible_collections.restorable.backup.plugins.module_utils.runtime import cli  # noqa: E402,F401
from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import install_standalone  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp import driver  # noqa: E402,F401
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiver import archiver_document  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.settings import (  # noqa: E402
    archive_command, archive_timeout_for, configure_archiving)

RESTIC_PASSWORD = "cdp-pg-restic-password-5e0b"
# install_standalone ships the modules loaded: the command line (archive-wal) and the CDP tier.
SHIPPED = (cli, driver)
PG_SETTINGS = {"wal_level": "replica", "max_connections": 40}


def _require() -> None:
    missing = [name for name in ("restic", "sftp", "pgbench") if not shutil.which(name)]
    if not (Path("/usr/lib/postgresql") / "15" / "bin" / "postgres").exists():
        missing.append("postgresql-15")
    if missing:
        pytest.fail("missing %s: run make deps" % ", ".join(missing))


@pytest.fixture(scope="session")
def cdp_pg(moto_server):
    _require()
    root = shared_tmpdir("restorable-cdp-pg-")
    proxy = TcpProxy(moto_server.port).up()
    cluster = cdp = None
    try:
        agent = root / "agent"
        install_standalone(str(agent))
        moto_server.client().create_bucket(Bucket=BUCKET)
        env_file = write_owned(root / "etc" / "s3.env", "AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n" % (
            moto_server.access_key, moto_server.secret_key))
        store = {"type": "s3", "endpoint": "http://127.0.0.1:%d" % proxy.port, "bucket": BUCKET,
                 "prefix": "fleet/%s/wal/%s" % (HOST, DATASET), "region": moto_server.region, "env_file": str(env_file)}
        config = write_owned(root / "etc" / (DATASET + ".json"),
                             json.dumps(archiver_document(DATASET, store)), mode=0o644)
        password = write_owned(root / "etc" / "restic.password", RESTIC_PASSWORD + "\n", user="root")
        repo = root / "repo"
        subprocess.run(["restic", "-r", str(repo), "init"], env={"PATH": os.environ["PATH"],
                                                                 "RESTIC_PASSWORD_FILE": str(password)},
                       check=True, capture_output=True)
        pg_root = root / "pg"
        pg_root.mkdir()
        chown_tree(pg_root, "postgres")
        initdb(pg_root / "data", pg_root, segment_mb=1)
        cluster = pg_start(pg_root, pg_root / "data", PG_SETTINGS)
        cdp = CdpPg(root, cluster, PG_SETTINGS, agent, config, store, repo, password, proxy)
        command, timeout = archive_command(str(config), str(agent)), archive_timeout_for(300, 1)
        results = {"check": configure_archiving(cdp.server(), command, timeout, check_mode=True),
                   "apply": configure_archiving(cdp.server(), command, timeout)}
        restart(cdp)
        results["after_restart"] = configure_archiving(cdp.server(), command, timeout)
        cdp.configure_results = results
        cdp.psql("CREATE DATABASE app")
        cdp.cluster.run(["pgbench", "-i", "-s", "1", "-q", "app"])
        cdp.psql("CREATE TABLE IF NOT EXISTS restorable_heartbeat (id bigserial PRIMARY KEY, dataset text NOT NULL, "
                 "at timestamptz NOT NULL)")
        cdp.switch()
        yield cdp
    finally:
        if cdp is not None:
            cdp.stop_servers()
            cluster = cdp.cluster
        if cluster is not None:
            cluster.stop()
        proxy.down()
        rmtree_quiet(root)


@pytest.fixture(scope="session")
def first_base_backup(cdp_pg):
    """The session's first base backup (a record of the base_backup job)."""
    record = cdp_pg.run("base_backup")
    assert record.ok, record.reason
    return record


@pytest.fixture
def restored(cdp_pg):
    """Restored servers of one test, stopped after it."""
    servers = []
    yield servers
    for server in servers:
        server.stop()
