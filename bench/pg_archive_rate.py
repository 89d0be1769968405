# -*- coding: utf-8 -*-
"""The WAL rate PostgreSQL sustains under pgbench with an archive_command (ours or a plain `cp`),
with production's 16 MiB segments, for bench/cdp.py's archiver and pitr targets (a speed target
is a benchmark, not a test). A cluster of its own, stopped by PID at the end; the CDP system
tests' helpers (tests/system/cdp_pg, tests/system/databases) come through sys.path."""
from __future__ import annotations

import json
import re
import time

from cdp_pg_helpers import chown, initdb, write_owned
from db_helpers import pg_start, rmtree_quiet, shared_tmpdir

from ansible_collections.restorable.backup.plugins.module_utils.consistency.postgresql import wal_archived
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiver import archiver_document
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.settings import archive_command

SECONDS = 5


def bench(cdp_pg):
    root = shared_tmpdir("restorable-cdp-speed-")
    cluster = None
    try:
        for name in ("pg", "cp", "store"):
            (root / name).mkdir()
            chown(root / name)
        initdb(root / "pg" / "data", root / "pg", segment_mb=16)
        cluster = pg_start(root / "pg", root / "pg" / "data", {"wal_level": "replica", "archive_mode": "on",
                                                               "max_wal_size": "2GB", "checkpoint_timeout": "30min"})
        cluster.psql("CREATE DATABASE app")
        cluster.run(["pgbench", "-i", "-s", "4", "-q", "app"])
        config = write_owned(root / "archiver.json", json.dumps(archiver_document(
            "bench", {"type": "local", "path": str(root / "store")})), mode=0o644)
        commands = {"cp": "test ! -f %s/%%f && cp %%p %s/%%f" % (root / "cp", root / "cp"),
                    "agent": archive_command(str(config), str(cdp_pg.agent_dir))}
        yield cluster, commands
    finally:
        if cluster is not None:
            cluster.stop()
        rmtree_quiet(root)


def use(cluster, command: str) -> None:
    cluster.psql("ALTER SYSTEM SET archive_command = '%s'" % command.replace("'", "''"))
    cluster.psql("SELECT pg_reload_conf()")
    settle(cluster)


def settle(cluster) -> None:
    """Switch and wait until everything written so far is archived."""
    name = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    cluster.psql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 120
    while not wal_archived(cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), name):
        assert time.monotonic() < deadline, cluster.psql("SELECT row_to_json(a) FROM pg_stat_archiver a")
        time.sleep(0.02)


def run_pgbench(cluster) -> dict:
    """The WAL rate pgbench ran at, its TPS, the files still waiting to be archived when it
    stopped and how long archiving took to catch up."""
    cluster.psql("CHECKPOINT")  # full-page images again: WAL as a busy cluster writes it
    start = cluster.psql("SELECT pg_current_wal_lsn()")
    began = time.monotonic()
    output = cluster.run(["pgbench", "-T", str(SECONDS), "-c", "4", "-j", "2", "-n", "app"]).stdout
    seconds = time.monotonic() - began
    written = float(cluster.psql("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '%s')" % start))
    waiting = int(cluster.psql("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'"))
    began = time.monotonic()
    settle(cluster)
    return {"rate": written / seconds, "tps": float(re.search(r"tps = ([0-9.]+)", output).group(1)),
            "waiting": waiting, "drain": time.monotonic() - began}
