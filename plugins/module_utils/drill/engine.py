# -*- coding: utf-8 -*-
# Private to restorable.backup: the drill engine, shared by every tier.
#
# A drill restores one dataset's recovery point into <sandbox>/<run id>, never over
# production, verifies it in layers (each ok, failed or skipped with a message), measures
# RTO (restore wall time) and RPO (age of the newest point at drill time) against their
# targets, and always removes what it restored. Tiers plug in a RestoreDriver.
from __future__ import annotations

import datetime
import os
import random
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from ..common.durations import parse_duration
from ..common.process import base_env, run_command
from ..common.report_html import human_duration
from ..core.driver import iso

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
RECORD_FORMAT = 1
LAYER_ORDER = ("sandbox", "recovery_point", "integrity", "restore", "freshness", "content", "application", "custom", "rto")


class DrillError(Exception):
    """The drill could not run (bad input); the message says why."""


class SandboxRefused(DrillError):
    """The sandbox overlaps a protected path: nothing was written."""


@dataclass
class Layer:
    """One verification layer's outcome."""

    name: str
    status: str
    message: str
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecoveryPoint:
    """A point a driver can restore: id, time (UTC) and whatever the tier needs."""

    id: str
    time: datetime.datetime
    short_id: str = ""
    paths: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def age_seconds(self, now: datetime.datetime) -> float:
        return max(0.0, (now - self.time).total_seconds())


@dataclass
class RestoreStats:
    """What a restore brought back."""

    files: int = 0
    bytes: int = 0
    sampled: bool = False
    sample_size: int | None = None
    population: int | None = None
    # The restore's own wall time when the driver's command also verified what it restored;
    # None: the engine's clock around restore() is the restore time.
    seconds: float | None = None


@dataclass
class DrillSpec:
    """Everything a drill needs besides the tier's driver."""

    drill: str
    dataset: str
    tier: str
    source_host: str
    drill_host: str
    sandbox: str
    protected_paths: list[str] = field(default_factory=list)
    recovery_point: dict[str, Any] = field(default_factory=lambda: {"choice": "latest"})
    sample: dict[str, Any] = field(default_factory=lambda: {"mode": "all"})
    checks: list[str] = field(default_factory=lambda: ["integrity", "freshness", "content"])
    commands: list[dict[str, Any]] = field(default_factory=list)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    keep_restore: bool = False


class RestoreDriver:
    """What a tier provides to the engine. Subclasses override every method but application."""

    tier = "none"

    def points(self) -> list[RecoveryPoint]:
        """Every recovery point of the dataset, any order."""
        raise NotImplementedError

    def choose_point(self, points: Sequence[RecoveryPoint], choice: dict[str, Any],
                     now: datetime.datetime) -> RecoveryPoint | None:
        """The point the drill restores (default: the shared choice rules)."""
        return choose_point(points, choice, now)

    def restore(self, point: RecoveryPoint, target: str, sample: dict[str, Any]) -> RestoreStats:
        """Restore point (or a sample of it) into the empty directory target."""
        raise NotImplementedError

    def repository_layers(self, checks: Sequence[str]) -> list[Layer]:
        """Layers about the storage itself (integrity), run before the restore: they hold even when it fails."""
        return []

    def verify_layers(self, point: RecoveryPoint, target: str, checks: Sequence[str]) -> list[Layer]:
        """The tier's layers among checks about the restored data (freshness, content), each as a Layer."""
        raise NotImplementedError

    def application(self, point: RecoveryPoint, target: str) -> Layer:
        """Application check (start the restored service elsewhere and query it).

        Tier or profile drivers override this; its wall time counts into the RTO.
        """
        return Layer("application", SKIPPED, "no application check for the %s tier yet" % self.tier)


# -- pure helpers ---------------------------------------------------------------------------

_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time as restic and the policy write it (any fraction digits) in UTC."""
    match = _TIME_RE.match(text.strip())
    if not match:
        raise ValueError("not a time: %r" % text)
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    offset = datetime.timedelta(0)
    if zone and zone != "Z":
        digits = zone.replace(":", "")
        offset = datetime.timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
        if digits[0] == "-":
            offset = -offset
    when = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro,
                             tzinfo=datetime.timezone(offset))
    return when.astimezone(datetime.timezone.utc)


def hours(seconds: float) -> str:
    """A duration for humans, as the reports write it: 0.5 s, 1 min 30 s, 3 h 10 min, 2 d 4 h."""
    return human_duration(seconds)


def choose_point(points: Sequence[RecoveryPoint], choice: dict[str, Any],
                 now: datetime.datetime) -> RecoveryPoint | None:
    """latest; random within_days (same seed and same points: same choice); at or before `at`."""
    ordered = sorted(points, key=lambda p: (p.time, p.id))
    if not ordered:
        return None
    kind = choice.get("choice", "latest")
    if kind == "latest":
        return ordered[-1]
    if kind == "random":
        days = int(choice.get("within_days") or 0)
        if days < 1:
            raise DrillError("recovery_point.within_days must be at least 1 for choice random")
        since = now - datetime.timedelta(days=days)
        window = [p for p in ordered if p.time >= since]
        if not window:
            return None
        seed = choice.get("seed")
        rng = random.Random(seed if seed is not None else None)
        return window[rng.randrange(len(window))]
    if kind == "at":
        if not choice.get("at"):
            raise DrillError("recovery_point.at is required for choice at")
        limit = parse_time(str(choice["at"]))
        before = [p for p in ordered if p.time <= limit]
        return before[-1] if before else None
    raise DrillError("unknown recovery point choice %r (latest, random or at)" % kind)


def sample_items(items: Sequence[str], sample: dict[str, Any], seed: int | str | None) -> list[str]:
    """All items, N of them, or a percentage (at least one), chosen with the seed."""
    mode = sample.get("mode", "all")
    ordered = sorted(items)
    if mode == "all":
        return ordered
    if mode == "files":
        count = int(sample.get("files") or 0)
    elif mode == "percent":
        percent = float(sample.get("percent") or 0)
        if not 0 < percent <= 100:
            raise DrillError("sample.percent must be above 0 and at most 100")
        count = max(1, int(round(len(ordered) * percent / 100.0)))
    else:
        raise DrillError("unknown sample mode %r (all, files or percent)" % mode)
    if count < 1:
        raise DrillError("sample.files must be at least 1")
    if count >= len(ordered):
        return ordered
    return sorted(random.Random(seed).sample(ordered, count))


def _norm(path: str) -> str:
    return os.path.normpath(os.path.realpath(path))


def _inside(path: str, parent: str) -> bool:
    return path == parent or parent == "/" or path.startswith(parent.rstrip("/") + "/")


def check_sandbox(sandbox: str, protected: Sequence[str]) -> None:
    """Raise SandboxRefused when sandbox is, is inside, or contains a protected path."""
    if not sandbox or not os.path.isabs(sandbox):
        raise SandboxRefused("the sandbox must be an absolute path, got %r" % sandbox)
    real = _norm(sandbox)
    if real == "/":
        raise SandboxRefused("refusing to restore into / : the sandbox must be a dedicated scratch directory")
    for path in protected:
        if not path:
            continue
        target = _norm(path)
        if _inside(real, target):
            raise SandboxRefused("refusing to restore: sandbox %s is inside protected path %s" % (sandbox, path))
        if _inside(target, real):
            raise SandboxRefused("refusing to restore: sandbox %s contains protected path %s" % (sandbox, path))


def tree_size(root: str) -> tuple[int, int]:
    """Regular files and their bytes below root (symlinks not followed)."""
    files = size = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            try:
                stat = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if not os.path.islink(os.path.join(directory, name)):
                files += 1
                size += stat.st_size
    return files, size


def run_custom(commands: Sequence[dict[str, Any]], target: str) -> Layer:
    """Each command's argv with {sandbox} replaced by the restore directory; no shell."""
    started = time.monotonic()
    outcomes = []
    for command in commands:
        argv = [str(arg).replace("{sandbox}", target) for arg in command.get("argv") or []]
        if not argv:
            return Layer("custom", FAILED, "a custom command has an empty argv", time.monotonic() - started)
        timeout = float(parse_duration(command.get("timeout") or 300, "commands.timeout"))
        result = run_command(argv, env=base_env(command.get("env") or {}), timeout=timeout, cwd=target)
        outcomes.append({"argv": argv, "returncode": result.returncode, "timed_out": result.timed_out,
                         "seconds": round(result.duration, 3)})
        if not result.ok:
            why = "timed out after %.0fs" % timeout if result.timed_out else "exited %d" % result.returncode
            tail = (result.stderr_tail(3) or result.stdout.strip()[-300:]).replace("\n", " | ")
            return Layer("custom", FAILED, "%s %s%s" % (os.path.basename(argv[0]), why, ": " + tail if tail else ""),
                         time.monotonic() - started, {"commands": outcomes})
    return Layer("custom", OK, "%d command(s) succeeded" % len(outcomes), time.monotonic() - started,
                 {"commands": outcomes})


# -- the engine -----------------------------------------------------------------------------

class DrillEngine:
    """Runs one drill of one dataset with a tier's driver; returns the drill record."""

    def __init__(self, spec: DrillSpec, driver: RestoreDriver,
                 now: Callable[[], datetime.datetime] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.driver = driver
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.monotonic = monotonic
        self.layers: list[Layer] = []

    def run(self) -> dict[str, Any]:
        spec = self.spec
        started = self.now()
        run_id = "%s-%s-%s" % (spec.dataset, started.strftime("%Y%m%dT%H%M%SZ"), uuid.uuid4().hex[:8])
        record: dict[str, Any] = {
            "format": RECORD_FORMAT, "drill": spec.drill, "dataset": spec.dataset, "tier": spec.tier,
            "source_host": spec.source_host, "drill_host": spec.drill_host, "run_id": run_id,
            "started": iso(started), "finished": None, "result": None, "reason": "",
            "sandbox": spec.sandbox, "restore_path": None, "recovery_point": None, "newest_point": None,
            "sample": dict(spec.sample), "files": 0, "bytes": 0, "throughput_bytes_per_second": None,
            "rto": {"seconds": None, "target_seconds": spec.rto_seconds, "met": None},
            "rpo": {"seconds": None, "target_seconds": spec.rpo_seconds, "met": None},
            "layers": [],
        }
        try:
            self._drill(record, run_id, started)
        except DrillError as exc:
            record["reason"] = str(exc)
            if not any(layer.status == FAILED for layer in self.layers):
                self.layers.append(Layer("drill", FAILED, str(exc)))
        record["layers"] = [asdict(layer) for layer in self.layers]
        failed = [layer for layer in self.layers if layer.status == FAILED]
        record["result"] = "failed" if failed else "passed"
        if failed and not record["reason"]:
            record["reason"] = "; ".join("%s: %s" % (layer.name, layer.message) for layer in failed)
        record["finished"] = iso(self.now())
        return record

    def _drill(self, record: dict[str, Any], run_id: str, started: datetime.datetime) -> None:
        spec = self.spec
        try:
            check_sandbox(spec.sandbox, spec.protected_paths)
        except SandboxRefused as exc:
            self.layers.append(Layer("sandbox", FAILED, str(exc)))
            raise
        self.layers.append(Layer("sandbox", OK, "%s overlaps none of %d protected path(s)" % (
            spec.sandbox, len(spec.protected_paths))))

        point = self._recovery_point(record, started)
        if point is None:
            return
        checks = list(spec.checks)
        self.layers.extend(self.driver.repository_layers(checks))
        target = os.path.join(spec.sandbox, run_id)
        created_sandbox = not os.path.isdir(spec.sandbox)
        try:
            os.makedirs(target, mode=0o700)
            record["restore_path"] = target
            began = self.monotonic()
            try:
                stats = self.driver.restore(point, target, spec.sample)
            except DrillError as exc:
                self.layers.append(Layer("restore", FAILED, str(exc), self.monotonic() - began))
                self._skip_rest(checks, "the restore failed")
                return
            restore_seconds = self.monotonic() - began if stats.seconds is None else stats.seconds
            files, size = tree_size(target)
            record.update(files=files, bytes=size)
            if stats.sampled:
                record["sample"].update(restored_files=stats.sample_size, of_files=stats.population)
            record["throughput_bytes_per_second"] = round(size / restore_seconds, 1) if restore_seconds > 0 else None
            self.layers.append(Layer("restore", OK, "%d file(s), %d bytes restored in %.2fs%s" % (
                files, size, restore_seconds,
                " (sample of %s of %s files)" % (stats.sample_size, stats.population) if stats.sampled else ""),
                restore_seconds))
            self.layers.extend(self.driver.verify_layers(point, target, checks))
            app_seconds = 0.0
            if "application" in checks:
                began = self.monotonic()
                layer = self.driver.application(point, target)
                layer.seconds = layer.seconds or self.monotonic() - began
                if layer.status != SKIPPED:
                    app_seconds = layer.seconds
                self.layers.append(layer)
            if "custom" in checks or spec.commands:
                if spec.commands:
                    self.layers.append(run_custom(spec.commands, target))
                else:
                    self.layers.append(Layer("custom", SKIPPED, "no custom commands given"))
            self._rto(record, restore_seconds + app_seconds)
        finally:
            if not spec.keep_restore:
                shutil.rmtree(target, ignore_errors=True)
                if created_sandbox:
                    try:
                        os.rmdir(spec.sandbox)
                    except OSError:
                        pass
            record["cleaned"] = not os.path.exists(target)

    def _recovery_point(self, record: dict[str, Any], now: datetime.datetime) -> RecoveryPoint | None:
        spec = self.spec
        began = self.monotonic()
        try:
            points = self.driver.points()
        except DrillError as exc:
            self.layers.append(Layer("recovery_point", FAILED, str(exc), self.monotonic() - began))
            self._skip_rest(spec.checks, "no recovery point could be listed")
            return None
        if not points:
            self.layers.append(Layer("recovery_point", FAILED, "no recovery point of dataset %s" % spec.dataset,
                                     self.monotonic() - began))
            self._skip_rest(spec.checks, "no recovery point")
            return None
        newest = max(points, key=lambda p: (p.time, p.id))
        point = self.driver.choose_point(points, spec.recovery_point, now)
        rpo_age = newest.age_seconds(now)
        record["newest_point"] = {"id": newest.id, "time": iso(newest.time), "age_seconds": round(rpo_age, 1)}
        record["rpo"]["seconds"] = round(rpo_age, 1)
        if point is None:
            self.layers.append(Layer("recovery_point", FAILED, "no recovery point matches %s (%d point(s) exist)" % (
                _describe_choice(spec.recovery_point), len(points)), self.monotonic() - began))
            self._skip_rest(spec.checks, "no recovery point")
            return None
        record["recovery_point"] = {"id": point.id, "short_id": point.short_id, "time": iso(point.time),
                                    "age_seconds": round(point.age_seconds(now), 1),
                                    "choice": _describe_choice(spec.recovery_point), "points": len(points)}
        target = spec.rpo_seconds
        seconds = self.monotonic() - began
        if target is None:
            record["rpo"]["met"] = None
            self.layers.append(Layer("recovery_point", OK, "point %s of %s, newest is %s old (no RPO target)" % (
                point.short_id or point.id[:8], iso(point.time), hours(rpo_age)), seconds))
        elif rpo_age > target:
            record["rpo"]["met"] = False
            self.layers.append(Layer("recovery_point", FAILED, "RPO exceeded: age %s > target %s (newest point %s of %s)" % (
                hours(rpo_age), hours(target), newest.short_id or newest.id[:8], iso(newest.time)), seconds))
        else:
            record["rpo"]["met"] = True
            self.layers.append(Layer("recovery_point", OK, "point %s of %s; newest is %s old, within RPO %s" % (
                point.short_id or point.id[:8], iso(point.time), hours(rpo_age), hours(target)), seconds))
        return point

    def _rto(self, record: dict[str, Any], seconds: float) -> None:
        target = self.spec.rto_seconds
        record["rto"]["seconds"] = round(seconds, 3)
        if target is None:
            self.layers.append(Layer("rto", SKIPPED, "restored in %s, no RTO target" % hours(seconds)))
            return
        met = seconds <= target
        record["rto"]["met"] = met
        if met:
            self.layers.append(Layer("rto", OK, "restored in %s, within RTO %s" % (hours(seconds), hours(target))))
        else:
            self.layers.append(Layer("rto", FAILED, "RTO exceeded: restore took %s > target %s" % (
                hours(seconds), hours(target))))

    def _skip_rest(self, checks: Sequence[str], why: str) -> None:
        for name in checks:
            if name not in [layer.name for layer in self.layers]:
                self.layers.append(Layer(name, SKIPPED, why))


def _describe_choice(choice: dict[str, Any]) -> str:
    kind = choice.get("choice", "latest")
    if kind == "random":
        return "random within %s days (seed %s)" % (choice.get("within_days"), choice.get("seed"))
    if kind == "at":
        return "at or before %s" % choice.get("at")
    return "latest"
