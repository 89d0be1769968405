# -*- coding: utf-8 -*-
# Private to restorable.backup: what every tier asks of a place that keeps recovery points.
# Callers see RepositoryError kinds, never an engine's own output, so the Runner and the
# drivers decide (retry after a stale lock, stop at a wrong password) without knowing restic.
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..common.process import CommandResult


class RepositoryError(Exception):
    """A repository operation failed; kind says how, message says it for humans."""

    NO_REPOSITORY = "no_repository"
    WRONG_PASSWORD = "wrong_password"
    UNREACHABLE = "unreachable"
    ACCESS_DENIED = "access_denied"
    LOCKED = "locked"
    TIMEOUT = "timeout"
    INCOMPLETE = "incomplete"  # a point was saved, but without everything (detail: its id)
    SOURCE_FAILED = "source_failed"  # the program feeding a stream failed: its data is not whole
    FAILED = "failed"

    def __init__(self, kind: str, message: str, detail: str = "", timed_out: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail
        self.timed_out = timed_out  # the engine was stopped because its time was up


@dataclass
class BackupSummary:
    """What one backup into a repository stored."""

    snapshot_id: str | None = None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unmodified: int = 0
    data_added: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    total_duration: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckResult:
    ok: bool
    read_data_subset: str | None
    message: str
    damaged: list[str] = field(default_factory=list)  # damaged pieces the check named (packs)


@dataclass
class ForgetResult:
    kept: int
    removed: int
    removed_ids: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    """A restore into a directory, verified against the repository in the same pass."""

    seconds: float | None  # the restore alone, without the verification; None: not measured apart
    verified_files: int | None  # None: the verification did not report
    verify_seconds: float | None
    problems: list[str]  # what the verification found wrong
    detail: str  # the most telling line of the output, for a verification that did not report


class Repository(abc.ABC):
    """One repository: points are tagged snapshots of paths or of streams."""

    url: str

    @abc.abstractmethod
    def verify(self) -> None:
        """Open the repository (cheap): raise the classified error if it cannot be used."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether there is a repository at url that the password opens."""

    @abc.abstractmethod
    def init_if_needed(self) -> bool:
        """Create the repository unless it exists; whether it was created."""

    @abc.abstractmethod
    def backup(self, paths: Sequence[str], host: str, tags: Sequence[str] = (), excludes: Sequence[str] = (),
               one_file_system: bool = False, timeout: float | None = None) -> BackupSummary:
        """Store paths as one new point."""

    @abc.abstractmethod
    def backup_stream(self, name: str, producer: Sequence[str], producer_env: dict[str, str], host: str,
                      tags: Sequence[str] = (), timeout: float | None = None) -> BackupSummary:
        """Store the standard output of a program as the file `name` of a new point."""

    @abc.abstractmethod
    def forget(self, retention: dict[str, Any], host: str, tags: Sequence[str] = (), prune: bool = True,
               timeout: float | None = None) -> ForgetResult:
        """Apply keep rules to the points of one host carrying all tags."""

    @abc.abstractmethod
    def forget_points(self, point_ids: Sequence[str], prune: bool = True, timeout: float | None = None) -> None:
        """Remove the named points (the caller decided which), then free their data."""

    @abc.abstractmethod
    def check(self, read_data_subset: str | None = None, timeout: float | None = None) -> CheckResult:
        """Check the repository's integrity, reading the given share of its data."""

    @abc.abstractmethod
    def snapshots(self, host: str | None = None, tags: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The points (id, short_id, time, paths, tags), oldest first."""

    @abc.abstractmethod
    def list_files(self, point_id: str, timeout: float | None = None) -> list[str]:
        """The paths of the regular files of a point."""

    @abc.abstractmethod
    def restore(self, point_id: str, target: str, includes: Sequence[str] = (),
                timeout: float | None = None, verify: bool = True) -> RestoreResult:
        """Restore a point (or the files includes name) below target, verifying what was written
        unless the caller checks the content itself (verify False)."""

    @abc.abstractmethod
    def read_file(self, point_id: str, path: str, timeout: float | None = None) -> str:
        """The text of one (small) file of a point."""

    @abc.abstractmethod
    def pipe_file(self, point_id: str, path: str, consumer: Sequence[str], consumer_env: dict[str, str],
                  timeout: float | None = None) -> CommandResult:
        """One file of a point fed into consumer's stdin, never landing on disk; the consumer's result.
        A failure to read the file raises RepositoryError; the consumer's failure is the caller's."""

    @abc.abstractmethod
    def unlock(self) -> None:
        """Remove stale locks only (left by killed processes); live ones stay."""
