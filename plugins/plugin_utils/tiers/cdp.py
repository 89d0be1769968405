# -*- coding: utf-8 -*-
# Private to restorable.backup: the CDP tier's planner. A btrfs dataset gets one job every
# interval_minutes (snapshot, replicate, thin) and, on its replica host, a directory and an
# authorized key restricted to that directory. A PostgreSQL dataset gets WAL archiving (settings
# and the archiver's own configuration, readable by the cluster's OS user), a job every interval
# (heartbeat, archive lag, incremental WAL verification) and base backups on their schedule into
# the wal_archive target's restic repository.
from __future__ import annotations

import posixpath
from typing import Any

from ansible_collections.restorable.backup.plugins.module_utils.common.durations import parse_duration
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import CONFIG_DIR, HostLayout
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.points import default_snapshot_dir
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.settings import archive_timeout_for
from ansible_collections.restorable.backup.plugins.plugin_utils.replica_keys import read_replica_key
from ansible_collections.restorable.backup.plugins.plugin_utils.site_profile import SiteProfile

from .agent_drills import AgentDrills, job_name, safe_name
from .agent_jobs import AgentPlanner
from .base import Copy, Fleet, TierPlanner, target_copy

TIER = "cdp"
# A job connects to its replica every interval: this key exchange costs 0.02 s CPU, the default
# post-quantum hybrid 0.14 s (bench/cdp.py idle_cpu). target_replica.post_quantum_kex restores it.
FAST_KEX = "curve25519-sha256"
BTRFS_CHECKS = ["integrity", "freshness", "content"]
POSTGRESQL_CHECKS = ["integrity", "freshness", "content", "application"]


def interval_calendar(minutes: int) -> str:
    """An OnCalendar expression firing at least every `minutes` (cron can read it too)."""
    if minutes < 60:
        return "*-*-* *:00/%d:00" % minutes
    hours = minutes // 60
    if minutes % 60 or 24 % hours:
        return "hourly"  # more often than asked, never less
    return {1: "hourly", 24: "daily"}.get(hours) or "*-*-* 00/%d:00:00" % hours


def archive_timeout(dataset: dict) -> int:
    """Seconds after which PostgreSQL switches out a WAL segment with changes in it."""
    return archive_timeout_for(parse_duration(dataset["rpo"]) if dataset.get("rpo") else None, dataset["interval_minutes"])


def thinning_seconds(retention: dict) -> list[dict[str, int]]:
    return [{"older_than": parse_duration(r["older_than"]), "keep_every": parse_duration(r["keep_every"])}
            for r in retention.get("thinning") or []]


def wal_dir(root: str) -> str:
    """Where a PostgreSQL host keeps its archivers' configurations: readable by the cluster's OS
    user, which cannot enter the secrets directory."""
    return HostLayout(root).below(CONFIG_DIR + "/wal")


class CdpJobs(AgentPlanner):
    """Jobs, repositories and files of one host's CDP datasets."""

    tier = TIER

    def __init__(self, host: str, policy: dict, root: str = "/", site: SiteProfile | None = None) -> None:
        super().__init__(host, policy, root, site)
        self.root = root
        self.wal_dir = wal_dir(root)

    def datasets_of(self, kind: str) -> list[tuple[str, dict]]:
        return [(n, d) for n, d in self.tier_datasets() if d["source"]["type"] == kind]

    def repositories(self) -> list:
        used = sorted({d["wal_archive"] for _n, d in self.datasets_of("postgresql")})
        return [self.repository(name) for name in used]

    # -- jobs ---------------------------------------------------------------------------------

    def jobs(self) -> list:
        jobs = [self._btrfs_job(n, d) for n, d in self.datasets_of("btrfs")]
        for name, dataset in self.datasets_of("postgresql"):
            jobs.append(self._postgresql_job(name, dataset, "points"))
            if dataset.get("base_backup_schedule"):
                jobs.append(self._postgresql_job(name, dataset, "base_backup"))
        return jobs

    def _common(self, name: str, dataset: dict) -> dict[str, Any]:
        config: dict[str, Any] = {
            "format": 1, "tier": TIER, "dataset": name, "host": self.host, "paths": [],
            "tags": list(dataset.get("tags", [])), "hooks": self._hooks(dataset),
            "status_dir": self.status_dir, "metrics_dir": self.metrics_dir,
            # A point every few minutes: a canary file in the status directory would say nothing the
            # points do not say themselves.
            "canary": {"enabled": False},
        }
        if dataset.get("ping_url"):
            config["ping_url"] = dataset["ping_url"]
        consistency = self._consistency(dataset)
        if consistency:
            config["consistency"] = consistency
        return config

    def _job(self, name: str, dataset_name: str, calendar: str, config: dict, delay_seconds: int = 0) -> dict[str, Any]:
        return {"name": name, "dataset": dataset_name, "target": None, "calendar": calendar, "delay_seconds": delay_seconds,
                "config": config}

    def _btrfs_job(self, name: str, dataset: dict) -> dict[str, Any]:
        config = self._common(name, dataset)
        source = {k: v for k, v in dataset["source"].items() if k in ("type", "subvolume", "snapshot_dir")}
        config["options"] = dict(self._point_options(dataset), source=source)
        if dataset.get("rpo"):  # the target the metrics export beside the points' age
            config["rpo"] = parse_duration(dataset["rpo"])
        retention = dataset["retention"]
        config["options"]["thinning"] = thinning_seconds(retention)
        if retention.get("max_age"):
            config["options"]["max_age"] = parse_duration(retention["max_age"])
        if dataset.get("replica"):
            config["options"]["replica"] = self._replica_options(name, dataset)
        return self._job(name, name, interval_calendar(dataset["interval_minutes"]), config)

    @staticmethod
    def _point_options(dataset: dict) -> dict[str, Any]:
        options: dict[str, Any] = {"interval_minutes": int(dataset["interval_minutes"])}
        if dataset.get("rpo"):
            options["rpo"] = parse_duration(dataset["rpo"])
        return options

    def replica_files(self, dataset_name: str) -> tuple[str, str]:
        stem = "%s/replica-%s" % (self.secrets_dir, dataset_name)
        return stem + ".key", stem + ".known_hosts"

    def _replica_options(self, name: str, dataset: dict) -> dict[str, Any]:
        target = self.targets[dataset["replica"]]
        key, known_hosts = self.replica_files(name)
        return {
            "host": target.get("address") or target["host"], "port": int(target.get("port") or 22),
            "user": "root", "path": replica_path(target, self.host, name),  # btrfs receive needs root
            "identity_file": key, "known_hosts_file": known_hosts,
            # Without the replica's host key in the policy, its first answer is trusted and pinned.
            "ssh_options": ["-o", "StrictHostKeyChecking=%s" % ("yes" if target.get("known_hosts") else "accept-new")]
            + ([] if target.get("post_quantum_kex") else ["-o", "KexAlgorithms=%s" % FAST_KEX]),
            "full_resend": bool(dataset.get("replica_full_resend", False)),
        }

    def _postgresql_job(self, name: str, dataset: dict, action: str) -> dict[str, Any]:
        job_name = name if action == "points" else "%s-base" % name
        config = self._common(job_name, dataset)
        repository = self.repository(dataset["wal_archive"])
        config["repository"] = {"url": repository["url"], "password_file": repository["password_file"]}
        if repository["env_file"]:
            config["repository"]["env_file"] = repository["env_file"]
        if repository["options"]:
            config["repository"]["options"] = repository["options"]
        if job_name != name:  # base backups and points are found by the dataset's tag
            config["tags"] = ["dataset:%s" % name] + config["tags"]
        config["retention"] = {k: (v if k == "max_age" else int(v)) for k, v in dataset["retention"].items()
                               if k not in ("thinning", "prune_every")}
        config["retention"]["prune_every"] = 1
        config.pop("consistency", None)  # the source is the cluster itself; a profile would dump it again
        config["options"] = dict(self._point_options(dataset), action=action,
                                 source=dict(dataset["source"]), archiver_config=self.archiver_config_path(name),
                                 wal_store=self.wal_store(name, dataset))
        if action == "points":
            if dataset.get("rpo"):  # the target the metrics export beside the archive's age
                config["rpo"] = parse_duration(dataset["rpo"])
            return self._job(job_name, name, interval_calendar(dataset["interval_minutes"]), config)
        # Base backups are the CDP tier's bulk upload: the site's window, cap and start slot apply;
        # points run around the clock (their RPO is minutes) and send no bulk.
        schedule = self.schedules[dataset["base_backup_schedule"]]
        config["schedule"] = self._schedule(schedule)
        return self._job(job_name, name, schedule["calendar"], config, self.site.delay_seconds(job_name, schedule))

    # -- WAL archiving --------------------------------------------------------------------------

    def archiver_config_path(self, name: str) -> str:
        return posixpath.join(self.wal_dir, name + ".json")

    def wal_store(self, name: str, dataset: dict) -> dict[str, Any]:
        """Where the WAL of a dataset goes: beside the base backups, in the wal_archive target."""
        target = self.targets[dataset["wal_archive"]]
        kind = target["type"]
        if kind == "local":
            return {"type": "local", "path": posixpath.join(target["path"], "wal", safe_name(self.host), name)}
        if kind == "sftp":
            store = {"type": "sftp", "host": target["host"], "port": int(target.get("port") or 22),
                     "path": posixpath.join(target["path"], "wal", safe_name(self.host), name)}
            store["user"] = target.get("user") or "root"  # as ssh would log in from the root-run jobs
            if target.get("ssh_private_key"):
                store["identity_file"] = posixpath.join(self.wal_dir, name + ".key")
            if target.get("known_hosts"):
                store["known_hosts_file"] = posixpath.join(self.wal_dir, name + ".known_hosts")
            return store
        prefix = [p for p in target.get("prefix", "").split("/") if p] + [self.host, "wal", name]
        store = {"type": "s3", "endpoint": target.get("endpoint", "https://s3.amazonaws.com").rstrip("/"),
                 "bucket": target["bucket"], "prefix": "/".join(prefix), "env_file": posixpath.join(self.wal_dir, name + ".env")}
        store["region"] = target.get("region") or "us-east-1"  # restic's default too
        return store

    def wal_archiving(self) -> list[dict[str, Any]]:
        """What the wal_archiving module sets up per PostgreSQL dataset."""
        entries = []
        for name, dataset in self.datasets_of("postgresql"):
            source = dataset["source"]
            store = self.wal_store(name, dataset)
            entries.append({
                "dataset": name, "data_directory": source["data_directory"], "port": int(source.get("port") or 5432),
                "archive_timeout": archive_timeout(dataset), "archiver_config": self.archiver_config_path(name),
                "store": store, "files": self.archiver_files(name, dataset, store),
            })
        return entries

    def archiver_files(self, name: str, dataset: dict, store: dict) -> list[dict[str, str]]:
        """The store's credentials, as files the cluster's OS user owns (the archiver runs as that user)."""
        target = self.targets[dataset["wal_archive"]]
        files = []
        if store["type"] == "s3":
            keys = dict(self._s3_keys(target))
            files.append({"path": store["env_file"], "content": "".join("%s=%s\n" % kv for kv in sorted(keys.items()))})
        if store.get("identity_file"):
            files.append({"path": store["identity_file"], "content": target["ssh_private_key"]})
        if store.get("known_hosts_file"):
            files.append({"path": store["known_hosts_file"], "content": target["known_hosts"]})
        return files

    # -- replicas -------------------------------------------------------------------------------

    def secrets(self) -> list:
        files = super().secrets()
        for name, dataset in self.datasets_of("btrfs"):
            if not dataset.get("replica"):
                continue
            key_file, known_hosts_file = self.replica_files(name)
            key = read_replica_key(self.credential_store, self.host, name)
            if key:  # made by restorable.backup.replica_keys; absent only before its first real run
                files.append({"path": key_file, "content": key["private"]})
            target = self.targets[dataset["replica"]]
            if target.get("known_hosts"):
                files.append({"path": known_hosts_file, "content": target["known_hosts"]})
        return files


def replica_path(target: dict, source: str, dataset: str) -> str:
    """A dataset's own directory on its replica: what the source's key may touch, and nothing else."""
    return posixpath.join(target["path"], safe_name(source), dataset)


class CdpDrills(AgentDrills):
    """Drill entries of a host's CDP datasets. A btrfs point is restored where the drill runs: by
    default on the replica (the copy that must be proven), else on the source; a PostgreSQL point in
    time from the base backups and the WAL archive, started on its own port on the drill host."""

    def _entry(self, name: str, drill: dict, dataset_name: str, dataset: dict) -> dict[str, Any]:
        if dataset["source"]["type"] == "btrfs":
            return self._btrfs_entry(name, drill, dataset_name, dataset)
        entry = super()._entry(name, drill, dataset_name, dict(dataset, targets=[dataset["wal_archive"]]))
        params = entry["params"]
        on = params["drill_host"]
        params.update(tier=TIER, source_type="postgresql", interval_minutes=int(dataset["interval_minutes"]),
                      source={"data_directory": dataset["source"]["data_directory"],
                              "database": dataset["source"].get("database") or "postgres"},
                      application=params["application"]["postgresql"],
                      install_dir=HostLayout(self.fleet.root(on)).install_dir)
        if on == self.source:  # the archiver's own configuration and credentials are there
            params["archiver_config"] = self.planner.archiver_config_path(dataset_name)
        else:
            params["wal_store"], files = self._remote_wal_store(on, dataset_name, dataset)
            entry["secrets"] += files
        params.pop("canary_path", None)
        if not drill.get("checks"):
            params["checks"] = list(POSTGRESQL_CHECKS) + (["custom"] if drill.get("commands") else [])
        entry["status_file"] = None
        return entry

    def _remote_wal_store(self, on: str, dataset_name: str, dataset: dict) -> tuple[dict, list[dict[str, str]]]:
        """The WAL store as a drill host reaches it: its credentials copied below the drill host's secrets."""
        store = self.planner.wal_store(dataset_name, dataset)
        files = self.planner.archiver_files(dataset_name, dataset, store)
        moved = {}
        for key in ("env_file", "identity_file", "known_hosts_file"):
            if store.get(key):
                moved[store[key]] = posixpath.join(HostLayout(self.fleet.root(on)).drill_secrets_dir,
                                                   "%s-%s-wal.%s" % (safe_name(self.source), dataset_name, key.split("_", maxsplit=1)[0]))
                store[key] = moved[store[key]]
        return store, [{"path": moved[f["path"]], "content": f["content"]} for f in files]

    def _btrfs_entry(self, name: str, drill: dict, dataset_name: str, dataset: dict) -> dict[str, Any]:
        source = self.source
        replica = self.planner.targets[dataset["replica"]] if dataset.get("replica") else None
        on = drill.get("drill_host") or (replica["host"] if replica else source)
        if replica and on == replica["host"]:
            point_dir, where = replica_path(replica, source, dataset_name), "replica"
        else:
            point_dir, where = dataset["source"].get("snapshot_dir") or default_snapshot_dir(dataset["source"]["subvolume"]), "source"
        params = {
            "drill": name, "dataset": dataset_name, "tier": TIER, "source_type": "btrfs", "source_host": source,
            "drill_host": on, "points_on": where, "point_dir": point_dir, "subvolume": dataset["source"]["subvolume"],
            "recovery_point": dict(drill.get("recovery_point") or {"choice": "latest"}),
            "checks": list(drill.get("checks") or BTRFS_CHECKS + (["custom"] if drill.get("commands") else [])),
            "commands": [dict(c) for c in drill.get("commands") or []],
            "sandbox": drill.get("sandbox") or posixpath.join(posixpath.dirname(point_dir) or "/", ".restorable-drill"),
            "protected_paths": self._protected_paths(on) + [dataset["source"]["subvolume"]],
        }
        for measure in ("rto", "rpo"):
            if drill.get(measure) or dataset.get(measure):
                params[measure] = drill.get(measure) or dataset.get(measure)
        return {"name": job_name(source, name), "calendar": drill.get("calendar"), "target": dataset.get("replica"),
                "repository": {"url": "", "options": [], "password": "", "env": {}, "password_file": None, "env_file": None},
                "secrets": [], "status_file": None, "params": params}


class CdpTierPlanner(TierPlanner):
    tier = TIER

    def __init__(self, host: str, fleet: Fleet) -> None:
        super().__init__(host, fleet)
        self.planner = CdpJobs(host, self.policy, fleet.root(host), fleet.site(host))

    def plan(self) -> dict[str, list]:
        return dict(super().plan(), repositories=self.planner.repositories(), wal_archiving=self.planner.wal_archiving(),
                    replica_access=self.replica_access())

    def replica_access(self) -> list[dict[str, str]]:
        """The datasets of other hosts whose replica is this host: a directory and a restricted key each."""
        entries = []
        for source in sorted(self.fleet.policies):
            planner = CdpJobs(source, self.fleet.policies[source], self.fleet.root(source))
            for name, dataset in planner.datasets_of("btrfs"):
                target = planner.targets.get(dataset.get("replica") or "")
                if not target or target["host"] != self.host:
                    continue
                key = read_replica_key(planner.credential_store, source, name)
                if key:  # made by restorable.backup.replica_keys before the role runs
                    entries.append({"source": source, "dataset": name, "path": replica_path(target, source, name),
                                    "public_key": key["public"]})
        return entries

    def jobs(self) -> list[dict]:
        return self.planner.jobs()

    def secrets(self) -> list[dict]:
        return self.planner.secrets()

    def drills(self) -> list[dict]:
        return CdpDrills(self.planner, self.fleet).entries()

    def describe(self, dataset: dict) -> str:
        source = dataset["source"]
        if source["type"] == "btrfs":
            copy = ", replicated to %s" % dataset["replica"] if dataset.get("replica") else ""
            return "btrfs snapshots of %s every %d min%s" % (source["subvolume"], dataset["interval_minutes"], copy)
        return "PostgreSQL WAL archived to %s (a point every %d min), point-in-time restore" % (
            dataset["wal_archive"], dataset["interval_minutes"])

    def copies(self, dataset: dict) -> list[Copy]:
        targets = self.planner.targets
        # Only what the jobs write: a CDP dataset's `targets` receive nothing from this tier.
        names = [dataset[k] for k in ("replica", "wal_archive") if dataset.get(k)]
        return [target_copy(targets[name], name) for name in names if name in targets]
