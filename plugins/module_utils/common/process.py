# -*- coding: utf-8 -*-
# Private to restorable.backup: running engine binaries and hooks.
# Commands are argument lists (never a shell). Secrets reach children through files or the
# environment, never argv, because argv is world-readable in /proc/PID/cmdline.
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Inherited from the caller; everything else (RESTIC_*, AWS_*, ...) is dropped so a stray
# variable in an operator's shell can never change which repository or key is used.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
                  "USER", "LOGNAME", "XDG_CACHE_HOME", "SSH_AUTH_SOCK")
_ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
OUTPUT_TAIL = 64 * 1024


@dataclass
class CommandResult:
    """What a finished command did; output is decoded text."""

    argv: list[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def stderr_tail(self, lines: int = 5) -> str:
        text = [line for line in self.stderr.splitlines() if line.strip()]
        return "\n".join(text[-lines:])


class SecretFileError(Exception):
    """A secret file is missing, unreadable or too open."""


class Redactor:
    """Replaces known secret values in text that may end up in logs or status files."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        # Very short values would blank out ordinary words; they are not secrets anyway.
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for children: a whitelist of the caller's plus extra."""
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    if extra:
        env.update(extra)
    return env


def check_private_file(path: str, what: str) -> None:
    """Refuse a secret file that group or others may read."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SecretFileError("%s %s does not exist" % (what, path)) from None
    except OSError as exc:
        raise SecretFileError("%s %s cannot be read: %s" % (what, path, exc.strerror)) from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError("%s %s is not a regular file" % (what, path))
    if info.st_mode & 0o077:
        raise SecretFileError("%s %s is readable by group or others (mode %04o); it must be 0600"
                              % (what, path, stat.S_IMODE(info.st_mode)))


def read_secret_file(path: str, what: str = "secret file") -> str:
    """The stripped content of a private (0600) file."""
    check_private_file(path, what)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise SecretFileError("%s %s cannot be read: %s" % (what, path, exc.strerror)) from None


def read_env_file(path: str, what: str = "environment file") -> dict[str, str]:
    """KEY=VALUE lines of a private file ('#' comments, no quoting: the value is the rest)."""
    check_private_file(path, what)
    values: dict[str, str] = {}
    try:
        with open(path, "r", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise SecretFileError("%s %s cannot be read: %s" % (what, path, exc.strerror)) from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not _ENV_NAME_RE.match(name):
            # Never echo the line: it may hold a secret.
            raise SecretFileError("%s %s line %d is not NAME=VALUE" % (what, path, number))
        values[name] = value
    return values


def run_command(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float | None = None,
                stop_signal: int = signal.SIGTERM, stop_grace: float = 10.0, cwd: str | None = None) -> CommandResult:
    """Run argv without a shell and wait for it.

    The child gets its own process group so a timeout stops everything it started: first
    stop_signal (SIGINT lets restic clean up), then SIGKILL after stop_grace seconds.
    A missing program is returned as exit code 127, like a shell would.
    """
    argv = [str(arg) for arg in argv]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env) if env is not None else base_env(), cwd=cwd,
                                start_new_session=True, close_fds=True)
    except FileNotFoundError:
        return CommandResult(argv, 127, stderr="command not found: %s" % argv[0])
    except PermissionError:
        return CommandResult(argv, 126, stderr="permission denied: %s" % argv[0])
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stdout, stderr = _stop(proc, stop_signal, stop_grace)
    except BaseException:
        # Interrupted ourselves (KeyboardInterrupt, SystemExit): never leave the child behind.
        _stop(proc, stop_signal, stop_grace)
        raise
    return CommandResult(argv, proc.returncode, _decode(stdout), _decode(stderr, OUTPUT_TAIL),
                         time.monotonic() - started, timed_out)


def run_pipeline(producer: Sequence[str], producer_env: Mapping[str, str], consumer: Sequence[str],
                 consumer_env: Mapping[str, str], timeout: float | None = None, stop_signal: int = signal.SIGTERM,
                 stop_grace: float = 10.0) -> tuple[CommandResult, CommandResult]:
    """producer | consumer without a shell and without a temporary copy of the data; both results.

    A timeout stops both process groups (the consumer with stop_signal first, so restic can
    remove its lock). The producer's exit status decides whether the data that reached the
    consumer is whole; its stderr goes to an unnamed temporary file so it can never block.
    """
    producer, consumer = [str(a) for a in producer], [str(a) for a in consumer]
    started = time.monotonic()
    with tempfile.TemporaryFile() as producer_stderr:
        try:
            source = subprocess.Popen(producer, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=producer_stderr,
                                      env=dict(producer_env), start_new_session=True, close_fds=True)
        except OSError as exc:
            return (CommandResult(producer, 127, stderr="cannot run %s: %s" % (producer[0], exc.strerror)),
                    CommandResult(consumer, 1, stderr="not started"))
        try:
            sink = subprocess.Popen(consumer, stdin=source.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=dict(consumer_env), start_new_session=True, close_fds=True)
        except OSError as exc:
            _signal_group(source, signal.SIGKILL)
            source.wait()
            return (CommandResult(producer, -9, stderr="stopped: the consumer did not start"),
                    CommandResult(consumer, 127, stderr="cannot run %s: %s" % (consumer[0], exc.strerror)))
        source.stdout.close()  # the consumer holds the only read end: if it dies, the producer gets SIGPIPE
        timed_out = False
        try:
            stdout, stderr = sink.communicate(timeout=timeout)
            source.wait(timeout=stop_grace)
        except subprocess.TimeoutExpired:
            timed_out = True
            stdout, stderr = _stop(sink, stop_signal, stop_grace)
            _signal_group(source, signal.SIGKILL)
            source.wait()
        except BaseException:
            _stop(sink, stop_signal, stop_grace)
            _signal_group(source, signal.SIGKILL)
            source.wait()
            raise
        producer_stderr.seek(0)
        source_err = producer_stderr.read()
    elapsed = time.monotonic() - started
    return (CommandResult(producer, source.returncode, "", _decode(source_err, OUTPUT_TAIL), elapsed, timed_out),
            CommandResult(consumer, sink.returncode, _decode(stdout), _decode(stderr, OUTPUT_TAIL), elapsed, timed_out))


def stop_server(process: subprocess.Popen, stop_signal: int, timeout: float) -> None:
    """Stop a server we started, by its PID: stop_signal, then SIGKILL when it outlives timeout."""
    if process.poll() is not None:
        return
    try:
        os.kill(process.pid, stop_signal)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout)
    except ProcessLookupError:
        pass


def wait_or_kill(process: subprocess.Popen, timeout: float) -> int:
    """The exit code of a child whose input is done; SIGKILL (code -9) when it outlives timeout."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return -9


def _stop(proc: subprocess.Popen, stop_signal: int, grace: float) -> tuple[bytes, bytes]:
    _signal_group(proc, stop_signal)
    try:
        return proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        return proc.communicate()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _decode(data: bytes | None, tail: int | None = None) -> str:
    if not data:
        return ""
    # Only stderr is cut to its tail: stdout carries JSON that must stay whole.
    if tail is not None and len(data) > tail:
        data = data[-tail:]
    return data.decode("utf-8", "replace")


def ionice_prefix(klass: str | None, level: int | None, ionice: str | None) -> list[str]:
    """`ionice -c N [-n L]` for an I/O class, or [] when no class or no ionice binary."""
    if not klass or not ionice:
        return []
    number = {"realtime": "1", "best-effort": "2", "idle": "3"}[klass]
    prefix = [ionice, "-c", number]
    if klass != "idle" and level is not None:
        prefix += ["-n", str(level)]
    return prefix
