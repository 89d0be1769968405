# -*- coding: utf-8 -*-
# Private to restorable.backup: the array tier's planner. An array dataset gets one job on its
# schedule (a consistency-group snapshot of all its volumes in one quiesce window, storage-host
# retention, export of every Nth snapshot to a tape library as a full or an incremental of its
# chain); the host gets the configuration of each library its datasets export to (and an S3
# library's credentials), and restore drills that read the chain back from tape into a sandbox.
from __future__ import annotations

import posixpath
import re
from typing import Any

from ansible_collections.restorable.backup.plugins.module_utils.common.durations import format_duration, parse_duration
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import CONFIG_DIR, DEFAULT_STATUS_DIR, HostLayout
from ansible_collections.restorable.backup.plugins.plugin_utils.site_profile import SiteProfile

from ..policy.calendar_event import CalendarError, largest_gap_minutes
from .agent_drills import AgentDrills, job_name, safe_name
from .agent_jobs import AgentPlanner
from .base import Copy, Fleet, TierPlanner
from .cdp import thinning_seconds

TIER = "array"
LIBRARY_FORMAT = 1
DEFAULT_EVERY = 1
DEFAULT_CHAIN_LENGTH = 7  # a full and 6 incrementals
KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
# Tape vendors count in powers of ten.
BYTES_PER = {"capacity_gb": 10 ** 9, "capacity_mb": 10 ** 6}
ARCHIVE_STORAGE_CLASS = "DEEP_ARCHIVE"
DEFAULT_ENDPOINT = "https://s3.amazonaws.com"
# The drill layers of tiers/array/drill.py; the policy's integrity is its catalog and media layers.
ARRAY_CHECKS = ["catalog", "media", "freshness", "content"]
LAYERS_OF_CHECK = {"integrity": ["catalog", "media"]}
# Profiles whose restored volumes hold a server the drill starts (tiers/array/drill.py).
APPLICATION_PROFILES = ("postgresql",)


def library_config_path(root: str, library: str) -> str:
    """Where a library's configuration lives on the host that runs it."""
    return posixpath.join(HostLayout(root).below(CONFIG_DIR + "/tape"), library + ".json")


def library_state_dir(root: str, library: str, target: dict) -> str:
    """Catalog, inventory and lock: beside the cartridges of a directory library, on the host for S3."""
    if target["driver"] == "directory":
        return target["path"]
    return posixpath.join(HostLayout(root).below(DEFAULT_STATUS_DIR + "/tape"), library)


def capacity_bytes(media: dict) -> int:
    key = "capacity_gb" if "capacity_gb" in media else "capacity_mb"
    return int(media[key]) * BYTES_PER[key]


def barcode_prefix(pool_name: str, pool: dict) -> str:
    """The pool's own prefix, else one from its name as the library reads it (storage/tape/config.py);
    validation makes them distinct within a library."""
    return pool.get("barcode_prefix") or re.sub(r"[^A-Z0-9]", "", pool_name.upper())[:2] or "P"


def export_settings(export: dict) -> tuple[int, int]:
    return int(export.get("every") or DEFAULT_EVERY), int(export.get("chain_length") or DEFAULT_CHAIN_LENGTH)


class ArrayJobs(AgentPlanner):
    """Jobs and library configurations of one host's array datasets."""

    tier = TIER

    def __init__(self, host: str, policy: dict, root: str = "/", site: SiteProfile | None = None) -> None:
        super().__init__(host, policy, root, site)
        self.root = root

    # -- jobs ---------------------------------------------------------------------------------

    def jobs(self) -> list:
        return [self._job(name, dataset) for name, dataset in self.tier_datasets()]

    def _job(self, name: str, dataset: dict) -> dict[str, Any]:
        schedule = self.schedules[dataset["schedule"]]
        config: dict[str, Any] = {
            "format": 1, "tier": TIER, "dataset": name, "host": self.host, "paths": [],
            "tags": list(dataset.get("tags", [])), "hooks": self._hooks(dataset),
            # Snapshots stay on the storage host; the export to a library has no rate limit yet.
            "schedule": self.site.gate(schedule, capped=False), "status_dir": self.status_dir, "metrics_dir": self.metrics_dir,
            # A point every few minutes: the group snapshot's manifest says when it was taken.
            "canary": {"enabled": False},
            "options": self.options(name, dataset),
        }
        if dataset.get("rpo"):  # the target the metrics export beside the points' age
            config["rpo"] = parse_duration(dataset["rpo"])
        if dataset.get("ping_url"):
            config["ping_url"] = dataset["ping_url"]
        consistency = self._consistency(dataset)
        if consistency:
            config["consistency"] = consistency
        return {"name": name, "dataset": name, "target": (dataset.get("export") or {}).get("library"),
                "calendar": schedule["calendar"], "delay_seconds": self.site.delay_seconds(name, schedule), "config": config}

    def options(self, name: str, dataset: dict) -> dict[str, Any]:
        """The job configuration's options, as tiers/array on the host reads them."""
        retention = dataset["retention"]
        options: dict[str, Any] = {
            "volumes": list(dataset["volumes"]), "provider": dataset["provider"], "snapshot_dir": dataset.get("snapshot_dir"),
            "retention": {k: int(v) for k, v in retention.items() if k in KEEP_RULES},
            "thinning": thinning_seconds(retention),
        }
        if retention.get("max_age"):
            options["retention"]["max_age"] = parse_duration(retention["max_age"])
        if dataset.get("rpo"):
            options["rpo"] = parse_duration(dataset["rpo"])
        if dataset.get("export"):
            export = dataset["export"]
            every, chain_length = export_settings(export)
            options["export"] = {"library_config": library_config_path(self.root, export["library"]), "pool": export["pool"],
                                 "every": every, "chain_length": chain_length}
        return options

    def consistency(self, dataset: dict) -> dict[str, Any]:
        """The profile as the job has it (passwords as files), for a drill's application layer."""
        return self._consistency(dataset) or {"type": "none"}

    # -- libraries ------------------------------------------------------------------------------

    def used_libraries(self) -> list[str]:
        return sorted({d["export"]["library"] for _n, d in self.tier_datasets() if d.get("export")})

    def libraries(self) -> list[dict[str, Any]]:
        """What the tape_library module converges per library this host's exports use."""
        return [self.library(name) for name in self.used_libraries()]

    def library(self, name: str) -> dict[str, Any]:
        target = self.targets[name]
        config: dict[str, Any] = {
            "format": LIBRARY_FORMAT, "name": name, "driver": target["driver"],
            "state_dir": library_state_dir(self.root, name, target),
            "slots": int(target["slots"]), "drives": int(target["drives"]),
            "media": {"type": target["media"]["type"], "capacity_bytes": capacity_bytes(target["media"])},
            "pools": {pool: {"retention_days": int(p["retention_days"]), "barcode_prefix": barcode_prefix(pool, p),
                             "worm": bool(p.get("worm", False)), "vault": bool(p.get("vault", False))}
                      for pool, p in sorted(target["pools"].items())},
        }
        if target.get("vault"):
            config["vault"] = {"destination": target["vault"]["destination"]}
        files = []
        if target["driver"] == "directory":
            config["path"] = target["path"]
        else:
            env_file = self.credentials_file(name)
            # One prefix per host: two hosts exporting to one bucket keep catalogs and barcodes apart.
            config["s3"] = {"endpoint": target.get("endpoint", DEFAULT_ENDPOINT).rstrip("/"), "bucket": target["bucket"],
                            "region": target.get("region") or "us-east-1", "prefix": "%s/%s" % (name, safe_name(self.host)),
                            "env_file": env_file, "archive_storage_class": ARCHIVE_STORAGE_CLASS}
            keys = {"AWS_ACCESS_KEY_ID": target["access_key_id"], "AWS_SECRET_ACCESS_KEY": target["secret_access_key"]}
            files.append({"path": env_file, "content": "".join("%s=%s\n" % kv for kv in sorted(keys.items()))})
        return {"name": name, "config_path": library_config_path(self.root, name), "config": config, "files": files}

    def credentials_file(self, library: str) -> str:
        return "%s/tape-%s.env" % (self.secrets_dir, library)


class ArrayDrills(AgentDrills):
    """Drill entries of a host's array datasets: the point's chain read back from the library,
    base first, and received into a sandbox on the host that runs the library (where its
    catalog and cartridges are), whatever drill_host the drill names for other tiers."""

    def _entry(self, name: str, drill: dict, dataset_name: str, dataset: dict) -> dict[str, Any]:
        source, planner = self.source, self.planner
        export = dataset.get("export") or {}
        profile = planner.consistency(dataset)
        recovery_point = dict(drill.get("recovery_point") or {"choice": "latest"})
        params: dict[str, Any] = {
            "drill": name, "dataset": dataset_name, "tier": TIER, "source_host": source, "drill_host": source,
            "library_config": library_config_path(planner.root, export["library"]) if export else None,
            "group": dataset_name, "volumes": list(dataset["volumes"]), "expect_volumes": len(dataset["volumes"]),
            "point": "latest", "recovery_point": recovery_point, "recall": True,
            "checks": self._checks(drill, profile),
            "commands": [dict(c) for c in drill.get("commands") or []],
            "sandbox": drill.get("sandbox") or posixpath.join(posixpath.dirname(dataset["volumes"][0]) or "/", ".restorable-drill"),
            "protected_paths": self._protected_paths(source) + list(dataset["volumes"]),
            "profile": profile,
        }
        for measure in ("rto", "rpo"):
            if drill.get(measure) or dataset.get(measure):
                params[measure] = drill.get(measure) or dataset.get(measure)
        return {"name": job_name(source, name), "calendar": drill.get("calendar"), "target": export.get("library"),
                "repository": {"url": "", "options": [], "password": "", "env": {}, "password_file": None, "env_file": None},
                "secrets": [], "status_file": None, "params": params}

    @staticmethod
    def _checks(drill: dict, profile: dict) -> list[str]:
        """The drill's checks as the array drill's layers; by default all that apply to the profile."""
        if not drill.get("checks"):
            return list(ARRAY_CHECKS) + (["application"] if profile["type"] in APPLICATION_PROFILES else []) + (
                ["custom"] if drill.get("commands") else [])
        return [layer for check in drill["checks"] for layer in LAYERS_OF_CHECK.get(check, [check])]


class ArrayTierPlanner(TierPlanner):
    tier = TIER

    def __init__(self, host: str, fleet: Fleet) -> None:
        super().__init__(host, fleet)
        self.planner = ArrayJobs(host, self.policy, fleet.root(host), fleet.site(host))

    def plan(self) -> dict[str, list]:
        # No restic repository: the role initialises every tier's `repositories` in one call.
        return dict(super().plan(), repositories=[], tape_libraries=self.planner.libraries())

    def jobs(self) -> list[dict]:
        return self.planner.jobs()

    def secrets(self) -> list[dict]:
        return self.planner.secrets()

    def drills(self) -> list[dict]:
        return ArrayDrills(self.planner, self.fleet).entries()

    def describe(self, dataset: dict) -> str:
        volumes = len(dataset["volumes"])
        plural = "" if volumes == 1 else "s"
        text = "%s group snapshot of %d volume%s %s" % (dataset["provider"], volumes, plural, self._cadence(dataset["schedule"]))
        export = dataset.get("export")
        if export:
            every, chain_length = export_settings(export)
            text += ", exported to %s/%s every %s, chains of %d" % (
                export["library"], export["pool"], "snapshot" if every == 1 else "%d snapshots" % every, chain_length)
        return text

    def _cadence(self, schedule_name: str) -> str:
        calendar = (self.planner.schedules.get(schedule_name) or {}).get("calendar", schedule_name)
        try:
            gap = largest_gap_minutes(calendar)
        except CalendarError:
            gap = None  # reported by validation
        return "every %s" % format_duration(gap * 60) if gap else "on %s" % calendar  # the longest gap

    def copies(self, dataset: dict) -> list[Copy]:
        # The storage snapshots sit on the volumes' own media: a copy against deletion, not against its loss.
        copies = [Copy("disk", False, False, "array snapshots")]
        export = dataset.get("export")
        library = self.planner.targets.get(export["library"]) if export else None
        if library and library["type"] == "tape_library" and export["pool"] in library["pools"]:
            pool = library["pools"][export["pool"]]
            vaulted = bool(pool.get("vault"))
            copies.append(Copy("tape", vaulted or bool(library.get("offsite")), vaulted or bool(pool.get("worm")),
                               "%s/%s" % (export["library"], export["pool"])))
        return copies
