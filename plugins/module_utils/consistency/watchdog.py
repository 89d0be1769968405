# -*- coding: utf-8 -*-
# Private to restorable.backup: the release watchdog of quiesce profiles.
"""A process that releases a freeze or a lock when the runner cannot.

The runner starts a :class:`Watchdog` BEFORE it freezes a filesystem or takes a lock, registers
the release actions (argv lists such as ``["fsfreeze", "-u", "/srv/data"]``, and process IDs to
SIGKILL, such as the client session that holds ``FLUSH TABLES WITH READ LOCK``), then quiesces.
The watchdog performs the registered actions, last registered first, when

* the deadline (``max_freeze`` after start) passes, or
* the runner dies: its control pipe reaches end of file without a ``disarm`` message
  (SIGKILL, OOM kill, crash), or
* the runner asks it to (``release_now()``, used when the runner's own release failed).

After a normal release the runner calls ``disarm()`` and the watchdog exits doing nothing.

It is a separate process in a session of its own (not a thread: a thread dies with the runner),
ignores SIGTERM/SIGINT/SIGHUP (so stopping the runner's terminal or unit does not stop it first),
works in ``/`` (so it never holds a mount busy), and bounds every action with a timeout: a
command that does not finish is killed and abandoned, so the watchdog always ends. Its log lines
are written when it is armed and after it acted or was disarmed, never while a freeze may be in
force: a write to a frozen filesystem would block it.

This module uses only the standard library and no relative imports: the child is started as
``sys.executable -c <this module's source>``, which works from an AnsiballZ zip, a standalone copy
of the package or a checkout alike. ``python3 -m <package>.consistency.watchdog CONFIG_JSON``
starts the same child by hand (commands on stdin, one JSON object a line).

Limit: the watchdog shares the runner's control group. A service manager that SIGKILLs the whole
group (systemd's final kill after TimeoutStopSec, an OOM kill of the unit) kills both; a unit that
freezes should therefore stop with KillMode=mixed and a TimeoutStopSec longer than max_freeze,
so that SIGTERM reaches the runner alone first and it releases before anything is killed.

Protocol (JSON lines): runner -> watchdog on its stdin ``{"op": "command", "argv": [...],
"env": {...}, "timeout": S}``,
``{"op": "kill", "pid": N, "start": TICKS}``, ``{"op": "disarm"}``, ``{"op": "release"}``;
watchdog -> runner on its stdout ``{"event": "ready"}``, ``{"event": "ok"}`` (after each
registration), ``{"event": "disarmed"}`` and ``{"event": "fired", "reason": ..., "actions": [...]}``.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

DEFAULT_ACTION_TIMEOUT = 10.0
START_TIMEOUT = 15.0
REPLY_TIMEOUT = 10.0
KILL_GRACE = 5.0
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")


class WatchdogError(Exception):
    """The watchdog could not be started or did not answer: do not quiesce without it."""


def _process_start_ticks(pid: int) -> int | None:
    """The start time of a process (clock ticks since boot), to tell a PID from its reuse."""
    try:
        with open("/proc/%d/stat" % pid, "r", encoding="utf-8", errors="replace") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _run_action_command(argv: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run one release command; never wait longer than timeout + KILL_GRACE."""
    started = time.monotonic()
    outcome: dict = {"argv": argv}
    child_env = dict(os.environ)
    child_env.update(env or {})
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=child_env,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    except OSError as exc:
        outcome.update(returncode=127, output=str(exc), seconds=0.0)
        return outcome
    try:
        output, _unused = proc.communicate(timeout=timeout)
        outcome["returncode"] = proc.returncode
    except subprocess.TimeoutExpired:
        outcome["timed_out"] = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            output, _unused = proc.communicate(timeout=KILL_GRACE)
            outcome["returncode"] = proc.returncode
        except subprocess.TimeoutExpired:
            # Unkillable (D state): abandon it rather than hang.
            output = b""
            outcome["returncode"] = None
            outcome["abandoned"] = True
    outcome["output"] = (output or b"").decode("utf-8", "replace").strip()[-500:]
    outcome["seconds"] = round(time.monotonic() - started, 3)
    return outcome


def _run_action_kill(pid: int, start: int | None) -> dict:
    outcome: dict = {"kill": pid}
    current = _process_start_ticks(pid)
    if current is None:
        outcome["result"] = "already gone"
    elif start is not None and current != start:
        outcome["result"] = "pid reused by another process: not killed"
    else:
        try:
            os.kill(pid, signal.SIGKILL)
            outcome["result"] = "killed"
        except ProcessLookupError:
            outcome["result"] = "already gone"
        except OSError as exc:
            outcome["result"] = "kill failed: %s" % exc
    return outcome


def child_main(config_json: str) -> int:
    """The watchdog process itself: read commands on stdin until disarm, EOF or the deadline."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    config = json.loads(config_json)
    deadline = float(config["deadline"])  # time.monotonic() value: CLOCK_MONOTONIC is system-wide
    action_timeout = float(config.get("action_timeout", DEFAULT_ACTION_TIMEOUT))
    log_path = config.get("log")
    name = config.get("name") or "watchdog"
    pending_log: list[str] = []
    try:
        os.chdir("/")
    except OSError:
        pass

    def log(text: str) -> None:
        pending_log.append("%s %s[%d] %s\n" % (_utc_now(), name, os.getpid(), text))

    def flush_log() -> None:
        if log_path and pending_log:
            try:
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.writelines(pending_log)
            except OSError:
                pass
        pending_log.clear()

    def reply(event: dict) -> None:
        try:
            os.write(1, (json.dumps(event) + "\n").encode("utf-8"))
        except OSError:
            pass  # the runner is gone: nobody listens

    log("armed by pid %d, deadline in %.1fs" % (os.getppid(), deadline - time.monotonic()))
    flush_log()  # before any freeze: writing later could block on a frozen filesystem
    reply({"event": "ready", "pid": os.getpid()})
    actions: list[dict] = []
    buffered = b""
    reason = None
    while reason is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reason = "deadline of %.1fs passed" % float(config.get("max_seconds", 0))
            break
        try:
            readable, _unused1, _unused2 = select.select([0], [], [], remaining)
        except InterruptedError:
            continue
        if not readable:
            continue
        try:
            data = os.read(0, 65536)
        except OSError:
            data = b""
        if not data:
            reason = "runner gone: control pipe closed without disarm"
            break
        buffered += data
        while b"\n" in buffered and reason is None:
            line, buffered = buffered.split(b"\n", 1)
            try:
                message = json.loads(line)
            except ValueError:
                continue
            operation = message.get("op")
            if operation == "command":
                actions.append({"argv": [str(arg) for arg in message["argv"]],
                                "env": {str(k): str(v) for k, v in (message.get("env") or {}).items()},
                                "timeout": float(message.get("timeout") or action_timeout)})
                log("will run %s" % " ".join(actions[-1]["argv"]))
                reply({"event": "ok"})
            elif operation == "kill":
                actions.append({"kill": int(message["pid"]), "start": message.get("start")})
                log("will kill pid %d" % int(message["pid"]))
                reply({"event": "ok"})
            elif operation == "disarm":
                log("disarmed: released by the runner")
                flush_log()
                reply({"event": "disarmed"})
                return 0
            elif operation == "release":
                reason = "release requested by the runner"
    log("firing: %s" % reason)
    results = []
    for action in reversed(actions):
        if "argv" in action:
            outcome = _run_action_command(action["argv"], action["timeout"], action["env"])
        else:
            outcome = _run_action_kill(action["kill"], action.get("start"))
        results.append(outcome)
        log("action %s" % json.dumps(outcome, sort_keys=True))
    flush_log()
    reply({"event": "fired", "reason": reason, "actions": results})
    return 0


def _own_source() -> str:
    """This module's source text, also from inside a zip (AnsiballZ) through its loader."""
    loader = globals().get("__loader__")
    if loader is not None and hasattr(loader, "get_source"):
        try:
            source = loader.get_source(__name__)
            if source:
                return source
        except (ImportError, OSError):
            pass
    with open(__file__, "r", encoding="utf-8") as handle:
        return handle.read()


class Watchdog:
    """The runner's handle on a watchdog process.

    Usage::

        watchdog = Watchdog(max_seconds=30, log_path="/var/lib/restorable/watchdog.log")
        watchdog.start()                      # before quiescing; raises WatchdogError
        watchdog.add_command(["fsfreeze", "-u", "/srv/data"])
        ... freeze, snapshot, thaw ...
        watchdog.disarm()                     # True if the watchdog had already fired
    """

    def __init__(self, max_seconds: float, log_path: str | None = None,
                 action_timeout: float = DEFAULT_ACTION_TIMEOUT, name: str = "watchdog") -> None:
        if max_seconds <= 0:
            raise ValueError("max_seconds must be positive")
        self.max_seconds = float(max_seconds)
        self.log_path = log_path
        self.action_timeout = float(action_timeout)
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.fired: dict | None = None
        self.deadline: float | None = None
        self._buffer = b""
        self._longest_action = self.action_timeout
        self._registered = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        """Start the watchdog process and wait until it is ready; the deadline starts now."""
        if self.proc is not None:
            raise WatchdogError("watchdog already started")
        self.deadline = time.monotonic() + self.max_seconds
        config = {"deadline": self.deadline, "max_seconds": self.max_seconds, "log": self.log_path,
                  "action_timeout": self.action_timeout, "name": self.name}
        # Run as "-c", the source's __name__ is "__main__": its last lines call child_main(argv[1]).
        code = _own_source()
        # A clean environment: whatever secrets the runner holds in its own stay with it.
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        try:
            # The module source, not "-m": the package may live in a zip the child cannot import.
            self.proc = subprocess.Popen(
                [sys.executable or "/usr/bin/python3", "-I", "-c", code, json.dumps(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd="/", env=env, start_new_session=True, close_fds=True)
        except OSError as exc:
            self.proc = None
            raise WatchdogError("cannot start the watchdog: %s" % exc) from exc
        event = self._read_event(START_TIMEOUT)
        if event is None or event.get("event") != "ready":
            self._abandon()
            raise WatchdogError("the watchdog did not start within %ds" % START_TIMEOUT)

    def add_command(self, argv: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> None:
        """Register a release command; returns once the watchdog acknowledged it.

        env (added to the watchdog's environment) travels through the pipe, never argv.
        """
        message = {"op": "command", "argv": [str(arg) for arg in argv], "env": dict(env or {})}
        if timeout is not None:
            message["timeout"] = float(timeout)
            self._longest_action = max(self._longest_action, float(timeout))
        self._register(message)

    def add_kill(self, pid: int) -> None:
        """Register a process to SIGKILL (its start time guards against PID reuse)."""
        self._register({"op": "kill", "pid": int(pid), "start": _process_start_ticks(int(pid))})

    def disarm(self) -> bool:
        """Tell the watchdog the runner released normally. True if it had fired before."""
        return self._finish({"op": "disarm"})

    def release_now(self) -> bool:
        """Make the watchdog perform its actions now (the runner's own release failed)."""
        return self._finish({"op": "release"})

    def _register(self, message: dict) -> None:
        if self.proc is None:
            raise WatchdogError("watchdog not started")
        if not self._send(message):
            raise WatchdogError("the watchdog is gone (it fired or died)")
        event = self._read_event(REPLY_TIMEOUT)
        self._registered += 1
        if event is None or event.get("event") != "ok":
            if event is not None and event.get("event") == "fired":
                self.fired = event
            raise WatchdogError("the watchdog did not acknowledge %s" % message["op"])

    def _finish(self, message: dict) -> bool:
        if self.proc is None:
            return False
        self._send(message)
        # Firing runs the actions first: wait as long as they may take.
        wait = REPLY_TIMEOUT + (self._longest_action + KILL_GRACE) * max(1, self._registered)
        while True:
            event = self._read_event(wait)
            if event is None:
                break
            if event.get("event") == "fired":
                self.fired = event
                break
            if event.get("event") == "disarmed":
                break
        self._abandon(wait=REPLY_TIMEOUT)
        return self.fired is not None

    def _send(self, message: dict) -> bool:
        if self.proc is None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def _read_event(self, timeout: float) -> dict | None:
        """The next JSON event from the watchdog, None on timeout or end of file."""
        if self.proc is None or self.proc.stdout is None or self.proc.stdout.closed:
            return None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            readable, _unused1, _unused2 = select.select([fd], [], [], remaining)
            if not readable:
                continue
            data = os.read(fd, 65536)
            if not data:
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {"event": "garbage"}

    def _abandon(self, wait: float = 1.0) -> None:
        """Close the pipes and reap the process if it ends soon (it always ends on its own)."""
        proc = self.proc
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self) -> "Watchdog":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disarm()


if __name__ == "__main__":
    raise SystemExit(child_main(sys.argv[1]))
