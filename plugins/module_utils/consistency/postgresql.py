# -*- coding: utf-8 -*-
# Private to restorable.backup: the PostgreSQL quiesce profile.
"""PostgreSQL: logical dumps, a base backup stream, or the backup API around a snapshot.

``streams()`` (file-level tiers), by ``postgresql.mode``:

* ``dump`` (default): ``pg_dumpall --globals-only --no-role-passwords`` (roles and tablespaces)
  and one ``pg_dump -Fc`` per database (``databases``, default every database that accepts
  connections and is not a template, listed with ``psql``). Each dump is one consistent
  snapshot of its database (a repeatable-read transaction): writes go on meanwhile.
* ``basebackup``: ``pg_basebackup -D - -Ft -X fetch``, the whole cluster as ONE tar on stdout
  with the WAL needed to make it consistent inside (pg_basebackup refuses to write a cluster
  with extra tablespaces to stdout; use the backup API with snapshots for those).

``frozen(snapshot)`` (snapshot tiers, any mode): one ``psql`` session is opened and, if the role
may (superuser or ``pg_checkpoint``), runs ``CHECKPOINT`` before the window; then it runs
``pg_backup_start(label, fast => true)``, ``snapshot()`` is taken, and the same session runs
``pg_backup_stop(wait_for_archive => false)`` (the two must share a session). The watchdog is
armed with the session's PID before backup mode starts: killing the session aborts backup mode.
After the window, when ``archive_mode`` is on, the profile waits until ``pg_stat_archiver`` shows
the stop segment archived (``pg_backup_stop``'s own wait polls once a second, which would hold
backup mode for over a second); a restore needs the WAL up to the stop LSN.
``FreezeRecord.label`` is a JSON object with ``backup_label`` and ``tablespace_map``, the files a
restore writes into the snapshot's data directory (see :func:`restore_files`), the start and stop
LSNs, the stop WAL file and ``wal_archived`` (true, or null when nothing archives). PostgreSQL does
not block writers in backup mode: the "freeze" window is the time backup mode was on.

Credentials never reach argv: a password goes into a 0600 passfile (``PGPASSFILE``) in a private
directory under the staging directory, removed by ``cleanup()``; without a password, when run as
root, the clients run as the OS user named like the role (``setpriv``, which execs in place so
the PID stays the client's), for peer authentication over the socket.
"""
from __future__ import annotations

import atexit
import base64
import json
import os
import pwd
import re
import shutil
import tempfile
import time
from typing import Any, BinaryIO, Callable, TypeVar

from ..common.process import base_env, run_command
from .base import FreezeRecord, FreezingProfile, QuiesceFailed, StreamingProfile, StreamSource
from .sql import SqlSession, private_file

T = TypeVar("T")

MODES = ("dump", "basebackup", "backup_api")
DEFAULT_LABEL = "restorable"
START_MARKER = "__RESTORABLE_BACKUP_STARTED__"
STOP_MARKER = "__RESTORABLE_BACKUP_STOPPED__"
# Databases that accept connections and are not templates, NUL-separated (names may hold anything).
LIST_DATABASES_SQL = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
# One line: stop LSN, its WAL file (none on a standby), archive_mode, then the label and map files
# base64-encoded so that newlines cannot break the framing. pg_backup_stop does not wait for the
# archive (it polls once a second, which would stretch the window past a second): frozen() waits
# for the stop segment in pg_stat_archiver after the window instead.
STOP_SQL = ("SELECT lsn, CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_walfile_name(lsn) END, "
            "current_setting('archive_mode'), "
            "translate(encode(convert_to(labelfile, 'UTF8'), 'base64'), E'\\n', ''), "
            "translate(encode(convert_to(coalesce(spcmapfile, ''), 'UTF8'), 'base64'), E'\\n', '') "
            "FROM pg_backup_stop(false);")
# Whether a checkpoint may be requested before the window (superuser or pg_checkpoint, PG 15+).
CAN_CHECKPOINT_SQL = ("SELECT rolsuper OR pg_has_role(current_user, 'pg_checkpoint', 'MEMBER') "
                      "FROM pg_roles WHERE rolname = current_user;")
ARCHIVED_SQL = "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver;"
ARCHIVED_MARKER = "__RESTORABLE_ARCHIVED__"
CHECKPOINT_MARKER = "__RESTORABLE_CHECKPOINT__"
DEFAULT_ARCHIVE_WAIT = 300.0
WAL_NAME_LENGTH = 24
START_WAL_RE = re.compile(r"^START WAL LOCATION: .*\(file ([0-9A-F]{24})\)\s*$", re.M)
# Files of the running server a restored copy must not have (pg_basebackup leaves them out too):
# a postmaster.pid naming a live process stops the copy from starting.
SNAPSHOT_EXCLUDED = ("postmaster.pid", "postmaster.opts")
DATA_DIRECTORY_DEPTH = 3  # how deep below a volume's root complete_snapshot looks for PG_VERSION


def passfile_escape(value: str) -> str:
    """A field of a PostgreSQL password file: backslash and colon are escaped."""
    return value.replace("\\", "\\\\").replace(":", "\\:")


def passfile_line(user: str, password: str) -> str:
    """One passfile line matching any host, port and database for user."""
    if "\n" in password or "\r" in password or "\n" in user:
        raise QuiesceFailed("the PostgreSQL password or user name holds a line break")
    return "*:*:*:%s:%s\n" % (passfile_escape(user), passfile_escape(password))


def check_database_name(name: str) -> str:
    """A plain database name: pg_dump -d would read '=' or a URI as a connection string."""
    if not name or "=" in name or name.startswith(("postgres://", "postgresql://")) or "\0" in name:
        raise QuiesceFailed("database name %r cannot be passed to pg_dump safely" % name)
    return name


def parse_database_list(output: str) -> list[str]:
    """Names from `psql -A -t -0` (NUL after each record; a trailing newline may follow)."""
    names = []
    for item in output.split("\0"):
        item = item.strip("\n")
        if item:
            names.append(item)
    return names


def stream_name(database: str) -> str:
    """The file name of a database's dump in the backup (path separators made harmless)."""
    safe = database.replace("/", "%2F").replace("\0", "")
    if safe in ("", ".", ".."):
        safe = safe.replace(".", "%2E") or "%00"
    return "postgresql/%s.dump" % safe


def parse_stop_line(line: str) -> dict[str, str]:
    """`lsn|walfile|archive_mode|base64 labelfile|base64 spcmapfile` (psql -A -t), decoded."""
    parts = line.strip().split("|")
    if len(parts) != 5 or not parts[0] or not parts[3]:
        raise QuiesceFailed("unexpected pg_backup_stop output %r" % line[:200])
    try:
        label = base64.b64decode(parts[3], validate=True).decode("utf-8")
        spcmap = base64.b64decode(parts[4], validate=True).decode("utf-8") if parts[4] else ""
    except (ValueError, UnicodeDecodeError) as exc:
        raise QuiesceFailed("cannot decode pg_backup_stop output: %s" % exc) from None
    return {"stop_lsn": parts[0], "stop_wal_file": parts[1], "archive_mode": parts[2], "backup_label": label,
            "tablespace_map": spcmap}


def wal_archived(last_archived: str, stop_wal_file: str) -> bool:
    """Whether pg_stat_archiver.last_archived_wal shows the stop segment archived.

    The archiver archives ready files in name order, so the stop segment is archived once the
    last archived file is it or a later segment. The backup history file of this very backup,
    ``<start segment>.<offset>.backup``, is made ready after pg_backup_stop switched out the stop
    segment and sorts after it: when its segment is the stop segment, that segment went first.
    Timeline history files (``00000002.history``) say nothing.
    """
    if not last_archived or len(stop_wal_file) != WAL_NAME_LENGTH:
        return False
    segment = last_archived[:WAL_NAME_LENGTH]
    if len(last_archived) == WAL_NAME_LENGTH:
        return segment >= stop_wal_file
    if len(segment) == WAL_NAME_LENGTH and last_archived[WAL_NAME_LENGTH:WAL_NAME_LENGTH + 1] == ".":
        if last_archived.endswith(".backup"):
            return segment >= stop_wal_file
        return segment > stop_wal_file  # a .partial segment of an older timeline: only a later one
    return False


def label_fields(backup_label: str) -> dict[str, str]:
    """`KEY: value` lines of a backup_label file (START WAL LOCATION, LABEL, START TIME, ...)."""
    fields = {}
    for line in backup_label.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def restore_files(label: str) -> dict[str, str]:
    """The files a restore writes into the snapshot's data directory, from FreezeRecord.label.

    backup_label always; tablespace_map only when the cluster has extra tablespaces.
    """
    try:
        data = json.loads(label)
        files = {"backup_label": data["backup_label"]}
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError("not a PostgreSQL backup label record: %s" % exc) from None
    if data.get("tablespace_map"):
        files["tablespace_map"] = data["tablespace_map"]
    return files


def wal_segments(start_file: str, stop_file: str, segment_size: int) -> list[str]:
    """WAL file names from start_file to stop_file inclusive (one timeline), for a segment size."""
    if segment_size <= 0 or segment_size & (segment_size - 1) or segment_size > 0x100000000:
        raise QuiesceFailed("WAL segment size %d is not a power of two up to 4 GiB" % segment_size)
    per_log = 0x100000000 // segment_size
    try:
        start, stop = [(int(name[:8], 16), int(name[8:16], 16) * per_log + int(name[16:24], 16))
                       for name in (start_file, stop_file)]
    except ValueError:
        raise QuiesceFailed("%r or %r is not a WAL file name" % (start_file, stop_file)) from None
    if len(start_file) != WAL_NAME_LENGTH or len(stop_file) != WAL_NAME_LENGTH or start[0] != stop[0] or stop[1] < start[1]:
        raise QuiesceFailed("cannot list the WAL from %s to %s (not one timeline, or backwards)" % (start_file, stop_file))
    return ["%08X%08X%08X" % (start[0], number // per_log, number % per_log) for number in range(start[1], stop[1] + 1)]


def start_wal_file(backup_label: str) -> str:
    """The WAL file of `START WAL LOCATION: 0/5000028 (file 000000010000000000000005)`."""
    match = START_WAL_RE.search(backup_label)
    if not match:
        raise QuiesceFailed("the backup label names no start WAL file")
    return match.group(1)


def is_data_directory(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "PG_VERSION")) and os.path.isfile(os.path.join(path, "global", "pg_control"))


def socket_dir_of(data_directory: str) -> str | None:
    """The first socket directory of the running cluster, from line 5 of its postmaster.pid; None when
    it does not run, or listens on TCP only (libpq's default socket directory is then the guess)."""
    try:
        with open(os.path.join(data_directory, "postmaster.pid"), "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return lines[4].strip() or None if len(lines) > 4 else None


def find_data_directories(root: str, depth: int = DATA_DIRECTORY_DEPTH) -> list[str]:
    """Paths (relative to root, "." for root) of PostgreSQL data directories, depth levels deep at most."""
    found = []
    level = ["."]
    for _level in range(depth + 1):
        deeper = []
        for relative in level:
            path = os.path.normpath(os.path.join(root, relative))
            if is_data_directory(path):
                found.append(relative)
                continue
            try:
                with os.scandir(path) as entries:
                    deeper += [os.path.join(relative, entry.name) for entry in entries
                               if entry.is_dir(follow_symlinks=False)]
            except OSError:
                continue
        level = deeper
    return sorted(os.path.normpath(relative) for relative in found)


def snapshot_wal_directory(snapshot: str, snapshots: dict[str, str]) -> str:
    """The pg_wal of a data directory's snapshot: its own, or, when pg_wal links into another volume
    of the group (initdb -X, a WAL volume), that volume's snapshot of the directory it links to."""
    wal = os.path.join(snapshot, "pg_wal")
    if os.path.islink(wal):
        target = os.path.normpath(os.path.join(snapshot, os.readlink(wal)))
        inside = [(volume, copy) for volume, copy in snapshots.items()
                  if target == volume or target.startswith(volume.rstrip("/") + "/")]
        if not inside:
            raise QuiesceFailed("%s links to %s, outside the snapshotted volumes: put the WAL directory on a volume "
                                "of the group to make the snapshot restorable" % (wal, target))
        volume, copy = inside[0]
        wal = os.path.join(copy, os.path.relpath(target, volume))
    if os.path.islink(wal) or not os.path.isdir(wal):
        raise QuiesceFailed("%s is a symbolic link or missing: the snapshot has no WAL directory to complete" % wal)
    return wal


def write_owned_file(path: str, data: bytes | BinaryIO, owner: os.stat_result) -> None:
    """Replace path by a 0600 file with data (bytes or a file to copy), owned like owner (the server's OS user)."""
    tmp = path + ".restorable-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                shutil.copyfileobj(data, handle, 1024 * 1024)
            os.fchown(handle.fileno(), owner.st_uid, owner.st_gid)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class PostgreSQLProfile(StreamingProfile, FreezingProfile):
    """type: postgresql (see the module docstring)."""

    kind = "postgresql"

    def __init__(self, config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> None:
        super().__init__(config, staging_dir, status_dir)
        settings = dict(config.get("postgresql") or {})
        self.mode = settings.get("mode") or "dump"
        if self.mode not in MODES:
            raise QuiesceFailed("postgresql.mode must be one of %s, not %r" % (", ".join(MODES), self.mode))
        self.host = settings.get("host") or None
        self.port = settings.get("port")
        self.user = settings.get("user") or None
        self.password = settings.get("password") or None
        self.databases = [check_database_name(name) for name in settings.get("databases") or []]
        self.label_text = settings.get("label") or DEFAULT_LABEL
        self.bindir = settings.get("bindir") or None
        self.archive_wait = float(settings.get("archive_wait") or DEFAULT_ARCHIVE_WAIT)
        self.data_directory = os.path.normpath(settings["data_directory"]) if settings.get("data_directory") else None
        self.redactor.add(self.password)
        self._secret_dir: str | None = None
        self._session: SqlSession | None = None
        self._start_lsn = ""
        self._stopped: dict[str, str] | None = None
        self._wal_archived: bool | None = None

    # -- connection ---------------------------------------------------------------------------
    def binary(self, name: str) -> str:
        if self.bindir:
            return os.path.join(self.bindir, name)
        return name

    def connection_args(self) -> list[str]:
        """-h/-p/-U: never a password, never a connection string."""
        args = []
        if self.host:
            args += ["-h", str(self.host)]
        if self.port:
            args += ["-p", str(int(self.port))]
        if self.user:
            args += ["-U", str(self.user)]
        return args + ["--no-password"]

    def run_as_prefix(self) -> list[str]:
        """setpriv to the role's OS user for peer authentication (root, no password, user exists)."""
        if self.password or not self.user or os.geteuid() != 0 or self.user == "root":
            return []
        try:
            pwd.getpwnam(self.user)
        except KeyError:
            return []
        return ["setpriv", "--reuid=%s" % self.user, "--regid=%s" % self.user, "--init-groups", "--"]

    def client_env(self) -> dict[str, str]:
        """The environment of every client: PGPASSFILE when there is a password, no PG* leaks."""
        env = base_env({"PGAPPNAME": "restorable", "PGCONNECT_TIMEOUT": "10"})
        if self.password:
            env["PGPASSFILE"] = self._passfile()
        elif self.run_as_prefix():
            env["HOME"] = "/"
        return env

    def _passfile(self) -> str:
        if self._secret_dir is None or not os.path.isdir(self._secret_dir):
            os.makedirs(self.staging_dir, mode=0o700, exist_ok=True)
            self._secret_dir = tempfile.mkdtemp(prefix=".pg-", dir=self.staging_dir)
            private_file(self._secret_dir, "passfile", passfile_line(self.user or "*", self.password or ""))
            atexit.register(shutil.rmtree, self._secret_dir, True)
        return os.path.join(self._secret_dir, "passfile")

    def cleanup(self) -> None:
        """Remove the passfile; call it in a finally after the streams have run."""
        if self._secret_dir is not None:
            shutil.rmtree(self._secret_dir, ignore_errors=True)
            self._secret_dir = None

    def psql_argv(self, database: str = "postgres") -> list[str]:
        return self.run_as_prefix() + [self.binary("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"] + \
            self.connection_args() + ["-d", check_database_name(database)]

    # -- file-level tiers ---------------------------------------------------------------------
    def list_databases(self) -> list[str]:
        argv = self.psql_argv() + ["-0", "-c", LIST_DATABASES_SQL]
        result = run_command(argv, env=self.client_env(), timeout=60)
        if not result.ok:
            raise QuiesceFailed("cannot list PostgreSQL databases: %s" % self.redactor(
                result.stderr_tail() or "exit code %d" % result.returncode))
        return parse_database_list(result.stdout)

    def dump_argv(self, database: str) -> list[str]:
        return self.run_as_prefix() + [self.binary("pg_dump"), "-Fc"] + self.connection_args() + \
            ["-d", check_database_name(database)]

    def globals_argv(self) -> list[str]:
        return self.run_as_prefix() + [self.binary("pg_dumpall"), "--globals-only", "--no-role-passwords"] + \
            self.connection_args() + ["-l", "postgres"]

    def basebackup_argv(self) -> list[str]:
        return self.run_as_prefix() + [self.binary("pg_basebackup"), "-D", "-", "-Ft", "-X", "fetch",
                                       "-c", "fast", "-l", self.label_text] + self.connection_args()

    def streams(self) -> list[StreamSource]:
        if self.mode == "backup_api":
            raise QuiesceFailed("postgresql.mode backup_api works around snapshots (cdp, array tiers); "
                                "file-level tiers need mode dump or basebackup")
        env = self.client_env()
        if self.mode == "basebackup":
            return [StreamSource("postgresql/base.tar", self.basebackup_argv(), env)]
        databases = self.databases or self.list_databases()
        if not databases:
            raise QuiesceFailed("the PostgreSQL server has no database to dump")
        sources = [StreamSource("postgresql/globals.sql", self.globals_argv(), env)]
        sources += [StreamSource(stream_name(name), self.dump_argv(name), env) for name in databases]
        return sources

    # -- snapshot tiers -----------------------------------------------------------------------
    def frozen(self, snapshot: Callable[[], T]) -> tuple[T, FreezeRecord]:
        """The base frozen() between work that stays outside the window.

        Before: the session is opened and, when the role may, a CHECKPOINT flushes dirty buffers
        (pg_backup_start's own checkpoint then has little left to write). After: the label, only
        known after pg_backup_stop, goes into the record, and the stop segment's archiving is
        awaited (a restore needs the WAL up to the stop LSN).
        """
        self._stopped = None
        self._start_lsn = ""
        self._wal_archived = None
        try:
            self._open_session()
            try:
                result, record = super().frozen(snapshot)
            except QuiesceFailed as exc:
                if exc.record is not None and self._stopped is not None:
                    exc.record.label = self._label_json()
                raise
            record.label = self._label_json()
            try:
                self._wal_archived = self._wait_for_archive()
            except QuiesceFailed as exc:
                record.consistent = False
                record.reason = str(exc)
                raise QuiesceFailed(record.reason, result=result, record=record) from None
            finally:
                record.label = self._label_json()
            return result, record
        finally:
            if self._session is not None:
                self._session.kill()
                self._session = None

    def complete_snapshot(self, snapshots: dict[str, str], record: FreezeRecord) -> None:
        """Make the data directory's snapshot restorable on its own, without a WAL archive.

        The WAL from the backup's start segment to its stop segment is copied from the live
        pg_wal into the snapshot's, then backup_label (and tablespace_map) are written, last, so
        that a failure never leaves a label without its WAL; postmaster.pid goes. A copy of the
        snapshot then starts anywhere and replays to the consistent stop point.
        """
        if record.label is None:
            return  # backup mode never ended properly: a crash-consistent snapshot, nothing to add
        files = restore_files(record.label)
        stopped = json.loads(record.label)
        if not stopped.get("stop_wal_file"):
            raise QuiesceFailed("pg_backup_stop named no stop WAL file (a standby): snapshots of standbys "
                                "need the WAL archive to be restored")
        live, snapshot = self.snapshot_data_directory(snapshots)
        target_wal = snapshot_wal_directory(snapshot, snapshots)
        owner = os.stat(snapshot)
        try:
            self._copy_wal(os.path.join(live, "pg_wal"), target_wal, start_wal_file(files["backup_label"]),
                           stopped["stop_wal_file"], owner)
            for name in SNAPSHOT_EXCLUDED:
                if os.path.lexists(os.path.join(snapshot, name)):
                    os.unlink(os.path.join(snapshot, name))
            for name, text in files.items():
                write_owned_file(os.path.join(snapshot, name), text.encode("utf-8"), owner)
        except OSError as exc:
            raise QuiesceFailed("cannot complete the snapshot %s: %s" % (snapshot, exc)) from None

    def snapshot_data_directory(self, snapshots: dict[str, str]) -> tuple[str, str]:
        """(live, snapshot) path of the data directory: data_directory, else the only one found."""
        found = []
        for volume, snapshot in snapshots.items():
            if self.data_directory is not None:
                if self.data_directory == volume or self.data_directory.startswith(volume.rstrip("/") + "/"):
                    found.append((volume, snapshot, os.path.relpath(self.data_directory, volume)))
                continue
            found += [(volume, snapshot, relative) for relative in find_data_directories(snapshot)]
        if len(found) != 1:
            where = self.data_directory or "%d level(s) below the volumes" % DATA_DIRECTORY_DEPTH
            raise QuiesceFailed("expected one PostgreSQL data directory in the snapshots (%s), found %d: "
                                "set postgresql.data_directory" % (where, len(found)))
        volume, snapshot, relative = found[0]
        return os.path.normpath(os.path.join(volume, relative)), os.path.normpath(os.path.join(snapshot, relative))

    @staticmethod
    def _copy_wal(live_wal: str, target_wal: str, start_file: str, stop_file: str, owner: os.stat_result) -> None:
        try:
            segment_size = os.stat(os.path.join(live_wal, start_file)).st_size
        except FileNotFoundError:
            raise QuiesceFailed("WAL segment %s, where the backup starts, is gone from %s (recycled by a "
                                "checkpoint): the snapshot cannot be made restorable" % (start_file, live_wal)) from None
        for name in wal_segments(start_file, stop_file, segment_size):
            try:
                source = open(os.path.join(live_wal, name), "rb")  # pylint: disable=consider-using-with
            except FileNotFoundError:
                raise QuiesceFailed("WAL segment %s (between the backup's start %s and stop %s) is gone from %s: "
                                    "the snapshot cannot be made restorable" % (name, start_file, stop_file,
                                                                                live_wal)) from None
            with source:
                write_owned_file(os.path.join(target_wal, name), source, owner)

    def _open_session(self) -> None:
        session = SqlSession(self.psql_argv(), self.client_env(), "the PostgreSQL backup session (psql)",
                             lambda marker: "\\echo " + marker, self.redactor)
        self._session = session
        session.start()
        may = session.query(CAN_CHECKPOINT_SQL, CHECKPOINT_MARKER, 60)
        if may and may[-1].strip() == "t":
            session.query("CHECKPOINT;", CHECKPOINT_MARKER, 600)

    def _wait_for_archive(self) -> bool | None:
        """True once the stop segment is archived; None when nothing archives (or a standby)."""
        stopped = self._stopped or {}
        session = self._session
        if stopped.get("archive_mode", "off") == "off" or not stopped.get("stop_wal_file") or session is None:
            return None
        deadline = time.monotonic() + self.archive_wait
        while True:
            lines = session.query(ARCHIVED_SQL, ARCHIVED_MARKER, 60)
            if lines and wal_archived(lines[-1].strip(), stopped["stop_wal_file"]):
                return True
            if time.monotonic() > deadline:
                raise QuiesceFailed("WAL segment %s (up to the backup's stop LSN %s) was not archived within %gs: "
                                    "check archive_command" % (stopped["stop_wal_file"], stopped["stop_lsn"],
                                                               self.archive_wait))
            time.sleep(0.02)

    def _label_json(self) -> str | None:
        if self._stopped is None:
            return None
        return json.dumps({"method": "pg_backup_start/pg_backup_stop", "start_lsn": self._start_lsn,
                           "stop_lsn": self._stopped["stop_lsn"], "stop_wal_file": self._stopped["stop_wal_file"],
                           "wal_archived": self._wal_archived, "backup_label": self._stopped["backup_label"],
                           "tablespace_map": self._stopped["tablespace_map"]}, sort_keys=True)

    def quiesce(self, watchdog) -> str | None:
        session = self._session
        if session is None or not session.alive():
            self._open_session()
            session = self._session
        # Before backup mode: the watchdog ends it by killing the session.
        watchdog.add_kill(session.pid)
        self.window_started = time.monotonic()  # backup mode begins now
        label = self.label_text.replace("'", "''")
        lines = session.query("SELECT pg_backup_start('%s', true);" % label, START_MARKER, self.max_freeze + 5)
        self._start_lsn = lines[-1].strip() if lines else ""
        return None

    def release(self) -> None:
        session = self._session
        if session is None or session.proc is None:
            return
        try:
            if not self._start_lsn:
                return  # backup mode never began: ending the session is all there is to do
            if not session.alive():
                raise QuiesceFailed("the backup session ended before pg_backup_stop%s (killed by the watchdog "
                                    "after max_freeze, or the server went away): backup mode was aborted and "
                                    "the snapshot has no backup label" % session.why())
            lines = session.query(STOP_SQL, STOP_MARKER, self.max_freeze + 60)
            if not lines:
                raise QuiesceFailed("pg_backup_stop returned nothing")
            self._stopped = parse_stop_line(lines[-1])
        except BaseException:
            session.close()
            self._session = None
            raise
        # The session stays open (holding nothing now) for frozen() to await the archive.
