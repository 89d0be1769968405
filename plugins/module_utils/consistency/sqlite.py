# -*- coding: utf-8 -*-
# Private to restorable.backup: the SQLite quiesce profile.
"""SQLite databases, consistent while applications keep writing.

File-level tiers: ``prepare_files()`` copies each database with the online backup API
(``sqlite3.Connection.backup``, in one step: the copy is a snapshot of one committed state,
whatever the writers do), switches the copy to a single self-contained file
(``journal_mode=DELETE``), proves it with ``PRAGMA integrity_check`` and returns the copies' paths
under ``STAGING/sqlite/<original path>``. ``cleanup()`` removes them.

Snapshot tiers: ``frozen()`` holds ``BEGIN IMMEDIATE`` on every database in a helper process
while the snapshot is taken, so no write transaction is half-way; the watchdog kills that
process (which releases the locks) if the runner dies or ``max_freeze`` passes, and the helper
itself lets go when the runner's pipe closes.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from typing import Any

from .base import FreezeRecord, FreezingProfile, QuiesceFailed, StreamingProfile, utc_now
from .watchdog import Watchdog

BUSY_TIMEOUT = 30.0
LOCK_WAIT = 30.0

# The lock holder: BEGIN IMMEDIATE on each database, "locked", then hold until stdin closes.
_LOCK_HOLDER = r"""
import sqlite3, sys
connections = []
try:
    for path in sys.argv[2:]:
        connection = sqlite3.connect(path, timeout=float(sys.argv[1]), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connections.append(connection)
except sqlite3.Error as exc:
    sys.stderr.write("%s: %s\n" % (path, exc))
    sys.exit(1)
sys.stdout.write("locked\n")
sys.stdout.flush()
sys.stdin.read()
for connection in connections:
    connection.rollback()
    connection.close()
"""


class SQLiteProfile(StreamingProfile, FreezingProfile):
    """type: sqlite — online backup API copies (file level), write locks (snapshots)."""

    kind = "sqlite"

    def __init__(self, config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> None:
        super().__init__(config, staging_dir, status_dir)
        databases = (config.get("sqlite") or {}).get("databases") or []
        if not databases:
            raise QuiesceFailed("sqlite profile without databases")
        self.databases = [os.path.normpath(str(path)) for path in databases]
        self.root = os.path.join(staging_dir, "sqlite")
        self.records: list[FreezeRecord] = []
        self._made: list[str] = []
        self._holder: subprocess.Popen | None = None

    # -- file level -----------------------------------------------------------------------------
    def copy_path(self, database: str) -> str:
        """Where the copy of database goes: the original path under STAGING/sqlite."""
        return os.path.join(self.root, database.lstrip("/"))

    def prepare_files(self) -> list[str]:
        paths = []
        for database in self.databases:
            paths.append(self._copy(database))
        return paths

    def _copy(self, database: str) -> str:
        if not os.path.isabs(database):
            raise QuiesceFailed("sqlite: %s is not an absolute path" % database)
        if not os.path.isfile(database):
            raise QuiesceFailed("sqlite: database %s does not exist" % database)
        target = self.copy_path(database)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)  # copies hold the application's data
        for suffix in ("", "-wal", "-shm", "-journal"):
            if os.path.lexists(target + suffix):
                os.unlink(target + suffix)
        record = FreezeRecord(profile=self.kind, started=utc_now(), label=database)
        began = time.monotonic()
        self._made.append(target)
        old_umask = os.umask(0o077)
        source = destination = None
        try:
            source = sqlite3.connect("file:%s?mode=ro" % _uri_path(database), uri=True, timeout=BUSY_TIMEOUT)
            destination = sqlite3.connect(target)
            source.backup(destination)  # pages=-1: one step, one committed state
            destination.execute("PRAGMA journal_mode=DELETE").fetchall()
            check = [row[0] for row in destination.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.Error as exc:
            raise QuiesceFailed("sqlite: cannot copy %s: %s" % (database, exc)) from exc
        finally:
            os.umask(old_umask)
            for connection in (source, destination):
                if connection is not None:
                    connection.close()
        if check != ["ok"]:
            raise QuiesceFailed("sqlite: the copy of %s fails integrity_check: %s" % (database, "; ".join(check)[:500]))
        record.seconds = round(time.monotonic() - began, 6)
        record.ended = utc_now()
        self.records.append(record)
        return target

    def cleanup(self) -> None:
        for target in self._made:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(target + suffix)
                except FileNotFoundError:
                    pass
        self._made = []
        if os.path.isdir(self.root):
            shutil.rmtree(self.root, ignore_errors=True)

    # -- snapshots ------------------------------------------------------------------------------
    def quiesce(self, watchdog: Watchdog) -> str | None:
        for database in self.databases:
            if not os.path.isfile(database):
                raise QuiesceFailed("sqlite: database %s does not exist" % database)
        wait = min(LOCK_WAIT, self.max_freeze)
        self._holder = subprocess.Popen(
            [sys.executable, "-I", "-c", _LOCK_HOLDER, str(wait)] + self.databases,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
            start_new_session=True, close_fds=True)
        watchdog.add_kill(self._holder.pid)
        # "locked", or EOF when it failed (bounded: its busy timeout, else the watchdog kills it)
        line = self._holder.stdout.readline() if self._holder.stdout is not None else b""
        if line.strip() != b"locked":
            self._holder.wait()
            error = self._holder.stderr.read().decode("utf-8", "replace").strip() if self._holder.stderr else ""
            raise QuiesceFailed("sqlite: cannot lock for the snapshot: %s" % (error or "exit %s" % self._holder.returncode))
        return None

    def release(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        try:
            if holder.stdin is not None:
                holder.stdin.close()
        except OSError:
            pass
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(timeout=10)
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()


def _uri_path(path: str) -> str:
    """path for a file: URI (%, ? and # would end or break it)."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
