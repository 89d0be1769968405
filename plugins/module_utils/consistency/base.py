# -*- coding: utf-8 -*-
# Private to restorable.backup: the interface of application consistency (quiesce) profiles.
"""Consistency profiles: the two kinds a profile may implement and what the tiers may call.

A profile is built from one ``consistency_profile`` of the policy. A tier asks for the kind it
uses, with :func:`streaming_profile_from_config` or :func:`freezing_profile_from_config`, which
refuse a profile type that does not implement that kind; :func:`profile_from_config` builds any.
Each concrete profile declares its kinds by its base classes: PostgreSQL dumps (streaming) and
runs the backup API around snapshots (freezing), fsfreeze only freezes.

:class:`StreamingProfile`: file-level tiers (agent) store consistent data in a repository.

``streams() -> list[StreamSource]``
    Commands whose stdout IS the consistent data (``pg_dump``, ``mariabackup --stream``); the
    tier pipes each into the repository under ``StreamSource.name``, without a temporary copy.
    Default: none.

``prepare_files() -> list[str]``
    Makes a consistent copy first (SQLite online backup API into the staging directory) and
    returns the paths to back up. Default: nothing to prepare.

:class:`FreezingProfile`: snapshot tiers (cdp, array) hold the application still around a snapshot.

``frozen(snapshot) -> (result, FreezeRecord)``
    Quiesce, call ``snapshot()``, release. The release ALWAYS runs: after success, after an
    exception in ``snapshot()``, and on SIGTERM (the runner turns it into an exception). A
    :class:`~.watchdog.Watchdog` process, armed before quiescing, releases when the freeze
    outlives ``max_freeze`` or the runner dies (SIGKILL). The returned record holds the measured
    freeze window.

``complete_snapshot(snapshots, record)``
    After ``frozen()``: writes into the still writable snapshots what a restore needs
    (PostgreSQL: backup_label and the WAL of the backup). Default: nothing.

Freezing profiles implement the two template methods :meth:`FreezingProfile.quiesce` and
:meth:`FreezingProfile.release` and inherit ``frozen()``:

* ``quiesce(watchdog)`` registers its release actions with the armed watchdog
  (``watchdog.add_command(argv)``, ``watchdog.add_kill(pid)``) BEFORE each freeze or lock, then
  freezes/locks; it returns an optional label (for instance a PostgreSQL backup label) and raises
  :class:`QuiesceFailed` when the application cannot be quiesced.
* ``release()`` undoes whatever ``quiesce`` did, also a partial quiesce, and must tolerate
  being called when nothing is frozen. It raises :class:`QuiesceFailed` when it could not release;
  the watchdog is then told to release at once.

The freeze window (``FreezeRecord.seconds``) runs from the start of ``quiesce`` (or from the moment
``quiesce`` stores in ``self.window_started``, when it first prepares without holding the
application, e.g. flushes dirty data) to the end of ``release``, measured with ``time.monotonic``. If it exceeded ``max_freeze`` the watchdog released
in the middle of the snapshot, which is then not application-consistent: ``frozen()`` raises
:class:`QuiesceFailed` carrying the snapshot result and the record.

The ``on_failure`` policy lives in :func:`quiesce_or_crash_consistent` for freezing profiles and in
the tier for streaming ones: with ``crash_consistent`` a failed quiesce still takes the copy and
records ``consistent=False`` with the reason; with ``fail`` the error propagates.

Both kinds share :meth:`ConsistencyProfile.cleanup`, which removes what the profile made
(copies, client credential files) and must be called in a ``finally``. Secrets never go on a
command line: profiles pass them to children through the environment (``StreamSource.env``) or
private files. Target-side code: standard library only.
"""
from __future__ import annotations

import abc
import datetime
import importlib
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, TypeVar

from ..common.durations import parse_duration
from ..common.process import Redactor
from .watchdog import Watchdog, WatchdogError

log = logging.getLogger(__name__)
T = TypeVar("T")
P = TypeVar("P", bound="ConsistencyProfile")

DEFAULT_MAX_FREEZE = 30
ON_FAILURE = ("fail", "crash_consistent")
WATCHDOG_LOG = "consistency-watchdog.log"

# type -> (module, class); modules load lazily: postgresql and mariadb may be absent.
PROFILE_TYPES = {
    "postgresql": ("postgresql", "PostgreSQLProfile"),
    "mariadb": ("mariadb", "MariaDBProfile"),
    "sqlite": ("sqlite", "SQLiteProfile"),
    "fsfreeze": ("fsfreeze", "FsfreezeProfile"),
    "custom": ("custom", "CustomProfile"),
    "none": ("base", "NoneProfile"),
}


class QuiesceFailed(Exception):
    """The application could not be quiesced (or released in time); the message says why.

    ``result`` is what ``snapshot()`` returned when there was one (so the caller can delete or
    keep a snapshot that is only crash-consistent) and ``record`` the freeze record so far.
    """

    def __init__(self, message: str, result: Any = None, record: "FreezeRecord | None" = None) -> None:
        super().__init__(message)
        self.result = result
        self.record = record


def utc_now() -> str:
    """An ISO 8601 UTC timestamp with milliseconds, as status files use."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FreezeRecord:
    """What one quiesce did: the status file and the drill evidence keep it."""

    profile: str
    started: str = ""  # ISO UTC
    ended: str = ""  # ISO UTC
    seconds: float = 0.0  # freeze window, measured with time.monotonic
    consistent: bool = True  # False: quiescing failed and on_failure=crash_consistent
    reason: str = ""
    label: str | None = None  # e.g. a PostgreSQL backup label

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StreamSource:
    """A command whose stdout is consistent data, stored in the backup as ``name``."""

    name: str  # file name in the backup, e.g. "postgresql/app.sql"
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # secrets only here or in files, never argv
    timeout: float | None = None  # seconds

    def describe(self) -> str:
        """argv without the environment: safe for logs."""
        return "%s <- %s" % (self.name, " ".join(self.argv))


class ConsistencyProfile(abc.ABC):
    """What every profile has, whatever its kinds: its settings, on_failure, a cleanup."""

    kind = "base"  # the profile's type in the policy (postgresql, fsfreeze, ...), not one of the two kinds
    ability = ""  # what a profile of the kind does, for the message refusing a type of another kind

    def __init__(self, config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> None:
        self.config = dict(config)
        self.staging_dir = staging_dir
        self.status_dir = status_dir or staging_dir
        # Checked for every kind: the policy allows it on any profile, and a wrong value is an error.
        self.max_freeze = float(parse_duration(config.get("max_freeze", DEFAULT_MAX_FREEZE), "max_freeze"))
        if self.max_freeze <= 0:
            raise QuiesceFailed("max_freeze must be longer than 0s")
        self.on_failure = config.get("on_failure") or "fail"
        if self.on_failure not in ON_FAILURE:
            raise QuiesceFailed("on_failure must be one of %s, not %r" % (", ".join(ON_FAILURE), self.on_failure))
        self.redactor = Redactor()

    def cleanup(self) -> None:
        """Remove what the profile made: copies, client credential files (default: nothing)."""


class StreamingProfile(ConsistencyProfile):
    """A profile that makes consistent copies or dumps for a repository (file-level tiers)."""

    ability = "make consistent copies or dumps for a repository (file-level tiers)"

    def streams(self) -> list[StreamSource]:
        """Commands whose stdout is the consistent data (default: none)."""
        return []

    def prepare_files(self) -> list[str]:
        """Make a consistent copy in the staging directory; the paths to back up (default: none)."""
        return []


class FreezingProfile(ConsistencyProfile):
    """A profile that holds the application still around a snapshot (snapshot tiers)."""

    ability = "freeze the application around a snapshot (snapshot tiers)"

    def __init__(self, config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> None:
        super().__init__(config, staging_dir, status_dir)
        self.watchdog: Watchdog | None = None
        # quiesce() may set this (time.monotonic()) when the blocking part begins, after
        # preparations that do not hold the application (a pre-flush); else quiesce's start.
        self.window_started: float | None = None
        # The record of the last frozen() call, also when it raised: a failed run records its window too.
        self.last_record: FreezeRecord | None = None

    def quiesce(self, watchdog: Watchdog) -> str | None:
        """Register release actions with watchdog, then freeze/lock; a label or None."""
        raise QuiesceFailed("profile type %s cannot freeze for a snapshot" % self.kind)

    def release(self) -> None:
        """Undo quiesce (also a partial one); raise QuiesceFailed if that failed."""

    def complete_snapshot(self, snapshots: dict[str, str], record: FreezeRecord) -> None:
        """Add what a restore needs to the still writable snapshots (volume -> snapshot path).

        Called after frozen() returned, before the snapshots are sealed read-only; raises
        QuiesceFailed when the snapshots cannot be made restorable. Default: nothing to add.
        """

    def watchdog_log_path(self) -> str | None:
        """Where the watchdog logs (the status directory)."""
        if not self.status_dir:
            return None
        return os.path.join(self.status_dir, WATCHDOG_LOG)

    def make_watchdog(self) -> Watchdog:
        return Watchdog(self.max_freeze, log_path=self.watchdog_log_path(), name="restorable-%s-watchdog" % self.kind)

    def frozen(self, snapshot: Callable[[], T]) -> tuple[T, FreezeRecord]:
        """Quiesce, call snapshot(), release (always); the result and the freeze record."""
        record = self.last_record = FreezeRecord(profile=self.kind, started=utc_now())
        watchdog = self.make_watchdog()
        try:
            watchdog.start()
        except WatchdogError as exc:
            record.ended = utc_now()
            record.consistent = False
            record.reason = "not quiesced: %s" % exc
            raise QuiesceFailed(record.reason, record=record) from exc
        self.watchdog = watchdog
        began = time.monotonic()
        self.window_started = None
        result: Any = None
        release_error: BaseException | None = None
        try:
            try:
                record.label = self.quiesce(watchdog)
            except QuiesceFailed as exc:
                record.consistent = False
                record.reason = str(exc)
                exc.record = record  # completed (ended, seconds) by the release below
                raise
            result = snapshot()
        finally:
            # Nothing may interrupt the release: hold SIGTERM/SIGINT until it is done.
            with _signals_held():
                try:
                    self.release()
                except Exception as exc:  # any failure to release: the watchdog releases now
                    release_error = exc
                    log.error("release of %s failed, the watchdog releases: %s", self.kind, exc)
                released = time.monotonic()
                record.ended = utc_now()
                record.seconds = round(released - (self.window_started or began), 6)
                fired = watchdog.release_now() if release_error is not None else watchdog.disarm()
                self.watchdog = None
        if fired and release_error is None:
            record.consistent = False
            record.reason = self._fired_reason(watchdog)
            raise QuiesceFailed(record.reason, result=result, record=record)
        if release_error is not None:
            record.consistent = False
            record.reason = "release failed (the watchdog released): %s" % release_error
            raise QuiesceFailed(record.reason, result=result, record=record)
        return result, record

    def _fired_reason(self, watchdog: Watchdog) -> str:
        reason = (watchdog.fired or {}).get("reason", "the watchdog released")
        return "the freeze outlived max_freeze (%gs): the watchdog released during the snapshot (%s)" % (
            self.max_freeze, reason)


class NoneProfile(StreamingProfile, FreezingProfile):
    """type: none — no quiescing: no copies to make, snapshots crash-consistent and recorded as such."""

    kind = "none"

    def frozen(self, snapshot: Callable[[], T]) -> tuple[T, FreezeRecord]:
        record = self.last_record = FreezeRecord(profile=self.kind, started=utc_now())
        began = time.monotonic()
        result = snapshot()
        record.seconds = round(time.monotonic() - began, 6)
        record.ended = utc_now()
        record.consistent = False
        record.reason = "no consistency profile: crash-consistent"
        return result, record


class _signals_held:
    """Block SIGTERM and SIGINT in the main thread for the duration (no-op elsewhere)."""

    SIGNALS = {signal.SIGTERM, signal.SIGINT}

    def __init__(self) -> None:
        self.previous: set | None = None

    def __enter__(self) -> "_signals_held":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.previous is not None:
            # Unblocking delivers a pending SIGTERM now, after the release: the handler raises then.
            signal.pthread_sigmask(signal.SIG_SETMASK, self.previous)


def quiesce_or_crash_consistent(profile: FreezingProfile, on_failure: str | None,
                                snapshot: Callable[[], T]) -> tuple[T, FreezeRecord]:
    """frozen(snapshot) with the on_failure policy.

    When quiescing fails (QuiesceFailed): with ``fail`` the error propagates; with
    ``crash_consistent`` the snapshot is taken anyway (unless the failed attempt already took
    it) and the record says ``consistent=False`` and why.
    """
    policy = on_failure or profile.on_failure
    if policy not in ON_FAILURE:
        raise QuiesceFailed("on_failure must be one of %s, not %r" % (", ".join(ON_FAILURE), policy))
    taken: list[T] = []

    def tracked() -> T:
        value = snapshot()
        taken.append(value)
        return value

    try:
        return profile.frozen(tracked)
    except QuiesceFailed as exc:
        if policy == "fail":
            raise
        reason = str(exc)
        log.warning("quiescing %s failed, taking a crash-consistent snapshot: %s", profile.kind, reason)
        record = exc.record or FreezeRecord(profile=profile.kind, started=utc_now())
        if taken:
            result = taken[0]
        else:
            began = time.monotonic()
            result = snapshot()
            record.seconds = round(time.monotonic() - began, 6) if not record.seconds else record.seconds
        record.ended = record.ended or utc_now()
        record.consistent = False
        record.reason = "crash-consistent: %s" % reason
        return result, record


def profile_from_config(config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> ConsistencyProfile:
    """The profile object for one consistency_profile of the policy, whatever kinds it implements."""
    return profile_class(config.get("type"))(config, staging_dir, status_dir)


def streaming_profile_from_config(config: dict[str, Any], staging_dir: str,
                                  status_dir: str | None = None) -> StreamingProfile:
    """The profile for a file-level tier; QuiesceFailed when its type cannot stream."""
    return _profile_of_kind(StreamingProfile, config, staging_dir, status_dir)


def freezing_profile_from_config(config: dict[str, Any], staging_dir: str,
                                 status_dir: str | None = None) -> FreezingProfile:
    """The profile for a snapshot tier; QuiesceFailed when its type cannot freeze."""
    return _profile_of_kind(FreezingProfile, config, staging_dir, status_dir)


def _profile_of_kind(interface: type[P], config: dict[str, Any], staging_dir: str, status_dir: str | None) -> P:
    # Refused before the profile is built: a wrong kind is a policy error, not a runtime one.
    name = config.get("type")
    cls = profile_class(name)
    if not issubclass(cls, interface):
        raise QuiesceFailed("profile type %s cannot %s" % (name, interface.ability))
    return cls(config, staging_dir, status_dir)


def profile_class(name: Any) -> type[ConsistencyProfile]:
    """The class of profile type name, its module loaded on first use."""
    if name not in PROFILE_TYPES:
        raise QuiesceFailed("unknown consistency profile type %r (known: %s)" % (name, ", ".join(sorted(PROFILE_TYPES))))
    module_name, class_name = PROFILE_TYPES[name]
    package = __name__.rpartition(".")[0]
    try:
        module = importlib.import_module("%s.%s" % (package, module_name))
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith("." + module_name):
            raise QuiesceFailed("profile type %s is not available" % name) from exc
        raise
    cls = getattr(module, class_name, None)
    if cls is None:
        raise QuiesceFailed("profile type %s is not available" % name)
    return cls
