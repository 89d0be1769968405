# -*- coding: utf-8 -*-
# Private to restorable.backup: the job specification of one dataset on a host.
# The controller writes it from the validated policy (the job module stores it as JSON in
# /etc/restorable/DATASET.json); the scheduled job and the on-demand run module load it.
# The host checks its format version and its shape (known keys, types) and converts durations
# and times; it does not judge the values again: the policy schema on the controller did.
# Secrets are NOT in it: passwords and S3 keys live in 0600 files that it names by path.
from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from typing import Any

from ..common.durations import parse_duration
from ..common.hooks import DEFAULT_HOOK_TIMEOUT, HookCommand
from ..evidence.shipper import EvidenceConfig
from .gate import TimeWindow
from .layout import DEFAULT_STATUS_DIR, DatasetFiles, HostLayout, metrics_file

CONFIG_FORMAT = 1
DEFAULT_CHECK_EVERY = 60
DEFAULT_PRUNE_EVERY = 7  # weekly for a nightly job; why: retention.prune_every in the policy schema
DEFAULT_HISTORY = 20
DATASET_TAG_PREFIX = "dataset:"

# Tiers whose jobs may keep their points outside restic: a CDP btrfs job snapshots and replicates,
# an array job snapshots and exports to a tape library.
TIERS_WITHOUT_REPOSITORY = ("cdp", "array")
RETENTION_KEYS = ("last", "hourly", "daily", "weekly", "monthly", "yearly", "max_age")


class ConfigError(Exception):
    """The job configuration is invalid; the message names the file and the field."""


@dataclass
class LoadGateConfig:
    max_load_per_cpu: float
    max_deferral: int | None = None
    check_every: int = DEFAULT_CHECK_EVERY


@dataclass
class CheckConfig:
    """Run `restic check` after every `every` successful backups (0: never)."""

    every: int = 0
    read_data_subset: str | None = None


@dataclass
class JobConfig:
    """Everything one run of one dataset needs, except the secrets themselves."""

    dataset: str
    # A tier that keeps its points outside restic (CDP btrfs snapshots) has no repository: "".
    repository: str = ""
    password_file: str = ""
    paths: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    tier: str = "agent"  # which driver runs the job (runtime/registry.py)
    env_file: str | None = None
    repository_options: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    one_file_system: bool = False
    tags: list[str] = field(default_factory=list)
    retention: dict[str, Any] = field(default_factory=dict)  # restic forget's keep rules
    prune_every: int = DEFAULT_PRUNE_EVERY  # apply them (forget --prune) after every N-th backup
    window: TimeWindow | None = None
    load_gate: LoadGateConfig | None = None
    nice: int | None = None
    ionice_class: str | None = None
    ionice_level: int | None = None
    limit_upload_kbps: int | None = None
    limit_download_kbps: int | None = None
    max_runtime: int | None = None
    pre_hooks: list[HookCommand] = field(default_factory=list)
    post_hooks: list[HookCommand] = field(default_factory=list)
    check: CheckConfig = field(default_factory=CheckConfig)
    ping_url: str | None = None
    status_dir: str = DEFAULT_STATUS_DIR
    metrics_dir: str | None = None
    canary: bool = True
    canary_path: str | None = None
    restic_binary: str = "restic"
    cache_dir: str | None = None
    history: int = DEFAULT_HISTORY
    # A consistency profile as the policy declares it (postgresql, mariadb, sqlite), with each
    # password replaced by a password_file; the consistency package checks the rest.
    consistency: dict[str, Any] | None = None
    # The tier's own settings (the host tier's VM selection, mode, hypervisor): its driver checks them.
    options: dict[str, Any] = field(default_factory=dict)
    # Where each run's status is chained and shipped to (restorable_evidence in the policy).
    evidence: EvidenceConfig | None = None
    # The dataset's RPO: every run records it, so the metrics carry the target an alert compares ages with.
    rpo_seconds: int | None = None
    source: str | None = None  # the file it was loaded from, for messages

    @property
    def files(self) -> DatasetFiles:
        return DatasetFiles(self.status_dir, self.dataset)

    @property
    def status_path(self) -> str:
        return self.files.status

    @property
    def lock_path(self) -> str:
        return self.files.lock

    @property
    def running_path(self) -> str:
        return self.files.running

    @property
    def canary_file(self) -> str:
        return self.canary_path or self.files.canary

    @property
    def metrics_path(self) -> str | None:
        return metrics_file(self.metrics_dir, self.dataset) if self.metrics_dir else None

    @property
    def dataset_tag(self) -> str:
        """The tag that marks this dataset's snapshots in a repository shared by many."""
        return DATASET_TAG_PREFIX + self.dataset

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> "JobConfig":
        """Validate a job configuration document; ConfigError names the bad field."""
        try:
            return _parse(data, source)
        except ValueError as exc:
            raise ConfigError(_where(source) + str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document from_dict reads (what the job module writes)."""
        schedule: dict[str, Any] = {}
        if self.window is not None:
            window = {"start": self.window.start.strftime("%H:%M"), "end": self.window.end.strftime("%H:%M")}
            if self.window.timezone:
                window["timezone"] = self.window.timezone
            schedule["window"] = window
        if self.load_gate is not None:
            gate: dict[str, Any] = {"max_load_per_cpu": self.load_gate.max_load_per_cpu,
                                    "check_every": self.load_gate.check_every}
            if self.load_gate.max_deferral is not None:
                gate["max_deferral"] = self.load_gate.max_deferral
            schedule["load_gate"] = gate
        if self.nice is not None:
            schedule["nice"] = self.nice
        if self.ionice_class:
            schedule["ionice"] = {"class": self.ionice_class}
            if self.ionice_level is not None:
                schedule["ionice"]["level"] = self.ionice_level
        bandwidth = {}
        if self.limit_upload_kbps:
            bandwidth["upload_kbps"] = self.limit_upload_kbps
        if self.limit_download_kbps:
            bandwidth["download_kbps"] = self.limit_download_kbps
        if bandwidth:
            schedule["bandwidth"] = bandwidth
        if self.max_runtime is not None:
            schedule["max_runtime"] = self.max_runtime
        repository: dict[str, Any] = {"url": self.repository, "password_file": self.password_file} if self.repository else {}
        if self.env_file:
            repository["env_file"] = self.env_file
        if self.repository_options:
            repository["options"] = list(self.repository_options)
        doc: dict[str, Any] = {
            "format": CONFIG_FORMAT, "tier": self.tier, "dataset": self.dataset, "host": self.host, "repository": repository,
            "paths": list(self.paths), "excludes": list(self.excludes), "one_file_system": self.one_file_system,
            "tags": list(self.tags), "retention": dict(self.retention, prune_every=self.prune_every), "schedule": schedule,
            "hooks": {"pre": [h.to_dict() for h in self.pre_hooks], "post": [h.to_dict() for h in self.post_hooks]},
            "check": {"every": self.check.every},
            "status_dir": self.status_dir,
            "canary": {"enabled": self.canary},
            "restic": {"binary": self.restic_binary},
            "history": self.history,
        }
        if self.check.read_data_subset:
            doc["check"]["read_data_subset"] = self.check.read_data_subset
        if self.canary_path:
            doc["canary"]["path"] = self.canary_path
        if self.cache_dir:
            doc["restic"]["cache_dir"] = self.cache_dir
        if self.ping_url:
            doc["ping_url"] = self.ping_url
        if self.metrics_dir:
            doc["metrics_dir"] = self.metrics_dir
        if self.consistency:
            doc["consistency"] = dict(self.consistency)
        if self.options:
            doc["options"] = dict(self.options)
        if self.rpo_seconds is not None:
            doc["rpo"] = self.rpo_seconds
        if self.evidence is not None:
            doc["evidence"] = self.evidence.to_dict()
        return doc


def job_config_path(root: str, name: str) -> str:
    """Where the job module writes the configuration of job `name` below the host root."""
    return HostLayout(root).job_config(name)


def load_job_config(path: str) -> JobConfig:
    """Read and validate a job configuration file."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ConfigError("job config %s does not exist" % path) from None
    except OSError as exc:
        raise ConfigError("job config %s cannot be read: %s" % (path, exc.strerror)) from None
    except ValueError as exc:
        raise ConfigError("job config %s is not valid JSON: %s" % (path, exc)) from None
    return JobConfig.from_dict(data, source=path)


def _where(source: str | None) -> str:
    return "job config %s: " % source if source else "job config: "


class FieldReader:
    """Reads a JSON object field by field; unknown keys are errors (they are typos)."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ValueError("%s: expected an object, got %s" % (path or "document", type(data).__name__))
        self.data = data
        self.path = path
        self.seen: set[str] = set()

    def name(self, key: str) -> str:
        return "%s.%s" % (self.path, key) if self.path else key

    def get(self, key: str, kind: type | tuple, default: Any = None, required: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise ValueError("%s is required" % self.name(key))
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ValueError("%s: expected %s, got a boolean" % (self.name(key), _kind_name(kinds)))
        if not isinstance(value, kinds):
            raise ValueError("%s: expected %s, got %s" % (self.name(key), _kind_name(kinds), type(value).__name__))
        return value

    def sub(self, key: str) -> "FieldReader":
        return FieldReader(self.get(key, dict, {}), self.name(key))

    def strings(self, key: str) -> list[str]:
        values = self.get(key, list, [])
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise ValueError("%s[%d]: expected a string, got %s" % (self.name(key), index, type(value).__name__))
        return list(values)

    def duration(self, key: str, default: int | None = None) -> int | None:
        value = self.get(key, (str, int, float))
        if value is None:
            return default
        return parse_duration(value, self.name(key))

    def done(self, ignored: tuple = ()) -> None:
        unknown = sorted(set(self.data) - self.seen - set(ignored))
        if unknown:
            raise ValueError("%s: unknown option %s" % (self.path or "document", ", ".join(unknown)))


def _kind_name(kinds: tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list", dict: "an object"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _parse(data: Any, source: str | None) -> JobConfig:
    top = FieldReader(data, "")
    fmt = top.get("format", int, CONFIG_FORMAT)
    if fmt != CONFIG_FORMAT:
        raise ValueError("format %r is not supported by this agent (expected %d)" % (fmt, CONFIG_FORMAT))
    tier = top.get("tier", str, "agent")
    repo = top.sub("repository")
    needed = tier not in TIERS_WITHOUT_REPOSITORY or bool(repo.data)
    config = JobConfig(dataset=top.get("dataset", str, required=True), repository=repo.get("url", str, required=needed) or "",
                       password_file=repo.get("password_file", str, required=needed) or "", paths=top.strings("paths"),
                       env_file=repo.get("env_file", str), repository_options=repo.strings("options"), source=source)
    repo.done()
    config.tier = tier
    config.host = top.get("host", str, config.host)
    config.excludes = top.strings("excludes")
    config.one_file_system = top.get("one_file_system", bool, False)
    config.tags = top.strings("tags")
    _parse_retention(top.sub("retention"), config)
    _parse_schedule(top.sub("schedule"), config)

    hooks = top.sub("hooks")
    config.pre_hooks = _parse_hooks(hooks, "pre")
    config.post_hooks = _parse_hooks(hooks, "post")
    hooks.done()

    check = top.sub("check")
    config.check = CheckConfig(check.get("every", int, 0), check.get("read_data_subset", str))
    check.done()

    consistency = top.get("consistency", dict)
    if consistency is not None and not isinstance(consistency.get("type"), str):
        raise ValueError("consistency.type: expected the profile type (postgresql, mariadb, sqlite)")
    config.consistency = consistency
    config.options = top.get("options", dict, {})
    ping_url = top.get("ping_url", str)
    config.ping_url = ping_url.rstrip("/") if ping_url else None
    config.status_dir = top.get("status_dir", str, DEFAULT_STATUS_DIR)
    config.metrics_dir = top.get("metrics_dir", str)

    canary = top.sub("canary")
    config.canary = canary.get("enabled", bool, True)
    config.canary_path = canary.get("path", str)
    canary.done()

    restic = top.sub("restic")
    config.restic_binary = restic.get("binary", str, config.restic_binary)
    config.cache_dir = restic.get("cache_dir", str)
    restic.done()

    config.history = top.get("history", int, DEFAULT_HISTORY)
    config.rpo_seconds = top.duration("rpo")
    evidence = top.get("evidence", dict)
    config.evidence = EvidenceConfig.from_dict(evidence) if evidence is not None else None
    top.done()
    return config


def _parse_retention(fields: FieldReader, config: JobConfig) -> None:
    retention: dict[str, Any] = {}
    for key in RETENTION_KEYS:
        value = fields.duration(key) if key == "max_age" else fields.get(key, int)
        if value is not None:
            retention[key] = value
    prune_every = fields.get("prune_every", int, DEFAULT_PRUNE_EVERY)
    fields.done()
    config.retention, config.prune_every = retention, prune_every


def _parse_schedule(fields: FieldReader, config: JobConfig) -> None:
    window = fields.sub("window")
    if window.data:
        start = window.get("start", str, required=True)
        end = window.get("end", str, required=True)
        timezone = window.get("timezone", str)
        window.done()
        config.window = TimeWindow.parse(start, end, timezone, "schedule.window")
    gate = fields.sub("load_gate")
    if gate.data:
        config.load_gate = LoadGateConfig(float(gate.get("max_load_per_cpu", (int, float), required=True)),
                                          gate.duration("max_deferral"),
                                          gate.duration("check_every", DEFAULT_CHECK_EVERY) or 1)
        gate.done()
    config.nice = fields.get("nice", int)
    ionice = fields.sub("ionice")
    if ionice.data:
        config.ionice_class, config.ionice_level = ionice.get("class", str, required=True), ionice.get("level", int)
        ionice.done()
    bandwidth = fields.sub("bandwidth")
    config.limit_upload_kbps = bandwidth.get("upload_kbps", int)
    config.limit_download_kbps = bandwidth.get("download_kbps", int)
    bandwidth.done()
    config.max_runtime = fields.duration("max_runtime")
    # calendar and jitter belong to the timer (see converge/units.py); accepted so the job
    # module can pass the policy's schedule object as it is.
    fields.done(ignored=("calendar", "jitter"))


def _parse_hooks(fields: FieldReader, phase: str) -> list[HookCommand]:
    hooks = []
    for index, item in enumerate(fields.get(phase, list, [])):
        hook = FieldReader(item, "hooks.%s[%d]" % (phase, index))
        argv = hook.strings("argv")
        timeout = hook.duration("timeout", DEFAULT_HOOK_TIMEOUT)
        env = hook.get("env", dict, {})
        hook.done()
        hooks.append(HookCommand(list(argv), timeout or DEFAULT_HOOK_TIMEOUT, {str(k): str(v) for k, v in env.items()}))
    return hooks
