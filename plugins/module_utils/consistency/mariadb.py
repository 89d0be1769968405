# -*- coding: utf-8 -*-
# Private to restorable.backup: the MariaDB quiesce profile.
"""MariaDB: a mariabackup stream, or a global read lock held around a snapshot.

``streams()`` (file-level tiers, ``mariadb.mode: mariabackup``, the default): one
``mariabackup --backup --stream=xbstream`` whose stdout is a hot physical backup of the whole
server (InnoDB copied while it runs, the redo log written meanwhile included; the short
``BACKUP STAGE BLOCK_COMMIT`` at the end makes non-InnoDB tables and the binlog position
consistent). Restore: ``mbstream -x -C DIR``, ``mariabackup --prepare --target-dir=DIR``, start
``mariadbd --datadir=DIR``. ``--target-dir`` is not required with ``--stream`` (mariabackup then
keeps its temporary redo copy in the server's tmpdir); the profile still gives it a private,
empty directory under the staging directory so that nothing lands in the caller's working
directory, and ``cleanup()`` removes it.

``frozen(snapshot)`` (snapshot tiers, any mode): a live ``mariadb`` client session runs
``FLUSH TABLES WITH READ LOCK`` and then selects a marker: when the marker comes back the lock is
held. ``snapshot()`` is taken, then the session runs ``UNLOCK TABLES`` and exits. The watchdog
is armed with the client's PID before the lock is requested: killing the client ends its
connection, which releases the lock. While locked, ``@@global.gtid_binlog_pos`` is recorded in
``FreezeRecord.label`` (JSON; None when the binary log is off or empty): the binlog position of
the snapshot, for point-in-time recovery.

Credentials never reach argv: user, password and socket go into a 0600 option file in a private
directory under the staging directory, passed with ``--defaults-extra-file`` (the first
option, as the clients demand); ``cleanup()`` removes it. Without a password the clients connect
over the socket as the OS user running them (unix_socket authentication).
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable, TypeVar

from .base import FreezeRecord, FreezingProfile, QuiesceFailed, StreamingProfile, StreamSource
from .sql import SqlSession, private_file
from ..common.process import base_env

T = TypeVar("T")

MODES = ("mariabackup", "read_lock")
LOCKED_MARKER = "__RESTORABLE_LOCKED__"
STATUS_MARKER = "__RESTORABLE_STATUS__"
UNLOCKED_MARKER = "__RESTORABLE_UNLOCKED__"


def option_value(value: str) -> str:
    """A value of a MariaDB option file, double-quoted with backslash escapes."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise QuiesceFailed("a MariaDB option value holds a line break")
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def option_file_text(user: str | None, password: str | None, socket: str | None) -> str:
    """The [client] group of a defaults-extra-file (mariadb and mariabackup both read it)."""
    lines = ["[client]"]
    if user:
        lines.append("user=%s" % option_value(user))
    if password:
        lines.append("password=%s" % option_value(password))
    if socket:
        lines.append("socket=%s" % option_value(socket))
    return "\n".join(lines) + "\n"


def marker_select(marker: str) -> str:
    return "SELECT '%s';" % marker


def parse_gtid_position(lines: list[str]) -> dict[str, str]:
    """`SELECT @@global.gtid_binlog_pos` in batch mode: the GTID position, if binlogging wrote any."""
    for line in lines:
        value = line.strip()
        if value and value != "NULL":
            return {"gtid_binlog_pos": value}
    return {}


class MariaDBProfile(StreamingProfile, FreezingProfile):
    """type: mariadb (see the module docstring)."""

    kind = "mariadb"

    def __init__(self, config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> None:
        super().__init__(config, staging_dir, status_dir)
        settings = dict(config.get("mariadb") or {})
        self.mode = settings.get("mode") or "mariabackup"
        if self.mode not in MODES:
            raise QuiesceFailed("mariadb.mode must be one of %s, not %r" % (", ".join(MODES), self.mode))
        self.socket = settings.get("socket") or None
        self.user = settings.get("user") or None
        self.password = settings.get("password") or None
        self.redactor.add(self.password)
        self._private_dir: str | None = None
        self._session: SqlSession | None = None
        self._locked = False
        self._status: dict[str, str] = {}

    # -- private files ------------------------------------------------------------------------
    def private_dir(self) -> str:
        """A 0700 directory under the staging directory for the option file and mariabackup."""
        if self._private_dir is None or not os.path.isdir(self._private_dir):
            os.makedirs(self.staging_dir, mode=0o700, exist_ok=True)
            self._private_dir = tempfile.mkdtemp(prefix=".mariadb-", dir=self.staging_dir)
            private_file(self._private_dir, "client.cnf", option_file_text(self.user, self.password, self.socket))
            atexit.register(shutil.rmtree, self._private_dir, True)
        return self._private_dir

    def defaults_option(self) -> str:
        return "--defaults-extra-file=%s" % os.path.join(self.private_dir(), "client.cnf")

    def cleanup(self) -> None:
        """Remove the option file and mariabackup's directory; call it after the streams ran."""
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    def client_env(self) -> dict[str, str]:
        # MYSQL_PWD and friends from the caller never reach the clients (base_env whitelists).
        return base_env()

    def client_argv(self) -> list[str]:
        return ["mariadb", self.defaults_option(), "--batch", "--skip-column-names", "--unbuffered",
                "--connect-timeout=10"]

    def mariabackup_argv(self) -> list[str]:
        target = os.path.join(self.private_dir(), "mariabackup")
        os.makedirs(target, mode=0o700, exist_ok=True)
        return ["mariabackup", self.defaults_option(), "--backup", "--stream=xbstream", "--target-dir=%s" % target]

    # -- file-level tiers ---------------------------------------------------------------------
    def streams(self) -> list[StreamSource]:
        if self.mode != "mariabackup":
            raise QuiesceFailed("mariadb.mode read_lock works around snapshots (cdp, array tiers); "
                                "file-level tiers need mode mariabackup")
        return [StreamSource("mariadb/backup.xbstream", self.mariabackup_argv(), self.client_env())]

    # -- snapshot tiers -----------------------------------------------------------------------
    def frozen(self, snapshot: Callable[[], T]) -> tuple[T, FreezeRecord]:
        self._status = {}
        try:
            result, record = super().frozen(snapshot)
        finally:
            if self._session is not None:
                self._session.kill()
                self._session = None
            self.cleanup()
        record.label = json.dumps(self._status, sort_keys=True) if self._status else None
        return result, record

    def quiesce(self, watchdog) -> str | None:
        session = SqlSession(self.client_argv(), self.client_env(), "the MariaDB lock session (mariadb)",
                             marker_select, self.redactor)
        self._session = session
        session.start()
        # Before the lock: the watchdog releases it by killing the session.
        watchdog.add_kill(session.pid)
        self.window_started = time.monotonic()  # writers may block from here on
        # A long statement would keep FLUSH TABLES waiting while writers queue behind it:
        # give up after max_freeze instead (the watchdog would end it anyway).
        wait = max(1, int(self.max_freeze))
        session.query("SET SESSION lock_wait_timeout = %d;\nFLUSH TABLES WITH READ LOCK;" % wait,
                      LOCKED_MARKER, self.max_freeze + 5)
        self._locked = True
        # Needs no privilege (SHOW MASTER STATUS would, and an error ends a batch session).
        self._status = parse_gtid_position(session.query("SELECT @@global.gtid_binlog_pos;", STATUS_MARKER, 10))
        return None

    def release(self) -> None:
        session = self._session
        if session is None or session.proc is None:
            return
        try:
            if self._locked:
                if not session.alive():
                    raise QuiesceFailed("the lock session ended before UNLOCK TABLES%s (killed by the watchdog "
                                        "after max_freeze, or the server went away): the lock did not last the "
                                        "whole snapshot" % session.why())
                session.query("UNLOCK TABLES;", UNLOCKED_MARKER, 30)
        finally:
            self._locked = False
            session.close()
            self._session = None
