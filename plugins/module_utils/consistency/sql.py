# -*- coding: utf-8 -*-
# Private to restorable.backup: SQL client sessions and private files the database profiles share.
"""An interactive SQL client driven statement by statement, and 0600 files for client secrets.

PostgreSQL (``psql``) and MariaDB (``mariadb``) profiles hold a session open across a quiesce
window (backup mode, a global read lock) and write their credentials into private files that
the clients read, so secrets never reach a command line.
"""
from __future__ import annotations

import collections
import os
import select
import signal
import subprocess
import threading
import time
from typing import Any, Callable

from .base import QuiesceFailed

STDERR_TAIL = 16 * 1024
_EOF = object()  # what _read_line returns at the end of the client's output


class SqlSession:
    """One interactive SQL client (psql, mariadb) driven through pipes, statement by statement.

    ``query(sql)`` sends the statements followed by a marker statement and returns the output
    lines before the marker: when the marker comes back, everything before it has run. The client
    runs in a session of its own so signals sent to the runner's process group do not reach it;
    its stderr is drained by a thread (its tail is kept for messages).
    """

    def __init__(self, argv: list[str], env: dict[str, str], what: str,
                 marker_sql: Callable[[str], str], redact: Callable[[str], str] = lambda text: text) -> None:
        self.argv = list(argv)
        self.env = env
        self.what = what
        self.marker_sql = marker_sql
        self.redact = redact
        self.proc: subprocess.Popen | None = None
        self._buffer = b""
        self._stderr: collections.deque = collections.deque()
        self._stderr_size = 0
        self._stderr_thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=self.env, close_fds=True,
                                         start_new_session=True, cwd="/")
        except OSError as exc:
            raise QuiesceFailed("cannot start %s: %s" % (self.what, exc)) from exc
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()

    def _drain_stderr(self) -> None:
        fd = self.proc.stderr.fileno()  # started with stderr=PIPE
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return
            if not data:
                return
            self._stderr.append(data)
            self._stderr_size += len(data)
            while self._stderr_size > STDERR_TAIL and len(self._stderr) > 1:
                self._stderr_size -= len(self._stderr.popleft())

    def stderr_tail(self, lines: int = 5) -> str:
        text = b"".join(self._stderr).decode("utf-8", "replace")
        kept = [line.strip() for line in text.splitlines() if line.strip()]
        return self.redact(" / ".join(kept[-lines:]))

    def query(self, sql: str, marker: str, timeout: float) -> list[str]:
        """Run sql, then the marker statement; the output lines before the marker."""
        if not self.alive():
            raise QuiesceFailed("%s is not running%s" % (self.what, self.why()))
        try:
            self.proc.stdin.write((sql.rstrip() + "\n" + self.marker_sql(marker) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise QuiesceFailed("%s ended%s" % (self.what, self.why(exc))) from None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self._read_line(deadline)
            if line is None:
                raise QuiesceFailed("%s did not answer within %gs" % (self.what, timeout))
            if line is _EOF:
                raise QuiesceFailed("%s ended%s" % (self.what, self.why()))
            if line.strip() == marker:
                return lines
            lines.append(line)

    def _read_line(self, deadline: float) -> Any:
        """The next line (str); None when the deadline passed, _EOF when the client closed its output."""
        fd = self.proc.stdout.fileno()  # started with stdout=PIPE
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _unused1, _unused2 = select.select([fd], [], [], remaining)
            if not readable:
                continue
            data = os.read(fd, 65536)
            if not data:
                return _EOF
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def why(self, exc: BaseException | None = None) -> str:
        if self.proc is not None:
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1)
        parts = []
        if self.proc is not None and self.proc.returncode is not None:
            code = self.proc.returncode
            parts.append("killed by signal %d" % -code if code < 0 else "exit code %d" % code)
        tail = self.stderr_tail()
        if tail:
            parts.append(tail)
        elif exc is not None:
            parts.append(str(exc))
        return (": " + "; ".join(parts)) if parts else ""

    def close(self, timeout: float = 10.0) -> int | None:
        """End the client: close its stdin (it exits at end of input), kill it if it does not."""
        proc = self.proc
        if proc is None:
            return None
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        for stream in (proc.stdout,):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=1)
        return proc.returncode

    def kill(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def private_file(directory: str, name: str, text: str) -> str:
    """Write a 0600 file (created exclusively, never through an existing one); its path."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
