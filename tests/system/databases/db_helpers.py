# -*- coding: utf-8 -*-
"""Real PostgreSQL 15 and MariaDB servers for the consistency proofs, and a write load.

Servers run under their own users (postgres, mysql) in private temporary directories, on free
loopback ports and sockets; each is stopped by the PID its fixture started. Nothing here uses
systemd or touches a server the tests did not start.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


PG_ROLE = "backup"
PG_PASSWORD = "pg-backup-secret-5b1f9e7a2c"
MARIADB_USER = "backup"
MARIADB_PASSWORD = "mariadb-backup-secret-8e2c4d61"
APP_DB = "app"


def make_collection_importable() -> None:
    """ansible_collections.restorable.backup imports this checkout (see collection_path)."""
    import collection_path  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_tmpdir(prefix: str) -> Path:
    """A temporary directory the database users can traverse (pytest's tmp_path is 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


def chown_tree(path: Path, user: str) -> None:
    subprocess.run(["chown", "-R", "%s:%s" % (user, user), str(path)], check=True)


def stop_pid(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Stop one server we started, by its PID; SIGKILL if it does not go."""
    if process.poll() is not None:
        return
    try:
        os.kill(process.pid, sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


def _as_user(user: str) -> dict:
    return {"user": user, "group": user, "extra_groups": []}


# --------------------------------------------------------------------------- PostgreSQL

def pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries are missing: make deps")
    return Path(candidates[-1]).parent


def pg_env(root: Path) -> dict:
    return {"PATH": "%s:/usr/bin:/bin" % pg_bindir(), "HOME": str(root), "LANG": "C.UTF-8", "PGTZ": "UTC"}


@dataclass
class PgCluster:
    """One running PostgreSQL cluster; the fixture user connects as postgres over the socket (trust)."""

    root: Path
    datadir: Path
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(self, argv: list, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """A client binary as OS user postgres, pointed at this cluster (PGHOST/PGPORT)."""
        env = pg_env(self.root)
        env.update({"PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": "postgres"})
        result = subprocess.run([str(pg_bindir() / argv[0])] + [str(a) for a in argv[1:]], env=env,
                                capture_output=True, text=True, cwd=str(self.root), check=False, **_as_user("postgres"),
                                **kwargs)
        if check and result.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (argv[0], result.returncode, result.stdout, result.stderr))
        return result

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql]).stdout.strip()

    def client_argv(self, db: str = APP_DB) -> list:
        return [str(pg_bindir() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", db]

    def stop(self) -> None:
        stop_pid(self.process, signal.SIGINT)  # fast shutdown


def pg_initdb(datadir: Path, root: Path) -> None:
    subprocess.run([str(pg_bindir() / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                   env=pg_env(root), check=True, capture_output=True, cwd=str(root), **_as_user("postgres"))


def pg_start(root: Path, datadir: Path, settings: dict | None = None, timeout: float = 30.0) -> PgCluster:
    """Start `postgres -D datadir` in the foreground (its PID is the postmaster) on a free port."""
    sock = root / "sock"
    sock.mkdir(exist_ok=True)
    chown_tree(sock, "postgres")
    last = ""
    for _attempt in range(3):
        port = free_port()
        options = {"port": port, "unix_socket_directories": str(sock), "listen_addresses": "127.0.0.1",
                   "fsync": "off", "max_connections": 30, "shared_buffers": "32MB"}
        options.update(settings or {})
        argv = [str(pg_bindir() / "postgres"), "-D", str(datadir)]
        for name, value in options.items():
            argv += ["-c", "%s=%s" % (name, value)]
        log_path = root / ("postgres-%d.log" % port)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=pg_env(root), cwd=str(root), **_as_user("postgres"))
        cluster = PgCluster(root, datadir, port, process, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            ready = cluster.run(["pg_isready", "-q"], check=False)
            if ready.returncode == 0:
                return cluster
            time.sleep(0.05)
        cluster.stop()
        last = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError("postgres did not start:\n%s" % last)


# --------------------------------------------------------------------------- MariaDB

@dataclass
class MariaDBServer:
    """One running mariadbd; the fixture connects as OS root over the socket (unix_socket auth)."""

    root: Path
    datadir: Path
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    @property
    def pid(self) -> int:
        return self.process.pid

    def client_argv(self, db: str = APP_DB) -> list:
        return ["mariadb", "--no-defaults", "-u", "root", "--socket=%s" % self.socket, "-B", "-N", "--unbuffered", db]

    def sql(self, sql: str, db: str = "", check: bool = True) -> str:
        argv = ["mariadb", "--no-defaults", "-u", "root", "--socket=%s" % self.socket, "-B", "-N", "-e", sql]
        if db:
            argv.append(db)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise AssertionError("mariadb failed (%d): %s" % (result.returncode, result.stderr))
        return result.stdout.strip()

    def stop(self) -> None:
        stop_pid(self.process, signal.SIGTERM, timeout=30.0)


def mariadb_install(datadir: Path) -> None:
    subprocess.run(["mariadb-install-db", "--no-defaults", "--user=mysql", "--datadir=%s" % datadir,
                    "--skip-test-db", "--auth-root-authentication-method=socket"],
                   check=True, capture_output=True)


def mariadb_start(root: Path, datadir: Path, timeout: float = 60.0) -> MariaDBServer:
    chown_tree(datadir, "mysql")
    last = ""
    for _attempt in range(3):
        port = free_port()
        log_path = root / ("mariadbd-%d.log" % port)
        argv = ["mariadbd", "--no-defaults", "--user=mysql", "--datadir=%s" % datadir,
                "--socket=%s" % (root / "mysqld.sock"), "--port=%d" % port, "--bind-address=127.0.0.1",
                "--pid-file=%s" % (root / "mysqld.pid"), "--log-error=%s" % log_path,
                "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2", "--skip-log-bin"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL)
        server = MariaDBServer(root, datadir, port, process, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if server.socket.exists() and server.sql("select 1", check=False) == "1":
                return server
            time.sleep(0.05)
        server.stop()
        last = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
    raise RuntimeError("mariadbd did not start:\n%s" % last)


# --------------------------------------------------------------------------- write load

@dataclass
class WriteLoad:
    """Commits rows 1, 2, 3, ... into `table`, one row per transaction, from one client session.

    The session runs in autocommit mode; after each INSERT it selects the row number, and the
    number is counted as committed only when it comes back, so `committed` never overstates.
    """

    argv: list
    table: str
    env: dict | None = None
    user: str | None = None
    committed: int = 0
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _process: subprocess.Popen | None = None

    def start(self) -> "WriteLoad":
        extra = _as_user(self.user) if self.user else {}
        self._process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, bufsize=1, env=self.env,
                                         cwd="/", **extra)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        number = 0
        proc = self._process
        try:
            while not self._stop.is_set():
                number += 1
                proc.stdin.write("INSERT INTO %s (n) VALUES (%d);\nSELECT %d;\n" % (self.table, number, number))
                proc.stdin.flush()
                line = proc.stdout.readline()
                if line.strip() != str(number):
                    self.error = "unexpected reply %r: %s" % (line, proc.stderr.read() if proc.poll() is not None else "")
                    return
                self.committed = number
        except (BrokenPipeError, OSError, ValueError) as exc:
            self.error = str(exc)

    def wait_for(self, rows: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.committed < rows:
            if self.error or time.monotonic() > deadline:
                raise AssertionError("write load stalled at %d rows: %s" % (self.committed, self.error))
            time.sleep(0.01)

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self._process is not None:
            try:
                self._process.stdin.close()
            except OSError:
                pass
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self.committed


class WriteLoads:
    """Write loads of one test into new tables of the app database, all stopped by stop_all()."""

    def __init__(self) -> None:
        self.loads: list = []

    def postgresql(self, cluster: "PgCluster", table: str) -> WriteLoad:
        cluster.psql("CREATE TABLE %s (n int PRIMARY KEY, at timestamptz DEFAULT now())" % table, db=APP_DB)
        return self._start(WriteLoad(cluster.client_argv(APP_DB), table, env=pg_env(cluster.root), user="postgres"))

    def mariadb(self, server: "MariaDBServer", table: str) -> WriteLoad:
        server.sql("CREATE TABLE %s (n int PRIMARY KEY, at timestamp(6) DEFAULT current_timestamp(6)) ENGINE=InnoDB"
                   % table, db=APP_DB)
        return self._start(WriteLoad(server.client_argv(APP_DB), table))

    def _start(self, load: WriteLoad) -> WriteLoad:
        self.loads.append(load.start())
        return load

    def stop_all(self) -> None:
        for load in self.loads:
            load.stop()


def gap_free_prefix(count: int, low: int | None, high: int | None) -> int:
    """k when the rows are exactly 1..k (k may be 0), else an AssertionError."""
    if count == 0:
        return 0
    assert low == 1 and high == count, "rows are not a gap-free prefix: count=%d min=%s max=%s" % (count, low, high)
    return count


# --------------------------------------------------------------------------- process lists

class ArgvWatcher:
    """Scans every process's argv (/proc/*/cmdline) in a thread until stopped."""

    def __init__(self, needles: list, interval: float = 0.005) -> None:
        self.needles = [n.encode() for n in needles]
        self.interval = interval
        self.hits: list = []
        self.scans = 0
        self.seen: set = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ArgvWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as handle:
                        cmdline = handle.read()
                except OSError:
                    continue
                if not cmdline:
                    continue
                self.seen.add(os.path.basename(cmdline.split(b"\0", 1)[0]).decode(errors="replace"))
                for needle in self.needles:
                    if needle in cmdline:
                        self.hits.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
            self.scans += 1
            self._stop.wait(self.interval)


def rmtree_quiet(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class Sandboxes:
    """The restore targets one test made: every server stopped by PID, every directory removed."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.servers: list = []
        self.roots: list = []

    def new_root(self) -> Path:
        root = shared_tmpdir(self.prefix)
        self.roots.append(root)
        return root

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for root in self.roots:
            rmtree_quiet(root)
