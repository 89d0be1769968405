# -*- coding: utf-8 -*-
# Private to restorable.backup: the agent tier inside a run: paths, a canary and the profile's
# dump streams go into the dataset's repository; retention and checks keep it in shape.
from __future__ import annotations

import json
import logging
import secrets
import socket
from typing import Any, Callable

from ...common.durations import format_duration
from ...common.fileio import atomic_write
from ...consistency.base import QuiesceFailed
from ...core.driver import RunContext, RunFailed, RunRecord, TierDriver, iso
from ...core.runner import nth_backup
from ...storage.factory import open_job_repository
from ...storage.repository import Repository, RepositoryError
from .drill import run_agent_drill

log = logging.getLogger(__name__)


class AgentDriver(TierDriver):
    """Backs up one agent dataset's paths (and dump streams) into its repository."""

    tier = "agent"

    def __init__(self, config: Any) -> None:
        self.config = config
        self.repo: Repository | None = None

    def record_details(self) -> dict[str, Any]:
        return {"repository": self.config.repository, "files_new": None, "files_changed": None,
                "files_unmodified": None, "canary_path": None, "canary_token": None, "retention": None,
                "check": None, "unlocked_stale_locks": False, "streams": [], "rpo_target_seconds": self.config.rpo_seconds}

    # -- before the hooks -----------------------------------------------------------------------

    def preflight(self, run: RunContext) -> None:
        self.repo = self._open(run)
        if self.config.pre_hooks:
            # Before a hook quiesces an application: is the repository there and does the
            # password open it? A wrong password or a dead server then changes nothing.
            # (Without hooks the backup itself fails just as early; each restic call costs
            # a key derivation, about a second, so it is not paid twice.)
            self.repo.verify()
        if run.interrupted or int(run.previous.get("consecutive_failures") or 0) > 0:
            # A failed or killed run may have left its lock behind; unlock removes only stale
            # locks (dead processes), never those of a live run.
            log.info("previous run did not succeed: removing stale repository locks")
            self.repo.unlock()
            run.record.details["unlocked_stale_locks"] = True

    def _open(self, run: RunContext) -> Repository:
        return open_job_repository(self.config, run.redact, run.command_prefix)

    # -- the recovery point ---------------------------------------------------------------------

    def capture(self, run: RunContext) -> None:
        config, record = self.config, run.record
        tags = [config.dataset_tag] + [t for t in config.tags if t != config.dataset_tag]
        paths = list(config.paths) + self._consistent_files(run)
        if config.canary:
            record.details["canary_path"], record.details["canary_token"] = self._write_canary(run)
            if not any(_under(record.details["canary_path"], p) for p in paths):
                paths.append(record.details["canary_path"])
        log.info("backing up %s to %s", ", ".join(paths), config.repository)
        try:
            summary = self._unlock_retry(run, lambda: self.repo.backup(
                paths, host=config.host, tags=tags, excludes=config.excludes,
                one_file_system=config.one_file_system, timeout=run.time_left()))
        except RepositoryError as exc:
            if exc.kind == RepositoryError.INCOMPLETE and exc.detail:
                record.snapshot_id = exc.detail  # saved, though not whole: hooks and the status name it
            raise
        record.snapshot_id = summary.snapshot_id
        record.bytes_processed = summary.total_bytes_processed
        record.bytes_added = summary.data_added
        record.details.update(files_new=summary.files_new, files_changed=summary.files_changed,
                              files_unmodified=summary.files_unmodified)
        self._back_up_streams(run, tags)

    def _consistent_files(self, run: RunContext) -> list[str]:
        if run.profile is None:
            return []
        began = run.monotonic()
        try:
            return run.profile.prepare_files()
        except QuiesceFailed as exc:
            run.quiesce_failed(run.redact(str(exc)))
            return []
        finally:
            run.add_window(began)

    def _back_up_streams(self, run: RunContext, tags: list[str]) -> None:
        """Each dump stream piped into the repository as a snapshot of its own, no temporary copy."""
        if run.profile is None or not run.record.consistency["consistent"]:
            return
        try:
            streams = run.profile.streams()
        except QuiesceFailed as exc:
            run.quiesce_failed(run.redact(str(exc)))
            return
        for stream in streams:
            log.info("backing up stream %s", stream.name)
            began = run.monotonic()
            try:
                summary = self.repo.backup_stream(stream.name, stream.argv, stream.env, self.config.host,
                                                  tags + ["stream:%s" % stream.name], timeout=run.time_left())
            except RepositoryError as exc:
                if exc.kind != RepositoryError.SOURCE_FAILED:
                    raise
                run.quiesce_failed(str(exc))
                return
            finally:
                run.add_window(began)
            run.record.details["streams"].append({"name": stream.name, "snapshot_id": summary.snapshot_id,
                                                  "bytes_processed": summary.total_bytes_processed,
                                                  "bytes_added": summary.data_added})

    def _write_canary(self, run: RunContext) -> tuple[str, str]:
        """A fresh random token that drills find in the restored snapshot."""
        token = secrets.token_hex(16)
        document = {"dataset": self.config.dataset, "host": self.config.host, "token": token,
                    "written": iso(run.now()), "writer": socket.gethostname()}
        path = self.config.canary_file
        atomic_write(path, json.dumps(document, sort_keys=True) + "\n", mode=0o644)
        return path, token

    # -- after a good point ---------------------------------------------------------------------

    def maintain(self, run: RunContext) -> None:
        config = self.config
        if any(config.retention.get(k) for k in config.retention):
            self._apply_retention(run)
        every = config.check.every
        if every and nth_backup(run.previous, "backups_since_check", every):
            self._check(run)

    def _apply_retention(self, run: RunContext) -> None:
        """restic forget --prune after every prune_every-th backup, nothing in between.

        Both are deferred together: a forget alone frees no space, yet costs a restic start
        (key derivation and index load) as large as the prune of a small repository. Applying
        the keep rules late keeps the same snapshots as applying them after every backup; in
        between, up to prune_every - 1 extra snapshots stay listed (and restorable).
        """
        config = self.config
        if not nth_backup(run.previous, "backups_since_prune", config.prune_every):
            run.record.details["retention"] = {"forgot": False, "pruned": False}
            return
        log.info("applying retention %s and pruning", config.retention)
        try:
            forget = self._unlock_retry(run, lambda: self.repo.forget(
                config.retention, host=config.host, tags=[config.dataset_tag], prune=True, timeout=run.time_left()))
        except RepositoryError as exc:
            raise RunFailed("retention failed (snapshot %s was saved): %s" % (run.record.snapshot_id, exc)) from None
        run.record.details["retention"] = {"forgot": True, "pruned": True, "kept": forget.kept,
                                           "removed": forget.removed, "removed_ids": forget.removed_ids}

    def _check(self, run: RunContext) -> None:
        subset = self.config.check.read_data_subset
        log.info("checking the repository (read_data_subset %s)", subset or "none")
        try:
            check = self._unlock_retry(run, lambda: self.repo.check(subset, timeout=run.time_left()))
        except RepositoryError as exc:
            run.record.details["check"] = {"ok": False, "read_data_subset": subset, "message": str(exc)}
            raise RunFailed("repository check could not run: %s" % exc) from None
        run.record.details["check"] = {"ok": check.ok, "read_data_subset": check.read_data_subset,
                                       "message": check.message}
        if not check.ok:
            raise RunFailed("repository check found errors: %s" % check.message)

    def _unlock_retry(self, run: RunContext, action: Callable[[], Any]) -> Any:
        """Run a repository action; if a lock blocks it, remove stale locks and try once more."""
        try:
            try:
                return action()
            except RepositoryError as exc:
                if exc.kind != RepositoryError.LOCKED:
                    raise
                log.info("repository locked: removing stale locks and retrying once")
                self.repo.unlock()
                run.record.details["unlocked_stale_locks"] = True
                return action()
        except RepositoryError as exc:
            if exc.timed_out:
                raise RunFailed("%s (the run's max_runtime is %s)" % (
                    exc, format_duration(self.config.max_runtime or 0))) from None
            raise

    @classmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        return run_agent_drill(params, check_only)

    def summary(self, record: RunRecord) -> str:
        return "dataset %s: %s, snapshot %s, %s bytes added of %s processed in %.1fs" % (
            record.dataset, record.result, record.snapshot_id, record.bytes_added, record.bytes_processed,
            record.duration_seconds)


def _under(path: str, parent: str) -> bool:
    parent = parent.rstrip("/") or "/"
    return path == parent or path.startswith(parent + "/") or parent == "/"
