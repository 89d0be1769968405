# -*- coding: utf-8 -*-
# Private to restorable.backup: point-in-time restore of a CDP PostgreSQL dataset into a sandbox,
# for the restore module and for drills alike.
"""Point-in-time restore.

A target is a time, an LSN, a named restore point (``pg_create_restore_point``) or the latest
archived WAL. The base backup is the newest whose stop is before the target (the newest for
latest; for a name, whose place is unknown, the newest first and then older ones until one
reaches it). It is streamed from the repository straight into ``<sandbox>/data`` (never over
the production data directory: a sandbox that is, holds or lies inside a protected path is
refused) and started as the cluster's OS user with a configuration of its own, on its own port
and a socket directory nobody else uses, without TCP, with ``archive_mode=off`` (the restored
``postgresql.auto.conf`` would otherwise archive into production's store) and with
``restore_command`` running the agent's ``restore-wal``, the ``recovery_target_*`` settings,
``recovery_target_action=promote`` and ``recovery.signal``. The timeline followed is, unless
the caller names one, the one still being archived if it continues the base backup's timeline
(:func:`recovery_timeline`). ``hot_standby`` is off: the server
answers only once recovery has ended, which is what the caller waits for, and a lower
``max_connections`` than production's cannot stop it.

PostgreSQL itself refuses to promote when the target was not reached ("recovery ended before
configured recovery target was reached"); ``restore-wal`` exits 126 on a store failure, which
stops recovery rather than ending it early. The caller gets the running server
(:class:`SandboxServer`: port, socket directory, PID, data directory) and stops it.
"""
from __future__ import annotations

import datetime
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ....common.process import DEFAULT_PATH, run_command, stop_server
from ....drill.application import (PG_BASE_TAR, PG_SUPERUSER, SOCKET_NAME_MAX, SOCKET_PATH_MAX, chown_tree,
                                   describe_failure, free_port, pg_bindir, traversable_by)
from ....drill.engine import SandboxRefused, check_sandbox
from ....storage.repository import Repository, RepositoryError
from .basebackup import BaseBackup, iso_time
from .names import continues_past, is_history, is_segment, lsn_value, parse_history, timeline_of
from .store import Store, StoreError

KINDS = ("latest", "time", "lsn", "name")
TARGET_SETTINGS = {"time": "recovery_target_time", "lsn": "recovery_target_lsn", "name": "recovery_target_name"}
CLEARED = ("recovery_target", "recovery_target_xid", "recovery_target_time", "recovery_target_lsn",
           "recovery_target_name")
NOT_REACHED = "recovery ended before configured recovery target was reached"
DEFAULT_TIMEOUT = 900.0
STOP_TIMEOUT = 60.0
LOG_TAIL_LINES = 6
# The backup's stop time is the server's clock just after pg_basebackup returned; one more
# second keeps a target inside the same second out of a backup that may not be consistent yet.
STOP_MARGIN = datetime.timedelta(seconds=1)
STATE_SQL = ("SELECT json_build_object('in_recovery', pg_is_in_recovery(), 'replay_lsn', "
             "pg_last_wal_replay_lsn()::text, 'wal', pg_walfile_name(pg_current_wal_lsn()))")


class PitrError(Exception):
    """The restore could not be done; the message says why."""


class TargetNotReached(PitrError):
    """The archive after this base backup does not reach the target."""


@dataclass
class RecoveryTarget:
    """Where recovery stops: kind latest, time (an aware datetime), lsn or name."""

    kind: str = "latest"
    time: datetime.datetime | None = None
    lsn: str = ""
    name: str = ""
    timeline: str = "auto"  # auto (see recovery_timeline), latest, current or a number

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PitrError("recovery target kind %r is not one of %s" % (self.kind, ", ".join(KINDS)))
        if self.kind == "time" and (self.time is None or self.time.tzinfo is None):
            raise PitrError("a time target needs a time with a time zone")
        if self.kind == "lsn":
            lsn_value(self.lsn)
        if self.kind == "name" and not self.name:
            raise PitrError("a named target needs the restore point's name")

    def value(self) -> str:
        if self.kind == "time":
            return self.time.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        return {"lsn": self.lsn, "name": self.name}.get(self.kind, "")

    def describe(self) -> str:
        return "latest" if self.kind == "latest" else "%s %s" % (self.kind, self.value())

    def settings(self, timeline: str) -> list[tuple[str, str]]:
        """recovery_target_*: every other kind emptied first (a restored postgresql.auto.conf may
        name one, and two targets are an error), then this one."""
        own = TARGET_SETTINGS.get(self.kind)
        values = [(name, "") for name in CLEARED if name != own]
        if own:
            values.append((own, self.value()))
        return values + [("recovery_target_inclusive", "on"), ("recovery_target_timeline", timeline),
                         ("recovery_target_action", "promote")]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value(), "timeline": self.timeline}


def candidate_bases(bases: Sequence[BaseBackup], target: RecoveryTarget) -> list[BaseBackup]:
    """The base backups to try, best first (see the module docstring)."""
    newest_first = sorted(bases, key=lambda base: (base.stop_time, base.id), reverse=True)
    if target.kind == "time":
        return [base for base in newest_first if base.stop_time + STOP_MARGIN <= target.time][:1]
    if target.kind == "lsn":
        return [base for base in newest_first if lsn_value(base.stop_lsn) <= lsn_value(target.lsn)][:1]
    if target.kind == "name":
        return newest_first
    return newest_first[:1]


def newest_wal(store: Store, names: Sequence[str] | None = None) -> tuple[str, datetime.datetime] | None:
    """(name, when stored) of the newest archived segment: the last one of each timeline, by time."""
    last: dict[int, str] = {}
    for name in store.list() if names is None else names:
        if is_segment(name):
            last[timeline_of(name)] = name
    if not last:
        return None
    when, name = max((store.modified(name), name) for name in last.values())
    return name, datetime.datetime.fromtimestamp(when, datetime.timezone.utc)


def recovery_timeline(store: Store, base: BaseBackup) -> int:
    """The timeline a restore from base follows: the one still being archived (of the newest
    archived segment) when it continues the base's timeline past the backup, else the newest
    that does, else the base's own. PostgreSQL's "latest" would pick the highest-numbered
    timeline even when it forked off before the backup (a restored copy archiving into the same
    store), and then refuse to start."""
    names = store.list()
    stop = lsn_value(base.stop_lsn)
    reachable = [base.timeline]
    for name in names:
        timeline = timeline_of(name)
        if is_history(name) and timeline > base.timeline:
            try:
                entries = parse_history(store.read(name).decode("utf-8", "replace"))
            except ValueError as exc:
                raise PitrError("%s in %s is damaged: %s" % (name, store.describe(), exc)) from None
            if continues_past(entries, base.timeline, stop):
                reachable.append(timeline)
    newest = newest_wal(store, names)
    if newest is not None and timeline_of(newest[0]) in reachable:
        return timeline_of(newest[0])
    return max(reachable)


@dataclass
class SandboxServer:
    """The restored cluster, running; stop() ends it."""

    data_dir: str
    port: int
    socket_dir: str
    process: subprocess.Popen
    log_path: str
    base: BaseBackup
    target: RecoveryTarget
    run_as: list[str]
    env: dict[str, str]
    bindir: str
    replay_lsn: str = ""
    timeline: int = 0
    seconds: float = 0.0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    private_socket_dir: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def psql(self, sql: str, database: str = "postgres", timeout: float = 60.0) -> str:
        argv = self.run_as + [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-h", self.socket_dir, "-p", str(self.port), "-U", PG_SUPERUSER, "-d", database, "-c", sql]
        result = run_command(argv, env=self.env, timeout=timeout)
        if not result.ok:
            raise PitrError("query on the restored server failed: %s" % describe_failure(result))
        return result.stdout.strip()

    def stop(self) -> None:
        """Fast shutdown by PID (SIGKILL if it does not end), then the private socket directory goes."""
        stop_server(self.process, signal.SIGINT, STOP_TIMEOUT)
        if self.private_socket_dir:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def to_dict(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "port": self.port, "socket_dir": self.socket_dir, "pid": self.pid,
                "base_backup": self.base.to_dict(), "target": self.target.to_dict(), "replay_lsn": self.replay_lsn,
                "timeline": self.timeline, "seconds": round(self.seconds, 3), "attempts": self.attempts,
                "log": self.log_path}


class Restorer:
    """Restores into one sandbox (see the module docstring); run() returns the running server."""

    def __init__(self, repo: Repository, restore_command: str, sandbox: str, protected: Sequence[str] = (),
                 settings: dict[str, str] | None = None, durable: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 store: Store | None = None, os_user: str = PG_SUPERUSER, bindir: str | None = None) -> None:
        self.repo = repo
        self.store = store
        self.restore_command = restore_command
        self.sandbox = os.path.abspath(sandbox)
        self.protected = [path for path in protected if path]
        self.settings = dict(settings or {})
        self.durable = durable
        self.timeout = timeout
        self.os_user = os_user
        self.bindir = bindir or pg_bindir()
        self.as_root = os.geteuid() == 0
        self.data_dir = os.path.join(self.sandbox, "data")
        self.conf_dir = os.path.join(self.sandbox, "conf")
        self.log_path = os.path.join(self.sandbox, "postgresql.log")
        self.attempted = False

    def run(self, bases: Sequence[BaseBackup], target: RecoveryTarget) -> SandboxServer:
        try:
            check_sandbox(self.sandbox, self.protected)
        except SandboxRefused as exc:
            raise PitrError(str(exc)) from None
        candidates = candidate_bases(bases, target)
        if not candidates:
            raise PitrError("no base backup ends before %s (%d base backup(s), the oldest ending %s)" % (
                target.describe(), len(bases), iso_time(min(b.stop_time for b in bases)) if bases else "-"))
        attempts: list[dict[str, Any]] = []
        for base in candidates:
            began = time.monotonic()
            try:
                server = self._attempt(base, target)
            except TargetNotReached as exc:
                attempts.append({"base_backup": base.short_id, "result": str(exc)})
                continue
            server.seconds = time.monotonic() - began
            server.attempts = attempts + [{"base_backup": base.short_id, "result": "reached"}]
            return server
        raise PitrError("%s was not reached from any of %d base backup(s): %s" % (
            target.describe(), len(candidates), "; ".join("%s: %s" % (a["base_backup"], a["result"]) for a in attempts)))

    # -- one attempt ----------------------------------------------------------------------------

    def _attempt(self, base: BaseBackup, target: RecoveryTarget) -> SandboxServer:
        self._prepare()
        self._unpack(base)
        socket_dir, private = self._socket_dir()
        port = free_port()
        argv = self._server_argv(port, socket_dir, target, self._timeline(base, target))
        with open(self.log_path, "wb") as log:  # each attempt's log alone: its tail says why it ended
            try:
                process = subprocess.Popen(self.run_as() + argv, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, env=self.env(), cwd=self.sandbox,
                                           close_fds=True, start_new_session=True)
            except OSError as exc:
                raise PitrError("cannot start postgres: %s" % exc) from None
        server = SandboxServer(self.data_dir, port, socket_dir, process, self.log_path, base, target, self.run_as(),
                               self.env(), self.bindir, private_socket_dir=private)
        try:
            self._wait(server)
        except BaseException:
            server.stop()
            raise
        return server

    def _timeline(self, base: BaseBackup, target: RecoveryTarget) -> str:
        if target.timeline == "auto":
            if self.store is None:
                return "latest"
            try:
                return str(recovery_timeline(self.store, base))
            except StoreError as exc:
                raise PitrError(str(exc)) from None
        return target.timeline

    def run_as(self) -> list[str]:
        if not self.as_root:
            return []
        return ["setpriv", "--reuid=%s" % self.os_user, "--regid=%s" % self.os_user, "--init-groups", "--"]

    def env(self) -> dict[str, str]:
        # PATH fixed: restore_command's python3 must be the system's, not an operator's shim.
        return {"PATH": DEFAULT_PATH, "HOME": self.sandbox, "LC_ALL": "C", "PGTZ": "UTC"}

    def _prepare(self) -> None:
        """An empty data directory and the configuration, owned by the cluster's OS user."""
        if os.path.isdir(self.data_dir) and os.listdir(self.data_dir):
            if not self.attempted:
                raise PitrError("%s is not empty: restores go into a fresh sandbox only" % self.data_dir)
            shutil.rmtree(self.data_dir)  # this restore's earlier attempt, from another base backup
        self.attempted = True
        for path in (self.sandbox, self.data_dir, self.conf_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        for name, text in (("postgresql.conf", "# restored by restorable.backup: settings are on the command line\n"),
                           ("pg_hba.conf", "local all all trust\n"), ("pg_ident.conf", "")):
            with open(os.path.join(self.conf_dir, name), "w", encoding="utf-8") as handle:
                handle.write(text)
        if self.as_root:
            user = self._user()
            chown_tree(self.conf_dir, user.pw_uid, user.pw_gid)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            os.chmod(self.sandbox, 0o711)
            self._reachable(self.sandbox, user)

    def _user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            raise PitrError("no OS user %s to run the restored server as" % self.os_user) from None

    def _reachable(self, path: str, user: pwd.struct_passwd) -> None:
        parent = path
        while parent != os.path.dirname(parent):
            parent = os.path.dirname(parent)
            if not traversable_by(parent, user):
                raise PitrError("user %s cannot enter %s: the sandbox's parents must be traversable (o+x)" % (
                    self.os_user, parent))

    def _unpack(self, base: BaseBackup) -> None:
        try:
            unpack = self.run_as() + ["tar", "-x", "-f", "-", "-C", self.data_dir]
            result = self.repo.pipe_file(base.id, "/" + PG_BASE_TAR, unpack, self.env(), timeout=self.timeout)
        except RepositoryError as exc:
            raise PitrError("base backup %s: %s" % (base.short_id, exc.message)) from None
        if not result.ok:
            raise PitrError("unpacking base backup %s: %s" % (base.short_id, describe_failure(result)))
        for name in ("postmaster.pid", "postmaster.opts", "standby.signal"):
            if os.path.lexists(os.path.join(self.data_dir, name)):
                os.unlink(os.path.join(self.data_dir, name))
        signal_file = os.path.join(self.data_dir, "recovery.signal")
        with open(signal_file, "w", encoding="utf-8"):
            pass
        for directory in (os.path.join(self.data_dir, "pg_wal"), os.path.join(self.data_dir, "pg_wal", "archive_status")):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        if self.as_root:
            user = self._user()
            chown_tree(self.data_dir, user.pw_uid, user.pw_gid)

    def _socket_dir(self) -> tuple[str, bool]:
        """(directory, made apart): the sandbox's own unless a socket path there would be too long."""
        path = os.path.join(self.sandbox, "run")
        private = len(path) + 1 + SOCKET_NAME_MAX > SOCKET_PATH_MAX
        if private:
            path = tempfile.mkdtemp(prefix="restorable-pitr-")
        os.makedirs(path, mode=0o700, exist_ok=True)
        if self.as_root:
            user = self._user()
            os.chown(path, user.pw_uid, user.pw_gid)
        return path, private

    def _server_argv(self, port: int, socket_dir: str, target: RecoveryTarget, timeline: str) -> list[str]:
        settings: list[tuple[str, Any]] = [
            ("config_file", os.path.join(self.conf_dir, "postgresql.conf")),
            ("hba_file", os.path.join(self.conf_dir, "pg_hba.conf")),
            ("ident_file", os.path.join(self.conf_dir, "pg_ident.conf")),
            ("port", port), ("listen_addresses", ""), ("unix_socket_directories", socket_dir),
            ("archive_mode", "off"), ("hot_standby", "off"), ("logging_collector", "off"),
            ("restore_command", self.restore_command)] + target.settings(timeline)
        if not self.durable:
            settings += [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")]
        settings += sorted(self.settings.items())
        argv = [os.path.join(self.bindir, "postgres"), "-D", self.data_dir]
        for name, value in settings:
            argv += ["-c", "%s=%s" % (name, value)]
        return argv

    def _wait(self, server: SandboxServer) -> None:
        """Until recovery has ended and the server accepts connections; TargetNotReached, PitrError."""
        deadline = time.monotonic() + self.timeout
        while True:
            if server.process.poll() is not None:
                tail = self._log_tail()
                if NOT_REACHED in tail:
                    raise TargetNotReached("the archive after base backup %s ends before %s" % (
                        server.base.short_id, server.target.describe()))
                raise PitrError("the restored server stopped (exit code %s): %s" % (server.process.returncode, tail))
            state = self._state(server)
            if state is not None and not state["in_recovery"]:
                server.replay_lsn = state["replay_lsn"] or ""
                server.timeline = int(state["wal"][:8], 16)
                return
            if time.monotonic() > deadline:
                raise PitrError("recovery did not end within %.0fs: %s" % (self.timeout, self._log_tail()))
            time.sleep(0.2)

    @staticmethod
    def _state(server: SandboxServer) -> dict[str, Any] | None:
        try:
            return json.loads(server.psql(STATE_SQL, timeout=10))
        except (PitrError, ValueError):
            return None  # still recovering (hot_standby is off), or starting

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                lines = [line.strip() for line in handle.read().splitlines() if line.strip()]
        except OSError:
            return "no server log"
        important = [line for line in lines if "FATAL" in line or "PANIC" in line or "ERROR" in line]
        return " / ".join((important or lines)[-LOG_TAIL_LINES:])


def restore(repo: Repository, bases: Sequence[BaseBackup], target: RecoveryTarget, sandbox: str, restore_command: str,
            protected: Sequence[str] = (), store: Store | None = None, settings: dict[str, str] | None = None,
            durable: bool = True, timeout: float = DEFAULT_TIMEOUT) -> SandboxServer:
    """A point-in-time restore into sandbox, running when it returns (see the module docstring).
    store: the dataset's WAL store, for the timeline of target.timeline auto."""
    return Restorer(repo, restore_command, sandbox, protected, settings, durable, timeout, store).run(bases, target)
