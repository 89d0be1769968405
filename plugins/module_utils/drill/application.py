# -*- coding: utf-8 -*-
# Private to restorable.backup: the application layer of drills for database backups.
"""Application checks: the restored database backup starts in a scratch server and passes checks.

Database profiles keep their backups as streams beside each recovery point (see
``consistency/postgresql.py`` and ``consistency/mariadb.py``); the tier hands them over as
:class:`~.restored.RestoredData`, which pipes each stream into the command that loads it (no
copy of a dump or of the xbstream lands on disk; only the small ``globals.sql`` is written,
edited for the scratch cluster). ``mode: backup_api`` has no streams: the data directory is
among the restored files. An :class:`ApplicationCheck` then builds a scratch server below
``<restore dir>/.restorable-application``, starts it on a private socket (no TCP: PostgreSQL with
``listen_addresses=''``, MariaDB with ``--skip-networking``), runs the built-in integrity check
and the profile's SQL checks, and always stops the server by its PID. The engine removes the
whole restore directory afterwards.

When run as root the servers and their tools run as the database's OS user (postgres, mysql)
through ``setpriv``, which execs in place so the PID is the server's: the sandbox and its
parents must be traversable by that user. No profile secret is needed or read: the scratch
servers trust their private socket.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Callable, Sequence

from ..common.process import CommandResult, base_env, run_command, stop_server
from ..consistency.postgresql import LIST_DATABASES_SQL, parse_database_list
from .engine import FAILED, OK, DrillError, Layer, RecoveryPoint
from .restored import CheckFailed, RestoredData

SCRATCH_DIR = ".restorable-application"
DEFAULT_TIMEOUT = 600.0
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 5
PG_SUPERUSER = "postgres"
PG_GLOBALS = "postgresql/globals.sql"
PG_BASE_TAR = "postgresql/base.tar"
PG_DUMP_PREFIX = "postgresql/"
PG_DUMP_SUFFIX = ".dump"
PG_SYSTEM_DATABASES = ("postgres", "template1")
MARIADB_STREAM = "mariadb/backup.xbstream"
MARIADB_SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
CHECK_TABLE_BATCH = 200
# sun_path holds 107 bytes; the longest socket name used is ".s.PGSQL.65535".
SOCKET_PATH_MAX = 107
SOCKET_NAME_MAX = 15
TRUE_VALUES = ("t", "true", "on", "yes", "y")
# CHECK TABLE's final row per table: status OK (or already checked for upgrade).
CHECK_TABLE_OK = ("ok", "table is already up to date")


# -- shared pieces ------------------------------------------------------------------------------

def describe_failure(result: CommandResult) -> str:
    if result.timed_out:
        return "timed out after %.0fs" % result.duration
    return result.stderr_tail() or (result.stdout.strip().splitlines() or ["exit code %d" % result.returncode])[-1]


def truthy(value: str | None) -> bool:
    """Whether a query's first column (as a client prints it) is true: t/true/yes or a non-zero number."""
    if value is None:
        return False
    text = value.strip().lower()
    if text in TRUE_VALUES:
        return True
    try:
        return float(text) != 0
    except ValueError:
        return False


def first_field(output: str, separator: str) -> str | None:
    """The first column of the first row a client printed, None when there is no row."""
    lines = output.splitlines()
    if not lines:
        return None
    return lines[0].split(separator, 1)[0]


def describe_value(value: str | None) -> str:
    if value is None:
        return "no row"
    return repr(value) if value.strip() else "NULL"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def traversable_by(path: str, user: pwd.struct_passwd) -> bool:
    """Whether user may enter directory path (owner, group or other execute bit)."""
    info = os.stat(path)
    if info.st_uid == user.pw_uid:
        return bool(info.st_mode & 0o100)
    groups = os.getgrouplist(user.pw_name, user.pw_gid)
    if info.st_gid in groups:
        return bool(info.st_mode & 0o010)
    return bool(info.st_mode & 0o001)


def chown_tree(path: str, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


class ApplicationCheck:
    """Starts a scratch server from a run's streams (or restored files), checks it, stops it.

    check(streams, restored_root) -> Layer; subclasses build the server in run_checks().
    """

    kind = ""
    os_user = ""
    stop_signal = signal.SIGTERM

    def __init__(self, settings: dict[str, Any], scratch: str, timeout: float | None = None) -> None:
        self.settings = dict(settings or {})
        self.scratch = scratch
        self.timeout = float(timeout or DEFAULT_TIMEOUT)
        self.start_timeout = min(self.timeout, START_TIMEOUT)
        self.log_path = os.path.join(scratch, "server.log")
        self.run_dir = self.path("run")
        self.server: subprocess.Popen | None = None
        self.details: dict[str, Any] = {"type": self.kind}
        self.as_root = os.geteuid() == 0

    @property
    def checks(self) -> list[str]:
        return [str(query) for query in self.settings.get("checks") or []]

    # -- steps the subclasses define ---------------------------------------------------------

    def run_checks(self, streams: RestoredData | None, restored_root: str) -> str:
        """Build, start and check the server; the OK message. CheckFailed on any problem."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the started server accepts connections on its socket."""
        raise NotImplementedError

    # -- the frame ---------------------------------------------------------------------------

    def check(self, streams: RestoredData | None, restored_root: str) -> Layer:
        """streams: the run's dump streams; restored_root: the restored files (a data directory)."""
        began = time.monotonic()
        try:
            self.prepare_scratch()
            message = self.run_checks(streams, restored_root)
        except CheckFailed as exc:
            return Layer("application", FAILED, str(exc), time.monotonic() - began, self.details)
        finally:
            self.stop_server()
            if not self.run_dir.startswith(self.scratch + os.sep):
                shutil.rmtree(self.run_dir, ignore_errors=True)
        return Layer("application", OK, message, time.monotonic() - began, self.details)

    def run_as(self) -> list[str]:
        """setpriv to the database's OS user when root (servers refuse root); nothing otherwise."""
        if not self.as_root:
            return []
        return ["setpriv", "--reuid=%s" % self.os_user, "--regid=%s" % self.os_user, "--init-groups", "--"]

    def env(self) -> dict[str, str]:
        return base_env({"HOME": self.scratch, "LC_ALL": "C"})

    def path(self, *names: str) -> str:
        return os.path.join(self.scratch, *names)

    def prepare_scratch(self) -> None:
        """The scratch directory, owned by the database's OS user, reachable by it."""
        os.makedirs(self.scratch, mode=0o700, exist_ok=True)
        for name in ("data", "run", "tmp"):
            os.makedirs(self.path(name), mode=0o700, exist_ok=True)
        if len(self.run_dir) + 1 + SOCKET_NAME_MAX > SOCKET_PATH_MAX:
            # Too deep for a socket: a private directory of its own in the temporary directory.
            self.run_dir = tempfile.mkdtemp(prefix="restorable-drill-")
        if not self.as_root:
            return
        try:
            user = pwd.getpwnam(self.os_user)
        except KeyError:
            raise CheckFailed("no OS user %s to run the scratch %s server as" % (self.os_user, self.kind)) from None
        chown_tree(self.scratch, user.pw_uid, user.pw_gid)
        os.chown(self.run_dir, user.pw_uid, user.pw_gid)
        # The engine made the restore directory 0700: the server's user must pass through it.
        restore_dir = os.path.dirname(self.scratch)
        os.chmod(restore_dir, os.stat(restore_dir).st_mode | 0o011)
        self.check_reachable(restore_dir, user)

    def check_reachable(self, path: str, user: pwd.struct_passwd) -> None:
        """CheckFailed when user cannot pass through every parent of path."""
        parent = path
        while parent != os.path.dirname(parent):
            parent = os.path.dirname(parent)
            if not traversable_by(parent, user):
                raise CheckFailed("user %s cannot enter %s (mode %o): the sandbox and its parents must be "
                                  "traversable (o+x) to start the restored server" % (
                                      self.os_user, parent, os.stat(parent).st_mode & 0o7777))

    def command(self, argv: Sequence[str], what: str) -> CommandResult:
        """argv as the database's OS user; CheckFailed naming what failed."""
        result = run_command(self.run_as() + list(argv), env=self.env(), timeout=self.timeout, cwd=self.scratch)
        if not result.ok:
            raise CheckFailed("%s: %s" % (what, describe_failure(result)))
        return result

    def start_server(self, argv: Sequence[str]) -> None:
        """Start the server in the foreground (its PID is ours to stop) and wait until it answers."""
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            try:
                self.server = subprocess.Popen(self.run_as() + list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                               stderr=subprocess.STDOUT, env=self.env(), cwd=self.scratch,
                                               close_fds=True, start_new_session=True)
            except OSError as exc:
                raise CheckFailed("cannot start %s: %s" % (argv[0], exc)) from None
        deadline = began + self.start_timeout
        while not self.ready():
            code = self.server.poll()
            if code is not None:
                raise CheckFailed(self.with_log("the restored %s server did not start (exit code %d)" % (self.kind, code)))
            if time.monotonic() > deadline:
                raise CheckFailed(self.with_log("the restored %s server did not accept connections within %.0fs" % (
                    self.kind, self.start_timeout)))
            time.sleep(0.1)
        self.details["start_seconds"] = round(time.monotonic() - began, 3)
        self.details["server_pid"] = self.server.pid

    def stop_server(self) -> None:
        """Stop the server by its PID (scratch data: no clean shutdown needed), SIGKILL if it stays."""
        server = self.server
        if server is None or server.poll() is not None:
            return
        stop_server(server, self.stop_signal, STOP_TIMEOUT)
        self.details["stopped"] = server.poll() is not None

    def with_log(self, message: str) -> str:
        """message and the tail of the server's log, when it wrote one."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
        except OSError:
            return message
        if not lines:
            return message
        return "%s; server log: %s" % (message, " / ".join(lines[-LOG_TAIL_LINES:]))

    def run_queries(self, run_one: Callable[[str], str | None]) -> list[str]:
        """Each profile check through run_one(query) -> first column; the problems found."""
        problems, results = [], []
        for query in self.checks:
            value = run_one(query)
            ok = truthy(value)
            results.append({"query": query, "result": value, "ok": ok})
            if not ok:
                problems.append("check query %r returned %s" % (query, describe_value(value)))
        self.details["checks"] = results
        return problems


# -- PostgreSQL ---------------------------------------------------------------------------------

def version_key(path: str) -> tuple:
    """/usr/lib/postgresql/15/bin/postgres -> (15,): installed versions compare as numbers."""
    return tuple(int(d) for d in "".join(ch if ch.isdigit() else " " for ch in path).split())


def pg_bindir() -> str:
    """The newest installed PostgreSQL's binaries (Debian keeps initdb and postgres off PATH)."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/postgres") + glob.glob("/usr/pgsql-*/bin/postgres")
    if candidates:
        return os.path.dirname(max(candidates, key=version_key))
    return os.path.dirname(shutil.which("postgres", path=base_env()["PATH"]) or "/usr/bin/postgres")


def database_of_stream(name: str) -> str | None:
    """The database a `postgresql/<name>.dump` stream holds (inverse of consistency stream_name)."""
    if not (name.startswith(PG_DUMP_PREFIX) and name.endswith(PG_DUMP_SUFFIX)):
        return None
    safe = name[len(PG_DUMP_PREFIX):-len(PG_DUMP_SUFFIX)]
    return safe.replace("%00", "").replace("%2E", ".").replace("%2F", "/")


def globals_for_scratch(text: str) -> str:
    """globals.sql minus `CREATE ROLE postgres;`: the scratch cluster's superuser exists already
    (pg_dumpall writes CREATE ROLE for every role, expecting that one to fail)."""
    skip = "CREATE ROLE %s;" % PG_SUPERUSER
    return "".join(line for line in text.splitlines(True) if line.strip() != skip)


def quote_pg_identifier(name: str) -> str:
    return '"%s"' % name.replace('"', '""')


class PostgreSQLApplicationCheck(ApplicationCheck):
    """postgresql: dumps loaded into a fresh cluster, or the base backup's tar started as is."""

    kind = "postgresql"
    os_user = "postgres"
    stop_signal = signal.SIGQUIT  # immediate shutdown: the scratch cluster is thrown away

    def __init__(self, settings: dict[str, Any], scratch: str, timeout: float | None = None,
                 bindir: str | None = None) -> None:
        super().__init__(settings, scratch, timeout)
        self.mode = self.settings.get("mode") or "dump"
        self.bindir = bindir or pg_bindir()
        self.port = free_port()
        self.data_dir = self.path("data")
        self.details["mode"] = self.mode

    def binary(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def connection(self) -> list[str]:
        return ["-h", self.run_dir, "-p", str(self.port), "-U", PG_SUPERUSER]

    def psql(self, database: str) -> list[str]:
        return [self.binary("psql"), "-X", "-q", "-A", "-t", "-z", "-v", "ON_ERROR_STOP=1"] + self.connection() + \
            ["-d", database]

    def initdb_argv(self) -> list[str]:
        return [self.binary("initdb"), "-D", self.path("data"), "-U", PG_SUPERUSER, "--auth=trust", "-E", "UTF8",
                "--locale=C", "--no-sync"]

    def server_argv(self) -> list[str]:
        """postgres on a socket in the sandbox only, with a configuration of its own: a restored
        base backup's postgresql.conf (or its absence, as on Debian) and archive_command never apply."""
        settings = {"config_file": self.path("postgresql.conf"), "hba_file": self.path("pg_hba.conf"),
                    "ident_file": self.path("pg_ident.conf"), "port": self.port, "listen_addresses": "",
                    "unix_socket_directories": self.run_dir, "archive_mode": "off", "fsync": "off",
                    "synchronous_commit": "off", "shared_buffers": "64MB", "logging_collector": "off"}
        argv = [self.binary("postgres"), "-D", self.data_dir]
        for name, value in settings.items():
            argv += ["-c", "%s=%s" % (name, value)]
        return argv

    def restore_argv(self, database: str) -> list[str]:
        return [self.binary("pg_restore"), "--exit-on-error", "-d", database] + self.connection()

    def amcheck_argv(self) -> list[str]:
        return [self.binary("pg_amcheck"), "--all", "--install-missing"] + self.connection()

    def write_config(self) -> None:
        for name, text in (("postgresql.conf", "# scratch cluster of a restore drill: settings are on its command line\n"),
                           ("pg_hba.conf", "local all all trust\n"), ("pg_ident.conf", "")):
            with open(self.path(name), "w", encoding="utf-8") as handle:
                handle.write(text)
            if self.as_root:
                user = pwd.getpwnam(self.os_user)
                os.chown(self.path(name), user.pw_uid, user.pw_gid)

    def ready(self) -> bool:
        result = run_command([self.binary("pg_isready"), "-q", "-t", "2"] + self.connection() + ["-d", "postgres"],
                             env=self.env(), timeout=10)
        return result.ok

    def run_checks(self, streams: RestoredData | None, restored_root: str) -> str:
        self.write_config()
        if self.mode in ("basebackup", "backup_api"):
            if self.mode == "basebackup":
                self.unpack_base_backup(streams)
            else:
                self.data_dir = self.restored_data_dir(restored_root)
            self.start_server(self.server_argv())
            databases = self.list_databases()
        else:
            dumps = self.dump_streams(streams)
            self.command(self.initdb_argv(), "initdb of the scratch cluster")
            self.start_server(self.server_argv())
            databases = self.load_dumps(streams, dumps)
        self.details["databases"] = databases
        problems = self.amcheck()
        target = self.check_database(databases)
        self.details["checks_database"] = target
        problems += self.run_queries(lambda query: self.query(target, query))
        if problems:
            raise CheckFailed("; ".join(problems))
        return "restored PostgreSQL started in %.1fs; %d database(s) pass pg_amcheck%s" % (
            self.details["start_seconds"], len(databases),
            ", %d check(s) true" % len(self.checks) if self.checks else "")

    def unpack_base_backup(self, streams: RestoredData | None) -> None:
        if streams is None or PG_BASE_TAR not in streams.names():
            raise CheckFailed("the run has no %s stream to restore" % PG_BASE_TAR)
        streams.pipe(PG_BASE_TAR, self.run_as() + ["tar", "-x", "-f", "-", "-C", self.path("data")], self.env(),
                     "unpacking the base backup")
        os.chmod(self.path("data"), 0o700)

    def restored_data_dir(self, restored_root: str) -> str:
        """backup_api: the data directory among the restored files (PG_VERSION and global/pg_control),
        started where it was restored, owned by postgres as the server demands."""
        found = sorted(directory for directory, _dirs, files in os.walk(restored_root)
                       if "PG_VERSION" in files and os.path.isfile(os.path.join(directory, "global", "pg_control"))
                       and not directory.startswith(self.scratch))
        if not found:
            raise CheckFailed("no PostgreSQL data directory (PG_VERSION, global/pg_control) in the restored files")
        data = found[0]
        self.details["data_directory"] = os.path.relpath(data, restored_root)
        if self.as_root:
            user = pwd.getpwnam(self.os_user)
            chown_tree(data, user.pw_uid, user.pw_gid)
            self.check_reachable(data, user)
        os.chmod(data, 0o700)
        # The copy's lock file names the source's postmaster: stale here, and a live PID of that
        # number on this host would stop the start for the wrong reason.
        if os.path.lexists(os.path.join(data, "postmaster.pid")):
            os.unlink(os.path.join(data, "postmaster.pid"))
        return data

    def dump_streams(self, streams: RestoredData | None) -> dict[str, str]:
        """{database: stream} to load, after the globals; the profile's databases must all be there."""
        names = streams.names() if streams is not None else []
        if PG_GLOBALS not in names:
            raise CheckFailed("the run has no %s stream to restore (mode dump)" % PG_GLOBALS)
        dumps = {database_of_stream(name): name for name in names if database_of_stream(name) is not None}
        wanted = [str(name) for name in self.settings.get("databases") or []]
        missing = [name for name in wanted if name not in dumps]
        if missing:
            raise CheckFailed("the run has no dump of database(s) %s" % ", ".join(missing))
        if not dumps:
            raise CheckFailed("the run has no database dump to restore")
        return {name: dumps[name] for name in (wanted or sorted(dumps))}

    def load_dumps(self, streams: RestoredData, dumps: dict[str, str]) -> list[str]:
        path = self.path("globals.sql")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(globals_for_scratch(streams.text(PG_GLOBALS)))
        os.chmod(path, 0o644)
        self.command(self.psql("postgres") + ["-f", path], "loading %s" % PG_GLOBALS)
        for database, name in dumps.items():
            if database not in PG_SYSTEM_DATABASES:
                self.command(self.psql("postgres") + ["-c", "CREATE DATABASE %s TEMPLATE template0" %
                                                      quote_pg_identifier(database)], "creating database %s" % database)
            streams.pipe(name, self.run_as() + self.restore_argv(database), self.env(),
                         "pg_restore of database %s" % database)
        return list(dumps)

    def list_databases(self) -> list[str]:
        result = self.command(self.psql("postgres") + ["-0", "-c", LIST_DATABASES_SQL], "listing databases")
        return parse_database_list(result.stdout)

    def amcheck(self) -> list[str]:
        result = run_command(self.run_as() + self.amcheck_argv(), env=self.env(), timeout=self.timeout,
                             cwd=self.scratch)
        self.details["integrity_check"] = "pg_amcheck --all"
        if result.ok:
            return []
        output = (result.stdout + "\n" + result.stderr).strip()
        if "amcheck" in output and ("control file" in output or "is not available" in output):
            return ["the amcheck extension cannot be created on the drill host (install PostgreSQL's contrib "
                    "modules): %s" % describe_failure(result)]
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        return ["pg_amcheck --all found problems: %s" % (" / ".join(lines[:LOG_TAIL_LINES]) or describe_failure(result))]

    def check_database(self, databases: list[str]) -> str:
        """Where the profile's checks run: its first database, else the first restored non-system one."""
        wanted = self.settings.get("databases") or []
        if wanted:
            return str(wanted[0])
        user_databases = [name for name in databases if name not in PG_SYSTEM_DATABASES]
        return user_databases[0] if user_databases else "postgres"

    def query(self, database: str, sql: str) -> str | None:
        result = run_command(self.run_as() + self.psql(database) + ["-c", sql], env=self.env(), timeout=self.timeout,
                             cwd=self.scratch)
        if not result.ok:
            raise CheckFailed("check query %r failed: %s" % (sql, describe_failure(result)))
        return first_field(result.stdout, "\0")


# -- MariaDB ------------------------------------------------------------------------------------

def quote_mariadb_identifier(name: str) -> str:
    return "`%s`" % name.replace("`", "``")


def check_table_statements(tables: Sequence[tuple[str, str]], batch: int = CHECK_TABLE_BATCH) -> list[str]:
    """CHECK TABLE over (schema, table) pairs, a batch of tables per statement."""
    names = ["%s.%s" % (quote_mariadb_identifier(schema), quote_mariadb_identifier(table)) for schema, table in tables]
    return ["CHECK TABLE %s;" % ", ".join(names[i:i + batch]) for i in range(0, len(names), batch)]


def check_table_problems(output: str) -> list[str]:
    """Rows of CHECK TABLE (batch mode: Table, Op, Msg_type, Msg_text) that report a problem."""
    problems = []
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) < 4:
            continue
        table, kind, text = fields[0], fields[2].strip().lower(), fields[3].strip()
        if kind == "error" or (kind == "status" and text.lower() not in CHECK_TABLE_OK):
            problems.append("%s: %s" % (table, text))
    return problems


class MariaDBApplicationCheck(ApplicationCheck):
    """mariadb: the mariabackup stream extracted, prepared and started without networking."""

    kind = "mariadb"
    os_user = "mysql"
    stop_signal = signal.SIGKILL  # the scratch copy is thrown away: nothing to flush

    def __init__(self, settings: dict[str, Any], scratch: str, timeout: float | None = None) -> None:
        super().__init__(settings, scratch, timeout)
        self.details["mode"] = self.settings.get("mode") or "mariabackup"

    def socket(self) -> str:
        return os.path.join(self.run_dir, "mysqld.sock")

    def client(self) -> list[str]:
        return ["mariadb", "--no-defaults", "--socket=%s" % self.socket(), "--batch", "--skip-column-names",
                "--connect-timeout=10"]

    def extract_argv(self) -> list[str]:
        return ["mbstream", "-x", "-C", self.path("data")]

    def prepare_argv(self) -> list[str]:
        return ["mariabackup", "--no-defaults", "--prepare", "--target-dir=%s" % self.path("data")]

    def server_argv(self) -> list[str]:
        return ["mariadbd", "--no-defaults", "--datadir=%s" % self.path("data"), "--socket=%s" % self.socket(),
                "--pid-file=%s" % os.path.join(self.run_dir, "mysqld.pid"), "--tmpdir=%s" % self.path("tmp"),
                "--skip-networking", "--skip-grant-tables", "--skip-slave-start", "--skip-log-bin",
                "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0"]

    def ready(self) -> bool:
        result = run_command(["mariadb-admin", "--no-defaults", "--socket=%s" % self.socket(), "--connect-timeout=2",
                              "ping"], env=self.env(), timeout=10)
        return result.ok

    def run_checks(self, streams: RestoredData | None, restored_root: str) -> str:
        if streams is None or MARIADB_STREAM not in streams.names():
            raise CheckFailed("the run has no %s stream to restore" % MARIADB_STREAM)
        streams.pipe(MARIADB_STREAM, self.run_as() + self.extract_argv(), self.env(), "mbstream -x")
        self.command(self.prepare_argv(), "mariabackup --prepare")
        self.start_server(self.server_argv())
        tables = self.user_tables()
        self.details["databases"] = sorted({schema for schema, _table in tables})
        self.details["tables_checked"] = len(tables)
        self.details["integrity_check"] = "CHECK TABLE"
        problems = []
        for statement in check_table_statements(tables):
            problems += check_table_problems(self.sql(statement, "CHECK TABLE").stdout)
        problems += self.run_queries(self.query)
        if problems:
            raise CheckFailed("; ".join(problems[:20]))
        return "restored MariaDB started in %.1fs; %d table(s) in %d database(s) pass CHECK TABLE%s" % (
            self.details["start_seconds"], len(tables), len(self.details["databases"]),
            ", %d check(s) true" % len(self.checks) if self.checks else "")

    def sql(self, statement: str, what: str) -> CommandResult:
        result = run_command(self.client() + ["-e", statement], env=self.env(), timeout=self.timeout)
        if not result.ok:
            raise CheckFailed("%s: %s" % (what, describe_failure(result)))
        return result

    def user_tables(self) -> list[tuple[str, str]]:
        system = ", ".join("'%s'" % name for name in MARIADB_SYSTEM_SCHEMAS)
        output = self.sql("SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = "
                          "'BASE TABLE' AND table_schema NOT IN (%s) ORDER BY 1, 2;" % system, "listing tables").stdout
        return [tuple(line.split("\t", 1)) for line in output.splitlines() if "\t" in line]

    def query(self, sql: str) -> str | None:
        result = run_command(self.client() + ["-e", sql], env=self.env(), timeout=self.timeout)
        if not result.ok:
            raise CheckFailed("check query %r failed: %s" % (sql, describe_failure(result)))
        value = first_field(result.stdout, "\t")
        return "" if value == "NULL" else value


CHECKS = {"postgresql": PostgreSQLApplicationCheck, "mariadb": MariaDBApplicationCheck}


def check_settings(profile: dict[str, Any], kind: str) -> dict[str, Any]:
    """What a check reads of the profile: mode, databases, checks (never a password)."""
    section = profile.get(kind) or {}
    return {key: section[key] for key in ("mode", "databases", "checks") if key in section}


def database_layer(restored: RestoredData, profile: dict[str, Any], point: RecoveryPoint, target: str,
                   timeout: float | None) -> Layer:
    """The application layer of a postgresql or mariadb profile for point, its streams in restored."""
    began = time.monotonic()
    kind = str(profile.get("type"))
    settings = check_settings(profile, kind)
    streams = None
    if settings.get("mode") != "backup_api":  # backup_api: the data directory is among the restored files
        try:
            names = restored.names()
        except DrillError as exc:
            return Layer("application", FAILED, "cannot list the run's streams: %s" % exc, time.monotonic() - began)
        if not names:
            return Layer("application", FAILED, "point %s has no %s stream beside it: was the run consistent?" % (
                point.short_id or point.id[:8], kind), time.monotonic() - began)
        streams = restored
    check = CHECKS[kind](settings, os.path.join(target, SCRATCH_DIR), timeout)
    layer = check.check(streams, target)
    if streams is not None:
        layer.details["streams"] = streams.origins()
    layer.seconds = time.monotonic() - began
    return layer
