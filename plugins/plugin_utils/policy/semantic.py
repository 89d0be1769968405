# -*- coding: utf-8 -*-
# Private to restorable.backup: checks the schema cannot express, run on schema-valid documents.
# Each check is a small method yielding Problems; PolicyChecks.run() lists them all.
from __future__ import annotations

import functools
import math
import posixpath
import re
import zoneinfo

from .calendar_event import CalendarError, Window, calendar_timezone, largest_gap_minutes
from ...module_utils.common.durations import format_duration, parse_duration
from .problems import Problem
from ..tiers.array import DEFAULT_CHAIN_LENGTH, barcode_prefix

REPOSITORY_TYPES = ("local", "sftp", "s3")
# Profiles that hold the application still for as long as a copy runs: only snapshot tiers can
# keep that short, so file-level tiers must stream instead.
SNAPSHOT_ONLY_PROFILES = {("fsfreeze", None), ("postgresql", "backup_api"), ("mariadb", "read_lock")}
SNAPSHOT_TIERS = ("cdp", "array")
DAY = 86400
# What the array tier runs in this version; the schema names more, validation refuses the rest.
ARRAY_PROVIDERS = ("btrfs",)
TAPE_DRIVERS = ("directory", "s3")
VAULT_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$(?!\n)")


class PolicyChecks:
    """Cross-field checks for one host's merged policy."""

    def __init__(self, host: str, policy: dict, inventory_hosts: frozenset) -> None:
        self.host = host
        self.policy = policy
        self.inventory_hosts = inventory_hosts
        self.targets = policy.get("restorable_targets", {})
        self.datasets = policy.get("restorable_datasets", {})
        self.schedules = policy.get("restorable_schedules", {})
        self.profiles = policy.get("restorable_consistency_profiles", {})
        self.drills = policy.get("restorable_drills", {})
        self.sites = policy.get("restorable_sites", {})

    def run(self) -> list:
        problems: list = []
        for check in (
            self.check_site,
            self.check_target_hosts,
            self.check_dataset_references,
            self.check_schedules_meet_rpo,
            self.check_windows,
            self.check_time_zones,
            self.check_drills,
            self.check_retention_covers_drills,
            self.check_tape_chains,
            self.check_array_runs,
            self.check_retention_cadence,
            self.check_evidence,
        ):
            problems.extend(check())
        return problems

    def _problem(self, path: tuple, message: str, severity: str = "error") -> Problem:
        return Problem(self.host, path, message, severity)

    def check_site(self):
        site = self.policy.get("restorable_site")
        if site is not None and site not in self.sites:
            yield self._problem(("restorable_site",), _unknown("site profile", site, self.sites, "restorable_sites"))

    def check_evidence(self):
        """restorable_evidence ships to an S3 target whose Object Lock keeps records unchangeable."""
        evidence = self.policy.get("restorable_evidence")
        if not evidence:
            return
        path, name = ("restorable_evidence", "target"), evidence["target"]
        target = self.targets.get(name)
        if target is None:
            yield self._problem(path, _unknown("target", name, self.targets, "restorable_targets"))
        elif target["type"] != "s3":
            yield self._problem(path, "target %s is of type %s; evidence needs an s3 target with object_lock" % (name, target["type"]))
        elif "object_lock" not in target:
            yield self._problem(path, "target %s has no object_lock: without it a host's keys could delete or replace "
                                "evidence records" % name)
        elif target.get("scoped_credentials"):
            # The per-host users may write below the target's prefix/HOST only; evidence goes to PREFIX/HOST.
            yield self._problem(path, "target %s has scoped_credentials: its per-host users cannot write evidence below "
                                "%s/%s/; give the evidence target keys of its own (docs/evidence.md)"
                                % (name, evidence.get("prefix") or "evidence", self.host), "warning")

    def check_target_hosts(self):
        for name, target in self.targets.items():
            host = target.get("host")
            if target["type"] in ("replica", "tape_library") and host and host not in self.inventory_hosts:
                yield self._problem(("restorable_targets", name, "host"), "host %s is not in the inventory" % host)

    def check_dataset_references(self):
        for name, dataset in self.datasets.items():
            base = ("restorable_datasets", name)
            for index, target in enumerate(dataset.get("targets", [])):
                yield from self._target_ref(base + ("targets", index), target, REPOSITORY_TYPES)
            for key in ("schedule", "base_backup_schedule"):
                if key in dataset and dataset[key] not in self.schedules:
                    yield self._problem(base + (key,), _unknown("schedule", dataset[key], self.schedules, "restorable_schedules"))
            if "consistency" in dataset:
                yield from self._profile_ref(base, dataset)
            if "replica" in dataset:
                yield from self._target_ref(base + ("replica",), dataset["replica"], ("replica",))
            if "wal_archive" in dataset:
                yield from self._target_ref(base + ("wal_archive",), dataset["wal_archive"], REPOSITORY_TYPES)
            if dataset.get("proxy_host") and dataset["proxy_host"] not in self.inventory_hosts:
                yield self._problem(base + ("proxy_host",), "host %s is not in the inventory" % dataset["proxy_host"])
            if "export" in dataset:
                yield from self._export_ref(base + ("export",), dataset["export"])
            yield from self._source_fits_tier(base, dataset)

    def _target_ref(self, path: tuple, name: str, kinds: tuple):
        if name not in self.targets:
            yield self._problem(path, _unknown("target", name, self.targets, "restorable_targets"))
        elif self.targets[name]["type"] not in kinds:
            yield self._problem(path, "target %s is of type %s, expected %s" % (name, self.targets[name]["type"], " or ".join(kinds)))

    def _profile_ref(self, base: tuple, dataset: dict):
        name = dataset["consistency"]
        if name not in self.profiles:
            yield self._problem(base + ("consistency",), _unknown("consistency profile", name, self.profiles, "restorable_consistency_profiles"))
            return
        profile = self.profiles[name]
        kind = profile["type"]
        mode = (profile.get(kind) or {}).get("mode") if kind in ("postgresql", "mariadb") else None
        if (kind, mode) in SNAPSHOT_ONLY_PROFILES and dataset["tier"] not in SNAPSHOT_TIERS:
            label = kind + (" mode %s" % mode if mode else "")
            yield self._problem(
                base + ("consistency",),
                "profile %s (%s) holds the application for a snapshot and needs tier cdp or array, not %s" % (name, label, dataset["tier"]),
            )

    def _export_ref(self, path: tuple, export: dict):
        library = export["library"]
        found = list(self._target_ref(path + ("library",), library, ("tape_library",)))
        yield from found
        if found:
            return
        target = self.targets[library]
        if export["pool"] not in target["pools"]:
            yield self._problem(path + ("pool",), _unknown("pool", export["pool"], target["pools"], "restorable_targets.%s.pools" % library))
        if target.get("host") and target["host"] != self.host:
            # The library's files, catalog and lock live where the export runs: two hosts would
            # each keep a catalog of their own over the same cartridges.
            yield self._problem(path + ("library",), "library %s names host %s, but a library runs on the host that exports "
                                "to it (%s) in this version: drop its host or set it to %s" % (library, target["host"], self.host, self.host))

    def _source_fits_tier(self, base: tuple, dataset: dict):
        source = dataset.get("source", {})
        if source.get("type") == "btrfs" and "wal_archive" in dataset:
            yield self._problem(base + ("wal_archive",), "a WAL archive applies to a postgresql source, not btrfs")
        if source.get("type") == "postgresql" and "replica" in dataset:
            yield self._problem(base + ("replica",), "btrfs replicas apply to a btrfs source, not postgresql")
        if source.get("type") == "postgresql" and "wal_archive" not in dataset:
            yield self._problem(base, "a postgresql CDP dataset needs wal_archive (where WAL segments go)")

    def _interval_seconds(self, dataset: dict):
        """Largest time between recovery points, or None when it cannot be known."""
        if dataset["tier"] == "cdp":
            return dataset["interval_minutes"] * 60
        schedule = self.schedules.get(dataset.get("schedule"))
        if schedule is None:
            return None
        window = schedule.get("window") or {}
        return _run_gap_seconds(schedule["calendar"], window.get("start"), window.get("end"), window.get("timezone"), schedule.get("jitter"))

    def _calendar_problems(self, path: tuple, calendar: str):
        """A calendar that cannot be read, or that never fires at all."""
        try:
            fires = largest_gap_minutes(calendar) is not None
        except CalendarError as exc:
            yield self._problem(path, "%s %r: %s" % (exc.verb, calendar, exc))
            return
        if not fires:
            yield self._problem(path, "calendar %r never fires" % calendar)

    def check_schedules_meet_rpo(self):
        for name, schedule in self.schedules.items():
            yield from self._calendar_problems(("restorable_schedules", name, "calendar"), schedule["calendar"])
        for name, dataset in self.datasets.items():
            if "rpo" not in dataset or not dataset.get("enabled", True):
                continue
            yield from self._meets_rpo(("restorable_datasets", name, "rpo"), dataset, dataset["rpo"])

    def _meets_rpo(self, path: tuple, dataset: dict, rpo: str, subject: str = ""):
        """subject prefixes the message when the path alone does not say which dataset it is about."""
        interval = self._interval_seconds(dataset)
        if interval is None:
            return
        if dataset["tier"] == "cdp":
            if interval > parse_duration(rpo):
                yield self._problem(path, subject + "RPO %s cannot be met: recovery points can be up to %s apart (interval_minutes %d)"
                                    % (rpo, format_duration(interval), dataset["interval_minutes"]))
        elif interval == math.inf:
            where = " inside its window" if _window(self.schedules[dataset["schedule"]]) else ""
            yield self._problem(path, subject + "the schedule never starts a run%s, so no RPO can be met" % where)
        elif interval > parse_duration(rpo):
            yield self._problem(
                path,
                subject + "RPO %s cannot be met: runs can be up to %s apart (schedule, window and jitter)" % (rpo, format_duration(interval)),
            )

    def check_windows(self):
        for name, schedule in self.schedules.items():
            if "window" not in schedule:
                continue
            base = ("restorable_schedules", name)
            window = Window.from_policy(schedule["window"])
            if "jitter" in schedule and parse_duration(schedule["jitter"]) > window.length_minutes * 60:
                yield self._problem(
                    base + ("jitter",),
                    "jitter %s is longer than the window %s-%s (%s): spread starts would fall outside it"
                    % (schedule["jitter"], schedule["window"]["start"], schedule["window"]["end"], format_duration(window.length_minutes * 60)),
                )
            compared = _window(schedule)  # None when the calendar's times are in a zone of their own
            try:
                # A calendar that never fires at all is reported at the calendar, not blamed on the window.
                if (
                    compared is not None
                    and largest_gap_minutes(schedule["calendar"]) is not None
                    and largest_gap_minutes(schedule["calendar"], compared) is None
                ):
                    yield self._problem(
                        base + ("window",),
                        "calendar %r never fires inside the window %s-%s" % (schedule["calendar"], schedule["window"]["start"], schedule["window"]["end"]),
                    )
            except CalendarError:
                pass  # reported by check_schedules_meet_rpo
        for name, site in self.sites.items():
            if "window" in site and Window.from_policy(site["window"]).length_minutes < 60:
                yield self._problem(("restorable_sites", name, "window"), "a window shorter than 1h leaves no time for a backup")

    def check_time_zones(self):
        zones = _known_time_zones()
        if not zones:
            return  # no time zone database on the controller: nothing to compare with
        places = []
        for name, schedule in self.schedules.items():
            base = ("restorable_schedules", name)
            places.append((base + ("window", "timezone"), schedule.get("window", {}).get("timezone")))
            places.append((base + ("calendar",), _calendar_zone(schedule["calendar"])))
        for name, site in self.sites.items():
            base = ("restorable_sites", name)
            places.append((base + ("timezone",), site.get("timezone")))
            places.append((base + ("window", "timezone"), site.get("window", {}).get("timezone")))
        for name, drill in self.drills.items():
            places.append((("restorable_drills", name, "calendar"), _calendar_zone(drill["calendar"]) if "calendar" in drill else None))
        for path, zone in places:
            if zone is not None and zone not in zones:
                yield self._problem(path, "unknown time zone %s" % zone)

    def check_drills(self):
        for name, drill in self.drills.items():
            base = ("restorable_drills", name)
            if drill.get("drill_host") and drill["drill_host"] not in self.inventory_hosts:
                yield self._problem(base + ("drill_host",), "host %s is not in the inventory" % drill["drill_host"])
            if "calendar" in drill:
                yield from self._calendar_problems(base + ("calendar",), drill["calendar"])
            for index, dataset_name in enumerate(drill["datasets"]):
                if dataset_name not in self.datasets:
                    yield self._problem(base + ("datasets", index), _unknown("dataset", dataset_name, self.datasets, "restorable_datasets"))
                elif self.datasets[dataset_name]["tier"] == "array" and "export" not in self.datasets[dataset_name]:
                    yield self._problem(base + ("datasets", index), "dataset %s exports to no tape library: an array drill restores "
                                        "from tape (give the dataset an export)" % dataset_name)
                elif "rpo" in drill:
                    yield from self._meets_rpo(base + ("rpo",), self.datasets[dataset_name], drill["rpo"], "dataset %s: " % dataset_name)
            if "sandbox" in drill:
                yield from self._sandbox_outside_protected(base + ("sandbox",), drill["sandbox"])

    def _sandbox_outside_protected(self, path: tuple, sandbox: str):
        for name, dataset in self.datasets.items():
            for protected in _protected_paths(dataset):
                if _inside(sandbox, protected) or _inside(protected, sandbox):
                    yield self._problem(path, "sandbox %s overlaps %s, protected by dataset %s: a restore must never write there" % (sandbox, protected, name))

    def check_retention_covers_drills(self):
        for name, drill in self.drills.items():
            look_back = drill.get("recovery_point", {}).get("within_days")
            if look_back is None:
                continue
            for dataset_name in drill["datasets"]:
                dataset = self.datasets.get(dataset_name)
                if dataset is None:
                    continue
                horizon = self._retention_horizon(dataset)
                if horizon is not None and horizon < look_back * DAY:
                    yield self._problem(
                        ("restorable_datasets", dataset_name, "retention"),
                        "keeps points for about %s, less than the %d-day look-back of drill %s" % (format_duration(horizon), look_back, name),
                    )

    def _retention_horizon(self, dataset: dict):
        """How far back the oldest kept point reaches, roughly, in seconds."""
        retention = dataset["retention"]
        spans = [  # grandfather-father-son and last: the oldest point any rule keeps

            retention.get("hourly", 0) * 3600,
            retention.get("daily", 0) * DAY,
            retention.get("weekly", 0) * 7 * DAY,
            retention.get("monthly", 0) * 30 * DAY,
            retention.get("yearly", 0) * 365 * DAY,
        ]
        interval = self._interval_seconds(dataset)
        if retention.get("last") and interval not in (None, math.inf):
            spans.append(retention["last"] * interval)
        horizon = max(spans) if any(spans) else None
        if "max_age" in retention:
            max_age = parse_duration(retention["max_age"])
            if dataset["tier"] == "agent":  # restic --keep-within: keeps every newer point besides the counts
                horizon = max_age if horizon is None else max(horizon, max_age)
            else:  # drops every older point, whatever the counts keep
                horizon = max_age if horizon is None else min(horizon, max_age)
        return horizon

    def check_retention_cadence(self):
        # prune_every paces restic's forget --prune; snapshot tiers apply their retention each run.
        for name, dataset in self.datasets.items():
            if dataset["tier"] != "agent" and "prune_every" in dataset.get("retention", {}):
                yield self._problem(("restorable_datasets", name, "retention", "prune_every"),
                                    "applies to agent datasets only; the %s tier ignores it" % dataset["tier"], "warning")

    def check_tape_chains(self):
        for name, dataset in self.datasets.items():
            export = dataset.get("export")
            library = self.targets.get(export["library"]) if export else None
            if not library or library["type"] != "tape_library" or export["pool"] not in library["pools"]:
                continue
            interval = self._interval_seconds(dataset)
            if interval in (None, math.inf):
                continue
            chain_seconds = export.get("chain_length", DEFAULT_CHAIN_LENGTH) * export.get("every", 1) * interval
            retention_days = library["pools"][export["pool"]]["retention_days"]
            if chain_seconds > retention_days * DAY:
                yield self._problem(
                    ("restorable_datasets", name, "export", "chain_length"),
                    "a chain spans about %s, longer than the %d-day retention of pool %s: its full would expire before its last incremental"
                    % (format_duration(chain_seconds), retention_days, export["pool"]),
                )

    def check_array_runs(self):
        """What the schema accepts but this version cannot run is refused, never planned half."""
        for name, dataset in self.datasets.items():
            provider = dataset.get("provider") if dataset["tier"] == "array" else None
            if provider and provider not in ARRAY_PROVIDERS:
                yield self._problem(("restorable_datasets", name, "provider"), "provider %s is not available in this version: only %s "
                                    "runs; see docs/array-tier.md" % (provider, ", ".join(ARRAY_PROVIDERS)))
        for name, target in self.targets.items():
            if target["type"] != "tape_library":
                continue
            base = ("restorable_targets", name)
            if target["driver"] not in TAPE_DRIVERS:
                yield self._problem(base + ("driver",), "driver %s is not available in this version: only %s "
                                    "run; see docs/tape.md" % (target["driver"], " and ".join(TAPE_DRIVERS)))
            destination = (target.get("vault") or {}).get("destination")
            if destination is not None and not VAULT_NAME.match(destination):
                yield self._problem(base + ("vault", "destination"), "%r: a vault is named with 1-64 letters, digits, '_', '.' or '-' "
                                    "(the library keeps its cartridges below that name)" % destination)
            yield from self._barcode_prefixes(base, target["pools"])

    def _barcode_prefixes(self, base: tuple, pools: dict):
        """Barcodes are never reused: two pools of one library must not draw them from one prefix."""
        owners: dict = {}
        for pool_name in sorted(pools):
            prefix = barcode_prefix(pool_name, pools[pool_name])
            if prefix in owners:
                derived = "" if "barcode_prefix" in pools[pool_name] else " (taken from the pool's name)"
                yield self._problem(base + ("pools", pool_name, "barcode_prefix"), "barcode prefix %s is also pool %s's%s: give each "
                                    "pool a barcode_prefix of its own" % (prefix, owners[prefix], derived))
            owners.setdefault(prefix, pool_name)


def _unknown(kind: str, name: str, known: dict, where: str) -> str:
    names = ", ".join(sorted(known)) or "none defined"
    return "%s %s is not defined in %s (known: %s)" % (kind, name, where, names)


def _protected_paths(dataset: dict) -> list:
    paths = list(dataset.get("paths", []))
    source = dataset.get("source", {})
    paths.extend(source[key] for key in ("subvolume", "snapshot_dir", "data_directory") if key in source)
    paths.extend(v for v in dataset.get("volumes", []) if v.startswith("/"))
    return paths


def _inside(path: str, parent: str) -> bool:
    path, parent = _normalised(path), _normalised(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _normalised(path: str) -> str:
    """normpath, and '//x' as '/x': POSIX leaves a leading '//' to the implementation, Linux reads it as '/'."""
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return posixpath.normpath(path)


def _window(schedule: dict):
    """The window a schedule's start times are compared with, or None: none is set, or the calendar
    names a time zone of its own (its times are not wall times of the window's zone)."""
    window = schedule.get("window")
    if window is None:
        return None
    return _compared_window(schedule["calendar"], window["start"], window["end"], window.get("timezone"))


# Hosts of a group share their schedules: both answers below are worked out once per schedule.
@functools.lru_cache(maxsize=4096)
def _compared_window(calendar: str, start: str | None, end: str | None, zone: str | None):
    if start is None:
        return None
    own_zone = _calendar_zone(calendar)
    if own_zone is not None and own_zone != zone:
        return None
    return Window.from_policy({"start": start, "end": end})


@functools.lru_cache(maxsize=4096)
def _run_gap_seconds(calendar: str, start: str | None, end: str | None, zone: str | None, jitter: str | None):
    """Largest time between two runs of a schedule, jitter included: seconds, inf if it never runs, None if unreadable."""
    try:
        gap = largest_gap_minutes(calendar, _compared_window(calendar, start, end, zone))
    except CalendarError:
        return None
    if gap is None:
        return math.inf
    return gap * 60 + (parse_duration(jitter) if jitter else 0)


@functools.lru_cache(maxsize=4096)
def _calendar_zone(calendar: str):
    try:
        return calendar_timezone(calendar)
    except CalendarError:
        return None  # reported as unreadable


@functools.lru_cache(maxsize=1)
def _known_time_zones() -> frozenset:
    """IANA names the controller knows; empty when it has no time zone database (then nothing is checked)."""
    try:
        return frozenset(zoneinfo.available_timezones())
    except (OSError, ValueError):
        return frozenset()
