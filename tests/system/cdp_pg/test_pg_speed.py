# -*- coding: utf-8 -*-
"""The archiver keeps up with PostgreSQL under pgbench: the WAL rate it sustains (WAL written
per second until the last segment is archived) is at least 0.8 of what a plain `cp`
archive_command sustains, with production's 16 MiB segments. A cluster of its own (the
session's uses 1 MiB segments to make many of them), stopped by PID at the end."""
from __future__ import annotations

import json
import re
import time

import pytest

from cdp_pg_helpers import chown, initdb, write_owned
from db_helpers import pg_start, rmtree_quiet, shared_tmpdir

from ansible_collections.restorable.backup.plugins.module_utils.consistency.postgresql import wal_archived
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiver import archiver_document
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.settings import archive_command

SECONDS = 5
RATIO = 0.8


@pytest.fixture(scope="module")
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


def test_the_archiver_keeps_up_with_at_least_08_of_what_cp_does(bench):
    cluster, commands = bench
    runs: dict[str, list] = {"cp": [], "agent": []}
    for name in ("cp", "agent", "agent", "cp"):  # interleaved: the table grows, the cache warms
        use(cluster, commands[name])
        runs[name].append(run_pgbench(cluster))
    # What each keeps up with: its best run (pgbench's own throughput varies by 10 % run to run).
    cp, agent = (max(run["rate"] for run in runs[name]) for name in ("cp", "agent"))
    print("\nWAL rate: cp %.1f MB/s, agent %.1f MB/s (ratio %.2f); runs %s" % (cp / 1e6, agent / 1e6, agent / cp, runs))
    assert agent >= RATIO * cp
    assert all(run["waiting"] <= 2 and run["drain"] < 2 for run in runs["agent"]), "archiving kept up"
