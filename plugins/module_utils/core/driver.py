# -*- coding: utf-8 -*-
# Private to restorable.backup: the contract between the Runner and a tier. The Runner owns
# everything a run of any tier has (lock, gates, deadline, signals, hooks, consistency profile,
# status, metrics, pings); a TierDriver does only what its tier does differently: open its
# storage, take the recovery point, keep its storage in shape afterwards.
from __future__ import annotations

import abc
import datetime
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..common.process import Redactor

EXIT_CODES = {"success": 0, "failed": 1, "deferred": 75, "locked": 76}


class RunFailed(Exception):
    """A step of the run failed in an expected way; the message is the status reason."""


@dataclass
class RunRecord:
    """What one run did, for any tier; also the body of the status file and of the module's result.

    `details` holds the tier's own facts (a repository's file counts, a VM's chain position);
    they are written beside the common fields, so every tier's status reads the same way.
    """

    dataset: str
    host: str
    tier: str
    result: str
    reason: str = ""
    started: str = ""
    finished: str = ""
    duration_seconds: float = 0.0
    deferred_seconds: float = 0.0
    snapshot_id: str | None = None  # the recovery point this run made
    bytes_processed: int | None = None
    bytes_added: int | None = None
    hooks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    consistency: dict[str, Any] | None = None  # profile, consistent, reason, seconds
    pid: int = field(default_factory=os.getpid)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.result, 1)

    @property
    def ok(self) -> bool:
        return self.result == "success"

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        details = document.pop("details")
        document.update((k, v) for k, v in details.items() if k not in document)
        return document


def iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunContext:
    """One run as a driver sees it: the job, the record to fill and the Runner's services."""

    spec: Any  # the job specification (core.jobspec)
    record: RunRecord
    previous: dict[str, Any]  # the status before this run
    interrupted: dict[str, Any] | None  # the marker of a run that was killed, if any
    redact: Redactor
    monotonic: Callable[[], float]
    now: Callable[[], datetime.datetime]
    deadline: float | None = None
    command_prefix: list[str] = field(default_factory=list)  # ionice, for the engine's processes
    profile: Any = None  # the consistency profile, when the dataset names one

    def time_left(self) -> float | None:
        """Seconds the next step may take: max_runtime bounds the whole run."""
        if self.deadline is None:
            return None
        return max(1.0, self.deadline - self.monotonic())

    def quiesce_failed(self, reason: str) -> None:
        """on_failure decides: fail the run, or keep going with a copy recorded as crash-consistent."""
        if self.profile.on_failure != "crash_consistent":
            raise RunFailed("could not make %s consistent: %s" % (self.profile.kind, reason))
        self.record.consistency.update(consistent=False, reason=reason)
        self.record.warnings.append("only crash-consistent: %s" % reason)

    def add_window(self, began: float) -> None:
        """Time spent making consistent copies, recorded for every run as snapshot tiers record freezes."""
        consistency = self.record.consistency
        consistency["seconds"] = round(consistency.get("seconds", 0.0) + self.monotonic() - began, 3)


class TierDriver(abc.ABC):
    """What a tier does inside a run (the Runner calls preflight, capture, maintain in this order),
    and how its recovery points are restored in a drill."""

    tier: str = ""
    # Snapshot tiers quiesce around an instant (freezing profiles); the others stream dumps.
    takes_freezing_profiles: bool = False

    def record_details(self) -> dict[str, Any]:
        """The tier's own fields of a RunRecord with their values before anything ran."""
        return {}

    @abc.abstractmethod
    def preflight(self, run: RunContext) -> None:
        """Before any hook quiesces an application: can the storage be used at all?"""

    @abc.abstractmethod
    def capture(self, run: RunContext) -> None:
        """Take the recovery point (inside the hooks, with the consistency profile); fill run.record."""

    def maintain(self, run: RunContext) -> None:
        """After a good capture: retention, checks, replication, export, as the job asks."""

    @classmethod
    @abc.abstractmethod
    def drill(cls, params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
        """The record of a restore drill of one of the tier's datasets: the tier's RestoreDriver run
        by the drill engine. From the drill's parameters, not from a job: drills run on drill hosts."""

    def summary(self, record: RunRecord) -> str:
        """One line for the log of a successful run."""
        return "dataset %s: %s, point %s in %.1fs" % (record.dataset, record.result, record.snapshot_id,
                                                      record.duration_seconds)
