# -*- coding: utf-8 -*-
"""The CDP PostgreSQL proofs' machinery: one real PostgreSQL 15 cluster archiving through the
installed agent into an S3 bucket (moto) behind a TCP proxy the tests can cut, a restic
repository for base backups, and the runs, restores and drills the tests call.

Servers come from tests/system/databases/db_helpers.py; each is stopped by its own PID.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db_helpers import PgCluster, chown_tree, free_port, pg_bindir, pg_env, pg_start

from ansible_collections.restorable.backup.plugins.module_utils.consistency.postgresql import wal_archived
from ansible_collections.restorable.backup.plugins.module_utils.core.driver import RunRecord
from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions, Runner
from ansible_collections.restorable.backup.plugins.module_utils.storage.factory import open_repository
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.driver import CdpDriver
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal import pitr
from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import parse_time
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiving import heartbeat_query, write_heartbeat
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.basebackup import list_base_backups
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.factory import open_store
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.server import PgServer
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.settings import restore_command

DATASET = "pgmain"
HOST = "db01"
BUCKET = "cdp-wal"
SEGMENT_SIZE = 1 << 20  # initdb --wal-segsize=1: many segments from little data


def as_postgres() -> dict:
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def write_owned(path: Path, text: str, mode: int = 0o600, user: str = "postgres") -> Path:
    """A file only the cluster's OS user (and root) reads: secrets and configurations it needs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)
    subprocess.run(["chown", "%s:%s" % (user, user), str(path)], check=True)
    return path


def initdb(datadir: Path, root: Path, segment_mb: int) -> None:
    subprocess.run([str(pg_bindir() / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
                    "--wal-segsize=%d" % segment_mb],
                   env=pg_env(root), check=True, capture_output=True, cwd=str(root), **as_postgres())


class TcpProxy:
    """127.0.0.1:port forwarded to an upstream port; down() refuses connections (and cuts the
    open ones) as a stopped server would, up() listens again on the same port."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set = set()
        self._lock = threading.Lock()

    def up(self) -> "TcpProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            for conn in list(self._open):
                self._close(conn)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _address = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(1 << 16)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        for conn in (source, target):
            self._close(conn)

    @staticmethod
    def _close(conn: socket.socket) -> None:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()


@dataclass
class CdpPg:
    """The session's protected cluster and everything around it (see the module docstring)."""

    root: Path
    cluster: PgCluster
    settings: dict
    agent_dir: Path
    archiver_config: Path
    store_settings: dict
    repo_path: Path
    password_file: Path
    proxy: TcpProxy
    configure_results: dict = field(default_factory=dict)
    servers: list = field(default_factory=list)

    @property
    def datadir(self) -> Path:
        return self.cluster.datadir

    @property
    def status_dir(self) -> Path:
        return self.root / "status"

    # -- the cluster ----------------------------------------------------------------------------

    def server(self) -> PgServer:
        return PgServer(str(self.cluster.socket_dir), self.cluster.port, "postgres", "postgres",
                        str(self.root / "staging"))

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self.cluster.psql(sql, db)

    def row(self, sql: str, db: str = "postgres") -> dict:
        return json.loads(self.psql("SELECT json_build_object(%s)" % sql, db))

    def heartbeat(self, dataset: str = DATASET) -> float:
        """One heartbeat row, as the points run writes it; its time, seconds since the epoch."""
        return parse_time(write_heartbeat(self.server(), dataset, switch=False)["at"]).timestamp()

    def switch(self) -> str:
        """Write, switch to a new WAL file and wait until the old one is archived; its name."""
        write_heartbeat(self.server(), DATASET, switch=False)
        name = self.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        self.psql("SELECT pg_switch_wal()")
        self.wait_archived(name)
        return name

    def wait_archived(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not wal_archived(self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), name):
            if time.monotonic() > deadline:
                raise AssertionError("%s was not archived within %.0fs: %s" % (name, timeout, self.psql(
                    "SELECT row_to_json(a) FROM pg_stat_archiver a")))
            time.sleep(0.05)

    def failed_count(self) -> int:
        return int(self.psql("SELECT failed_count FROM pg_stat_archiver"))

    # -- the job --------------------------------------------------------------------------------

    def job(self, action: str = "points", retention: dict | None = None, **options: Any) -> JobConfig:
        wanted = {"source": {"type": "postgresql", "data_directory": str(self.datadir), "port": self.cluster.port,
                             "host": str(self.cluster.socket_dir)},
                  "interval_minutes": 1, "rpo": 300, "action": action, "archiver_config": str(self.archiver_config),
                  "wal_store": self.store_settings}
        wanted.update(options)
        return JobConfig.from_dict({"dataset": DATASET, "tier": "cdp", "host": HOST, "status_dir": str(self.status_dir),
                                    "repository": {"url": str(self.repo_path), "password_file": str(self.password_file)},
                                    "retention": retention or {}, "options": wanted})

    def run(self, action: str = "points", retention: dict | None = None, **options: Any) -> RunRecord:
        config = self.job(action, retention, **options)
        return Runner(config, CdpDriver(config), RunOptions(ignore_window=True, ignore_load=True)).run()

    def verify_state(self) -> dict:
        return json.loads((self.status_dir / (DATASET + ".wal-verify.json")).read_text())

    def floor(self) -> str:
        return json.loads((self.status_dir / (DATASET + ".wal-floor.json")).read_text())["floor"]

    # -- storage --------------------------------------------------------------------------------

    def store(self, settings: dict | None = None):
        return open_store(settings or self.store_settings)

    def repo(self):
        return open_repository(str(self.repo_path), str(self.password_file))

    def bases(self):
        return list_base_backups(self.repo(), DATASET)[0]

    def agent(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """The installed agent as PostgreSQL runs it: as postgres, python3 -S, PYTHONPATH."""
        return subprocess.run(["/usr/bin/python3", "-S", "-m", "restorable_agent"] + list(args),
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(self.agent_dir)}, cwd=str(cwd or self.root),
                              capture_output=True, text=True, check=False, **as_postgres())

    # -- restores -------------------------------------------------------------------------------

    def sandbox(self, name: str) -> Path:
        path = self.root / "sandboxes" / name
        assert not path.exists(), "a sandbox per restore"
        return path

    def pitr(self, target: pitr.RecoveryTarget, name: str, config: Path | None = None, settings: dict | None = None,
             store_settings: dict | None = None) -> pitr.SandboxServer:
        command = restore_command(str(config or self.archiver_config), str(self.agent_dir))
        server = pitr.restore(self.repo(), self.bases(), target, str(self.sandbox(name)), command,
                              protected=[str(self.datadir)], store=self.store(store_settings), settings=settings,
                              durable=False, timeout=300)
        self.servers.append(server)
        return server

    def drill(self, **params: Any) -> dict:
        wanted = {"drill": "pgmain-drill", "dataset": DATASET, "tier": "cdp", "source_type": "postgresql",
                  "source_host": HOST, "sandbox": str(self.root / "drills"),
                  "protected_paths": [str(self.datadir)], "source": {"data_directory": str(self.datadir)},
                  "repository": {"url": str(self.repo_path), "password_file": str(self.password_file)},
                  "archiver_config": str(self.archiver_config), "install_dir": str(self.agent_dir),
                  "interval_minutes": 1, "rpo": 300, "recovery_point": {"choice": "latest"},
                  "checks": ["integrity", "freshness", "content", "application"], "timeout": 300}
        wanted.update(params)
        return CdpDriver.drill(wanted)

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()


def restart(cdp: CdpPg) -> None:
    """Stop the cluster (fast shutdown, by PID) and start it again: what archive_mode needs."""
    cdp.cluster.stop()
    cdp.cluster = pg_start(cdp.cluster.root, cdp.cluster.datadir, cdp.settings)


def chown(path: Path, user: str = "postgres") -> Path:
    chown_tree(path, user)
    return path


def heartbeats(server: pitr.SandboxServer, target: float, dataset: str = DATASET) -> dict:
    """The restored heartbeat rows around target: newest (epoch), rows, after (how many newer)."""
    return json.loads(server.psql(heartbeat_query(dataset, target)))
