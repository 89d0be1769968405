# -*- coding: utf-8 -*-
# Private to restorable.backup: one backup run of one agent dataset.
# The same BackupRunner.run() serves the systemd timer / cron job (through cli.py) and the
# on-demand run module, so both behave identically: lock, gate, hooks, canary, backup,
# retention, check, status, metrics, pings.
from __future__ import annotations

import datetime
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..common.durations import format_duration
from ..common.fileio import atomic_write, ensure_dir
from ..common.locks import FileLock, LockBusy
from ..common.process import Redactor, SecretFileError, read_env_file, read_secret_file
from ..consistency import custom, fsfreeze, mariadb, postgresql, sqlite
from ..consistency.base import QuiesceFailed, StreamingProfile, streaming_profile_from_config
from .jobspec import JobConfig
from .gate import GateDecision, LoadGate, wait_for_gate
from ..common.hooks import ping, run_hooks
from ..storage.restic import ResticError, ResticRepository, ionice_prefix
from .status import StatusStore, write_metrics

log = logging.getLogger(__name__)

EXIT_CODES = {"success": 0, "failed": 1, "deferred": 75, "locked": 76}


# profile_from_config loads these by name; importing them here makes Ansible ship them with
# every module that runs a backup.
PROFILE_MODULES = (custom, fsfreeze, mariadb, postgresql, sqlite)


class StepFailed(Exception):
    """A step of the run failed in an expected way; the message is the status reason."""


class Interrupted(BaseException):
    """The run was asked to stop (SIGTERM from systemd, SIGINT from a terminal)."""


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGINT into Interrupted so post hooks and the status still happen."""
    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@dataclass
class RunOptions:
    ignore_window: bool = False  # on-demand runs may start outside the window
    ignore_load: bool = False  # ... and on a busy host
    delay_seconds: float = 0.0  # scheduled runs: the host's spread offset (see units.py)


@dataclass
class RunResult:
    """What one run did; also the body of the status file and of the module's result."""

    dataset: str
    host: str
    repository: str
    result: str
    reason: str = ""
    started: str = ""
    finished: str = ""
    duration_seconds: float = 0.0
    deferred_seconds: float = 0.0
    snapshot_id: str | None = None
    bytes_processed: int | None = None
    bytes_added: int | None = None
    files_new: int | None = None
    files_changed: int | None = None
    files_unmodified: int | None = None
    canary_path: str | None = None
    canary_token: str | None = None
    retention: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    hooks: list[dict[str, Any]] = field(default_factory=list)
    unlocked_stale_locks: bool = False
    warnings: list[str] = field(default_factory=list)
    consistency: dict[str, Any] | None = None  # profile, consistent, reason, seconds
    streams: list[dict[str, Any]] = field(default_factory=list)  # one snapshot per dump stream
    pid: int = field(default_factory=os.getpid)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.result, 1)

    @property
    def ok(self) -> bool:
        return self.result == "success"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class BackupRunner:
    """Runs one backup of one dataset as described by its JobConfig."""

    def __init__(self, config: JobConfig, options: RunOptions | None = None,
                 now: Callable[[], datetime.datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 loadavg: Callable[[], tuple] = os.getloadavg,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.options = options or RunOptions()
        # Clocks and load are injectable so the gate can be tested without waiting.
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.sleep = sleep
        self.loadavg = loadavg
        self.monotonic = monotonic
        self._deadline: float | None = None
        self.redact = Redactor()

    def run(self) -> RunResult:
        config = self.config
        if self.options.delay_seconds > 0:
            log.info("waiting %ds (this host's start offset) before starting", self.options.delay_seconds)
            self.sleep(self.options.delay_seconds)
        ensure_dir(config.status_dir)
        lock = FileLock(config.lock_path)
        try:
            lock.acquire()
        except LockBusy as busy:
            result = self._new_result("locked", self.now())
            result.reason = "another run of dataset %s is in progress (%s); this one did not start" % (
                config.dataset, busy.holder or "lock %s" % config.lock_path)
            result.finished = result.started
            log.warning("%s", result.reason)
            return result
        try:
            return self._run_locked()
        finally:
            lock.release()

    # -- the run, under the dataset lock -------------------------------------------------------

    def _new_result(self, state: str, when: datetime.datetime) -> RunResult:
        return RunResult(self.config.dataset, self.config.host, self.config.repository, state, started=_iso(when))

    def _run_locked(self) -> RunResult:
        config = self.config
        store = StatusStore(config.status_dir, config.dataset, config.history)
        previous = store.load()
        interrupted = store.interrupted_run()
        invoked = self.now()
        try:
            decision = self._gate()
        except Interrupted as exc:  # stopped while waiting for the window or the load: nothing ran
            decision = GateDecision(False, "interrupted by %s while waiting to start" % exc)
        if not decision.proceed:
            result = self._new_result("deferred", invoked)
            result.reason = decision.reason
            result.deferred_seconds = round(decision.waited, 3)
            result.finished = _iso(self.now())
            log.warning("dataset %s deferred: %s", config.dataset, decision.reason)
            self._record(store, previous, result)
            return result

        started_at = self.now()
        clock = time.monotonic()
        result = self._new_result("failed", started_at)
        result.deferred_seconds = round(decision.waited, 3)
        store.mark_running(result.started)
        ping(config.ping_url, "start")
        try:
            self._work(result, previous, interrupted)
            result.result = "success"
        except (StepFailed, ResticError, SecretFileError) as exc:
            result.result, result.reason = "failed", self.redact(str(exc))
        except Interrupted as exc:
            result.result, result.reason = "failed", "interrupted by %s" % exc
        except KeyboardInterrupt:
            result.result, result.reason = "failed", "interrupted by SIGINT"
        except Exception as exc:  # a bug or an unexpected OS error: record it, no traceback for users
            log.debug("unexpected error", exc_info=True)
            result.result, result.reason = "failed", self.redact("unexpected error: %s: %s" % (type(exc).__name__, exc))
        result.finished = _iso(self.now())
        result.duration_seconds = round(time.monotonic() - clock, 3)
        self._record(store, previous, result)
        store.clear_running()
        if result.ok:
            ping(config.ping_url, "success", self._summary(result))
            log.info("%s", self._summary(result))
        else:
            ping(config.ping_url, "fail", result.reason)
            log.error("dataset %s failed: %s", config.dataset, result.reason)
        return result

    def _gate(self) -> GateDecision:
        config = self.config
        window = None if self.options.ignore_window else config.window
        gate = None
        if config.load_gate is not None and not self.options.ignore_load:
            gate = LoadGate(config.load_gate.max_load_per_cpu, config.load_gate.check_every,
                            config.load_gate.max_deferral, loadavg=self.loadavg)
        return wait_for_gate(window, gate, now=self.now, sleep=self.sleep, monotonic=self.monotonic)

    def _work(self, result: RunResult, previous: dict[str, Any], interrupted: dict[str, Any] | None) -> None:
        config = self.config
        self._deadline = self.monotonic() + config.max_runtime if config.max_runtime else None
        repo = self._repository(result)
        if config.pre_hooks:
            # Before a hook quiesces an application: is the repository there and does the
            # password open it? A wrong password or a dead server then changes nothing.
            # (Without hooks the backup itself fails just as early; each restic call costs
            # a key derivation, about a second, so it is not paid twice.)
            repo.verify()
        if interrupted:
            result.warnings.append("the previous run (pid %s, started %s) was interrupted before it finished"
                                   % (interrupted.get("pid"), interrupted.get("started")))
        if interrupted or int(previous.get("consecutive_failures") or 0) > 0:
            # A failed or killed run may have left its restic lock behind; unlock removes
            # only stale locks (dead processes), never those of a live run.
            log.info("previous run did not succeed: removing stale repository locks")
            repo.unlock()
            result.unlocked_stale_locks = True

        context = {"RESTORABLE_DATASET": config.dataset, "RESTORABLE_HOST": config.host,
                   "RESTORABLE_STATUS_DIR": config.status_dir}
        error: BaseException | None = None
        try:
            pre = run_hooks(config.pre_hooks, "pre", context, self.redact, stop_on_failure=True)
            result.hooks += [h.to_dict() for h in pre]
            failed = [h for h in pre if not h.ok]
            if failed:
                raise StepFailed(failed[0].describe() + "; backup not started")
            profile = self._profile(result)
            try:
                tags = [config.dataset_tag] + [t for t in config.tags if t != config.dataset_tag]
                paths = list(config.paths) + self._consistent_files(profile, result)
                if config.canary:
                    result.canary_path, result.canary_token = self._write_canary()
                    if not any(_under(result.canary_path, p) for p in paths):
                        paths.append(result.canary_path)
                log.info("backing up %s to %s", ", ".join(paths), config.repository)
                summary = self._unlock_retry(result, repo, lambda: repo.backup(
                    paths, host=config.host, tags=tags, excludes=config.excludes,
                    one_file_system=config.one_file_system, timeout=self._time_left()))
                result.snapshot_id = summary.snapshot_id
                result.bytes_processed = summary.total_bytes_processed
                result.bytes_added = summary.data_added
                result.files_new = summary.files_new
                result.files_changed = summary.files_changed
                result.files_unmodified = summary.files_unmodified
                self._back_up_streams(profile, repo, tags, result)
            finally:
                if profile is not None:
                    profile.cleanup()
        except BaseException as exc:  # post hooks run whatever happened, even on SIGTERM
            error = exc
            if isinstance(exc, ResticError) and exc.kind == ResticError.INCOMPLETE and exc.detail:
                result.snapshot_id = exc.detail
        post_context = dict(context, RESTORABLE_RESULT="failed" if error else "success",
                            RESTORABLE_SNAPSHOT_ID=result.snapshot_id or "")
        post = run_hooks(config.post_hooks, "post", post_context, self.redact, stop_on_failure=False)
        result.hooks += [h.to_dict() for h in post]
        if error is not None:
            raise error
        failed = [h for h in post if not h.ok]
        if failed:
            raise StepFailed("%s (snapshot %s was saved)" % (failed[0].describe(), result.snapshot_id))

        if any(config.retention.get(k) for k in config.retention):
            self._apply_retention(result, repo, previous)

        every = config.check.every
        if every and nth_backup(previous, "backups_since_check", every):
            log.info("checking the repository (read_data_subset %s)", config.check.read_data_subset or "none")
            try:
                check = self._unlock_retry(result, repo, lambda: repo.check(config.check.read_data_subset,
                                                                            timeout=self._time_left()))
            except ResticError as exc:
                result.check = {"ok": False, "read_data_subset": config.check.read_data_subset, "message": str(exc)}
                raise StepFailed("repository check could not run: %s" % exc) from None
            result.check = {"ok": check.ok, "read_data_subset": check.read_data_subset, "message": check.message}
            if not check.ok:
                raise StepFailed("repository check found errors: %s" % check.message)

    def _apply_retention(self, result: RunResult, repo: ResticRepository, previous: dict[str, Any]) -> None:
        """restic forget --prune after every prune_every-th backup, nothing in between.

        Both are deferred together: a forget alone frees no space, yet costs a restic start
        (key derivation and index load) as large as the prune of a small repository. Applying
        the keep rules late keeps the same snapshots as applying them after every backup; in
        between, up to prune_every - 1 extra snapshots stay listed (and restorable).
        """
        config = self.config
        if not nth_backup(previous, "backups_since_prune", config.prune_every):
            result.retention = {"forgot": False, "pruned": False}
            return
        log.info("applying retention %s and pruning", config.retention)
        try:
            forget = self._unlock_retry(result, repo, lambda: repo.forget(
                config.retention, host=config.host, tags=[config.dataset_tag], prune=True, timeout=self._time_left()))
        except ResticError as exc:
            raise StepFailed("retention failed (snapshot %s was saved): %s" % (result.snapshot_id, exc)) from None
        result.retention = {"forgot": True, "pruned": True, "kept": forget.kept, "removed": forget.removed,
                            "removed_ids": forget.removed_ids}

    def _profile(self, result: RunResult) -> StreamingProfile | None:
        """The dataset's consistency profile, its passwords read from their private files."""
        declared = self.config.consistency
        if not declared:
            return None
        settings = dict(declared)
        for section in ("postgresql", "mariadb"):
            if isinstance(settings.get(section), dict) and "password_file" in settings[section]:
                part = dict(settings[section])
                part["password"] = read_secret_file(part.pop("password_file"), "%s password file" % section)
                self.redact.add(part["password"])
                settings[section] = part
        result.consistency = {"profile": settings["type"], "consistent": True, "reason": "", "seconds": 0.0}
        staging = self.config.files.staging
        try:
            return streaming_profile_from_config(settings, staging, status_dir=self.config.status_dir)
        except QuiesceFailed as exc:
            raise StepFailed("consistency profile %s: %s" % (settings["type"], exc)) from None

    def _quiesce_failed(self, result: RunResult, profile: StreamingProfile, reason: str) -> None:
        """on_failure decides: fail the run, or keep going with a copy recorded as crash-consistent."""
        if profile.on_failure != "crash_consistent":
            raise StepFailed("could not make %s consistent: %s" % (profile.kind, reason))
        result.consistency.update(consistent=False, reason=reason)
        result.warnings.append("only crash-consistent: %s" % reason)

    def _consistent_files(self, profile: StreamingProfile | None, result: RunResult) -> list[str]:
        if profile is None:
            return []
        began = self.monotonic()
        try:
            return profile.prepare_files()
        except QuiesceFailed as exc:
            self._quiesce_failed(result, profile, self.redact(str(exc)))
            return []
        finally:
            self._add_window(result, began)

    def _add_window(self, result: RunResult, began: float) -> None:
        """Time spent making consistent copies (an online backup holding its read lock, a dump
        running in its snapshot): recorded for every run, as snapshot tiers record freezes."""
        result.consistency["seconds"] = round(result.consistency.get("seconds", 0.0) + self.monotonic() - began, 3)

    def _back_up_streams(self, profile: StreamingProfile | None, repo: ResticRepository, tags: list[str],
                         result: RunResult) -> None:
        """Each dump stream piped into the repository as a snapshot of its own, no temporary copy."""
        if profile is None or not result.consistency["consistent"]:
            return
        try:
            streams = profile.streams()
        except QuiesceFailed as exc:
            self._quiesce_failed(result, profile, self.redact(str(exc)))
            return
        for stream in streams:
            log.info("backing up stream %s", stream.name)
            began = self.monotonic()
            try:
                summary = repo.backup_stream(stream.name, stream.argv, stream.env, self.config.host,
                                             tags + ["stream:%s" % stream.name], timeout=self._time_left())
            except ResticError as exc:
                if exc.kind != ResticError.SOURCE_FAILED:
                    raise
                self._quiesce_failed(result, profile, str(exc))
                return
            finally:
                self._add_window(result, began)
            result.streams.append({"name": stream.name, "snapshot_id": summary.snapshot_id,
                                   "bytes_processed": summary.total_bytes_processed, "bytes_added": summary.data_added})

    def _repository(self, result: RunResult) -> ResticRepository:
        config = self.config
        self.redact.add(read_secret_file(config.password_file, "repository password file"))
        env = read_env_file(config.env_file, "repository environment file") if config.env_file else {}
        for value in env.values():
            self.redact.add(value)
        self._apply_nice(result)
        prefix = []
        if config.ionice_class:
            ionice = shutil.which("ionice")
            if ionice:
                prefix = ionice_prefix(config.ionice_class, config.ionice_level, ionice)
            else:
                result.warnings.append("ionice is not installed; the I/O class was not applied")
        return ResticRepository(config.repository, config.password_file, env=env, options=config.repository_options,
                                binary=config.restic_binary, cache_dir=config.cache_dir,
                                limit_upload_kbps=config.limit_upload_kbps,
                                limit_download_kbps=config.limit_download_kbps,
                                command_prefix=prefix, redactor=self.redact)

    def _apply_nice(self, result: RunResult) -> None:
        # Applied to this process so that restic and the hooks inherit it.
        wanted = self.config.nice
        if wanted is None:
            return
        try:
            if os.getpriority(os.PRIO_PROCESS, 0) != wanted:
                os.setpriority(os.PRIO_PROCESS, 0, wanted)
        except OSError as exc:
            result.warnings.append("could not set nice %d: %s" % (wanted, exc.strerror))

    def _time_left(self) -> float | None:
        """Seconds the next restic step may take: max_runtime bounds the whole run."""
        if self._deadline is None:
            return None
        return max(1.0, self._deadline - self.monotonic())

    def _unlock_retry(self, result: RunResult, repo: ResticRepository, action: Callable[[], Any]) -> Any:
        """Run a restic action; if a lock blocks it, remove stale locks and try once more."""
        try:
            try:
                return action()
            except ResticError as exc:
                if exc.kind != ResticError.LOCKED:
                    raise
                log.info("repository locked: removing stale locks and retrying once")
                repo.unlock()
                result.unlocked_stale_locks = True
                return action()
        except ResticError as exc:
            if exc.timed_out:
                raise StepFailed("%s (the run's max_runtime is %s)" % (
                    exc, format_duration(self.config.max_runtime or 0))) from None
            raise

    def _write_canary(self) -> tuple[str, str]:
        """A fresh random token that drills find in the restored snapshot."""
        token = secrets.token_hex(16)
        document = {"dataset": self.config.dataset, "host": self.config.host, "token": token,
                    "written": _iso(self.now()), "writer": socket.gethostname()}
        path = self.config.canary_file
        atomic_write(path, json.dumps(document, sort_keys=True) + "\n", mode=0o644)
        return path, token

    def _record(self, store: StatusStore, previous: dict[str, Any], result: RunResult) -> None:
        try:
            status = store.record(result.to_dict(), previous)
            if self.config.metrics_path:
                write_metrics(self.config.metrics_path, status, self.config.host)
        except OSError as exc:
            # The run itself is over; say loudly that its record is missing.
            result.warnings.append("status or metrics could not be written: %s" % exc)
            log.error("status or metrics could not be written: %s", exc)

    @staticmethod
    def _summary(result: RunResult) -> str:
        return "dataset %s: %s, snapshot %s, %s bytes added of %s processed in %.1fs" % (
            result.dataset, result.result, result.snapshot_id, result.bytes_added, result.bytes_processed,
            result.duration_seconds)


def nth_backup(previous: dict[str, Any], counter: str, every: int) -> bool:
    """Whether this run's backup is at least the every-th one the status counter has counted
    since the step last succeeded (a failed step leaves the count running: the next run retries)."""
    return int(previous.get(counter, 0)) + 1 >= every


def _under(path: str, parent: str) -> bool:
    parent = parent.rstrip("/") or "/"
    return path == parent or path.startswith(parent + "/") or parent == "/"
