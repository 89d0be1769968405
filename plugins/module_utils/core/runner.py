# -*- coding: utf-8 -*-
# Private to restorable.backup: one run of one dataset of any tier.
# The same Runner.run() serves the systemd timer / cron job (through runtime/cli.py) and the
# on-demand run module, so both behave identically: lock, window and load gate, deadline,
# signals, hooks, consistency profile, status, metrics, pings. The tier's own work is its
# TierDriver's (see driver.py).
from __future__ import annotations

import datetime
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..common.hooks import ping, run_hooks
from ..common.fileio import ensure_dir
from ..common.locks import FileLock, LockBusy
from ..common.process import Redactor, SecretFileError, ionice_prefix, read_secret_file
from ..consistency import custom, fsfreeze, mariadb, postgresql, sqlite
from ..consistency.base import ConsistencyProfile, QuiesceFailed, profile_from_config, streaming_profile_from_config
from ..evidence.shipper import record_evidence
from ..storage.repository import RepositoryError
from .driver import RunContext, RunFailed, RunRecord, TierDriver, iso
from .gate import GateDecision, LoadGate, wait_for_gate
from .status import StatusStore, write_metrics

log = logging.getLogger(__name__)

# profile_from_config loads these by name; importing them here makes Ansible ship them with
# every module that runs a backup.
PROFILE_MODULES = (custom, fsfreeze, mariadb, postgresql, sqlite)


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
    delay_seconds: float = 0.0  # scheduled runs: the host's spread offset (see converge/units.py)


class Runner:
    """Runs one job of one dataset through its tier's driver."""

    def __init__(self, config: Any, driver: TierDriver, options: RunOptions | None = None,
                 now: Callable[[], datetime.datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 loadavg: Callable[[], tuple] = os.getloadavg,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.driver = driver
        self.options = options or RunOptions()
        # Clocks and load are injectable so the gate can be tested without waiting.
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.sleep = sleep
        self.loadavg = loadavg
        self.monotonic = monotonic
        self.redact = Redactor()

    def run(self) -> RunRecord:
        config = self.config
        if self.options.delay_seconds > 0:
            log.info("waiting %ds (this host's start offset) before starting", self.options.delay_seconds)
            self.sleep(self.options.delay_seconds)
        ensure_dir(config.status_dir)
        lock = FileLock(config.lock_path)
        try:
            lock.acquire()
        except LockBusy as busy:
            record = self._new_record("locked", self.now())
            record.reason = "another run of dataset %s is in progress (%s); this one did not start" % (
                config.dataset, busy.holder or "lock %s" % config.lock_path)
            record.finished = record.started
            log.warning("%s", record.reason)
            return record
        try:
            return self._run_locked()
        finally:
            lock.release()

    # -- the run, under the dataset lock -------------------------------------------------------

    def _new_record(self, state: str, when: datetime.datetime) -> RunRecord:
        return RunRecord(self.config.dataset, self.config.host, self.driver.tier, state, started=iso(when),
                         details=self.driver.record_details())

    def _run_locked(self) -> RunRecord:
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
            record = self._new_record("deferred", invoked)
            record.reason = decision.reason
            record.deferred_seconds = round(decision.waited, 3)
            record.finished = iso(self.now())
            log.warning("dataset %s deferred: %s", config.dataset, decision.reason)
            self._record(store, previous, record)
            return record

        started_at = self.now()
        clock = time.monotonic()
        record = self._new_record("failed", started_at)
        record.deferred_seconds = round(decision.waited, 3)
        store.mark_running(record.started)
        ping(config.ping_url, "start")
        try:
            self._work(RunContext(config, record, previous, interrupted, self.redact, self.monotonic, self.now))
            record.result = "success"
        except (RunFailed, RepositoryError, SecretFileError) as exc:
            record.result, record.reason = "failed", self.redact(str(exc))
        except Interrupted as exc:
            record.result, record.reason = "failed", "interrupted by %s" % exc
        except KeyboardInterrupt:
            record.result, record.reason = "failed", "interrupted by SIGINT"
        except Exception as exc:  # a bug or an unexpected OS error: record it, no traceback for users
            log.debug("unexpected error", exc_info=True)
            record.result, record.reason = "failed", self.redact("unexpected error: %s: %s" % (type(exc).__name__, exc))
        record.finished = iso(self.now())
        record.duration_seconds = round(time.monotonic() - clock, 3)
        self._record(store, previous, record)
        store.clear_running()
        if record.ok:
            summary = self.driver.summary(record)
            ping(config.ping_url, "success", summary)
            log.info("%s", summary)
        else:
            ping(config.ping_url, "fail", record.reason)
            log.error("dataset %s failed: %s", config.dataset, record.reason)
        return record

    def _gate(self) -> GateDecision:
        config = self.config
        window = None if self.options.ignore_window else config.window
        gate = None
        if config.load_gate is not None and not self.options.ignore_load:
            gate = LoadGate(config.load_gate.max_load_per_cpu, config.load_gate.check_every,
                            config.load_gate.max_deferral, loadavg=self.loadavg)
        return wait_for_gate(window, gate, now=self.now, sleep=self.sleep, monotonic=self.monotonic)

    def _work(self, run: RunContext) -> None:
        config = self.config
        run.deadline = self.monotonic() + config.max_runtime if config.max_runtime else None
        self._apply_resource_limits(run)
        if run.interrupted:
            run.record.warnings.append("the previous run (pid %s, started %s) was interrupted before it finished"
                                       % (run.interrupted.get("pid"), run.interrupted.get("started")))
        self.driver.preflight(run)

        context = {"RESTORABLE_DATASET": config.dataset, "RESTORABLE_HOST": config.host,
                   "RESTORABLE_STATUS_DIR": config.status_dir}
        error: BaseException | None = None
        try:
            pre = run_hooks(config.pre_hooks, "pre", context, self.redact, stop_on_failure=True)
            run.record.hooks += [h.to_dict() for h in pre]
            failed = [h for h in pre if not h.ok]
            if failed:
                raise RunFailed(failed[0].describe() + "; backup not started")
            run.profile = self._profile(run.record)
            try:
                self.driver.capture(run)
            finally:
                if run.profile is not None:
                    run.profile.cleanup()
        except BaseException as exc:  # post hooks run whatever happened, even on SIGTERM
            error = exc
        post_context = dict(context, RESTORABLE_RESULT="failed" if error else "success",
                            RESTORABLE_SNAPSHOT_ID=run.record.snapshot_id or "")
        post = run_hooks(config.post_hooks, "post", post_context, self.redact, stop_on_failure=False)
        run.record.hooks += [h.to_dict() for h in post]
        if error is not None:
            raise error
        failed = [h for h in post if not h.ok]
        if failed:
            raise RunFailed("%s (snapshot %s was saved)" % (failed[0].describe(), run.record.snapshot_id))
        self.driver.maintain(run)

    def _profile(self, record: RunRecord) -> ConsistencyProfile | None:
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
        record.consistency = {"profile": settings["type"], "consistent": True, "reason": "", "seconds": 0.0}
        try:
            build = profile_from_config if self.driver.takes_freezing_profiles else streaming_profile_from_config
            return build(settings, self.config.files.staging, status_dir=self.config.status_dir)
        except QuiesceFailed as exc:
            raise RunFailed("consistency profile %s: %s" % (settings["type"], exc)) from None

    def _apply_resource_limits(self, run: RunContext) -> None:
        """nice for this process (hooks and engines inherit it); ionice as a prefix of engine commands."""
        wanted = self.config.nice
        if wanted is not None:
            try:
                if os.getpriority(os.PRIO_PROCESS, 0) != wanted:
                    os.setpriority(os.PRIO_PROCESS, 0, wanted)
            except OSError as exc:
                run.record.warnings.append("could not set nice %d: %s" % (wanted, exc.strerror))
        if self.config.ionice_class:
            ionice = shutil.which("ionice")
            if ionice:
                run.command_prefix = ionice_prefix(self.config.ionice_class, self.config.ionice_level, ionice)
            else:
                run.record.warnings.append("ionice is not installed; the I/O class was not applied")

    def _record(self, store: StatusStore, previous: dict[str, Any], record: RunRecord) -> None:
        try:
            status = store.record(record.to_dict(), previous)
            if self.config.metrics_path:
                write_metrics(self.config.metrics_path, status, self.config.host)
        except OSError as exc:
            # The run itself is over; say loudly that its record is missing.
            record.warnings.append("status or metrics could not be written: %s" % exc)
            log.error("status or metrics could not be written: %s", exc)
            return
        self._evidence(status, record)

    def _evidence(self, status: dict[str, Any], record: RunRecord) -> None:
        """Chain the status into the evidence ledger and ship it; a problem is a warning only."""
        evidence = self.config.evidence
        if evidence is None:
            return
        job = dict({"tier": self.driver.tier, "dataset": self.config.dataset, "target": None}, **evidence.job)
        outcome = record_evidence(evidence, evidence.host or self.config.host, "run", dict(status, job=job))
        if outcome and outcome["problem"]:
            record.warnings.append(self.redact(outcome["problem"]))
            log.warning("%s", record.warnings[-1])


def nth_backup(previous: dict[str, Any], counter: str, every: int) -> bool:
    """Whether this run's backup is at least the every-th one the status counter has counted
    since the step last succeeded (a failed step leaves the count running: the next run retries)."""
    return int(previous.get(counter, 0)) + 1 >= every
