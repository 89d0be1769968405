# -*- coding: utf-8 -*-
# Private to restorable.backup: from a host's validated policy to what its agent tier needs:
# the repositories to initialise (with the credentials placed for them) and the jobs to
# schedule. Runs on the controller; the host receives plain job configurations.
from __future__ import annotations

import shlex

from ansible_collections.restorable.backup.plugins.module_utils.common.durations import parse_duration
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import HostLayout
from ansible_collections.restorable.backup.plugins.plugin_utils.s3_provisioner import DEFAULT_STORE, read_host_credentials
from ansible_collections.restorable.backup.plugins.plugin_utils.site_profile import SiteProfile

TIER = "agent"


class AgentPlanner:
    """Repositories and jobs of the agent datasets of one host (a subclass: of another restic tier)."""

    tier = TIER

    def __init__(self, host: str, policy: dict, root: str = "/", site: SiteProfile | None = None) -> None:
        self.host = host
        layout = HostLayout(root)
        self.secrets_dir = layout.secrets_dir
        self.status_dir = layout.status_dir
        self.metrics_dir = layout.metrics_dir
        self.targets = policy.get("restorable_targets") or {}
        self.datasets = policy.get("restorable_datasets") or {}
        self.schedules = policy.get("restorable_schedules") or {}
        self.profiles = policy.get("restorable_consistency_profiles") or {}
        # The fleet's roster of the site when a tier planner gives it; else the host alone in its site.
        self.site = site or SiteProfile(host, policy)
        self.credential_store = (policy.get("restorable_controller") or {}).get("credential_store", DEFAULT_STORE)

    def tier_datasets(self) -> list:
        return sorted(
            (name, dataset) for name, dataset in self.datasets.items() if dataset.get("tier") == self.tier and dataset.get("enabled", True)
        )

    def repositories(self) -> list:
        used = sorted({target for _name, dataset in self.tier_datasets() for target in dataset["targets"]})
        return [self.repository(name) for name in used]

    def repository(self, name: str) -> dict:
        target = self.targets[name]
        kind = target["type"]
        spec = {
            "name": name,
            "type": kind,
            "url": self._url(target),
            "options": self._options(name, target),
            "password": target["password"],
            "password_file": "%s/%s.password" % (self.secrets_dir, name),
            "env": {},
            "env_file": None,
            "ssh_private_key": target.get("ssh_private_key"),
            "known_hosts": target.get("known_hosts"),
        }
        if kind == "s3":
            spec["env"] = self._s3_keys(target)
            if target.get("region"):
                spec["env"]["AWS_DEFAULT_REGION"] = target["region"]
            spec["env_file"] = "%s/%s.env" % (self.secrets_dir, name)
        return spec

    def _s3_keys(self, target: dict) -> dict:
        if not target.get("scoped_credentials"):
            return {"AWS_ACCESS_KEY_ID": target["access_key_id"], "AWS_SECRET_ACCESS_KEY": target["secret_access_key"]}
        # Created by restorable.backup.s3_provision; absent only before its first real run.
        return dict(read_host_credentials(self.credential_store, target, self.host) or {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})

    def _url(self, target: dict) -> str:
        kind = target["type"]
        if kind == "local":
            return target["path"]
        if kind == "sftp":
            user = target["user"] + "@" if target.get("user") else ""
            if target.get("port"):
                return "sftp://%s%s:%d/%s" % (user, target["host"], target["port"], target["path"])
            return "sftp:%s%s:%s" % (user, target["host"], target["path"])
        endpoint = target.get("endpoint", "https://s3.amazonaws.com").rstrip("/")
        # One repository per host below the prefix, so a host's credentials can be scoped to it.
        parts = [target["bucket"]] + [p for p in target.get("prefix", "").split("/") if p] + [self.host]
        return "s3:%s/%s" % (endpoint, "/".join(parts))

    def _options(self, name: str, target: dict) -> list:
        if target["type"] != "sftp" or not (target.get("ssh_private_key") or target.get("known_hosts")):
            return []
        ssh = ["ssh"]
        if target.get("ssh_private_key"):
            ssh += ["-i", "%s/%s.key" % (self.secrets_dir, name), "-o", "IdentitiesOnly=yes"]
        if target.get("known_hosts"):
            ssh += ["-o", "UserKnownHostsFile=%s/%s.known_hosts" % (self.secrets_dir, name), "-o", "StrictHostKeyChecking=yes"]
        if target.get("port"):
            ssh += ["-p", str(target["port"])]
        ssh += ["%s%s" % (target["user"] + "@" if target.get("user") else "", target["host"]), "-s", "sftp"]
        return ["sftp.command=%s" % " ".join(shlex.quote(a) for a in ssh)]

    def jobs(self) -> list:
        jobs = []
        for name, dataset in self.tier_datasets():
            for index, target in enumerate(dataset["targets"]):
                # The primary copy carries the dataset's name; further copies are named after their target.
                job_name = name if index == 0 else "%s-%s" % (name, target)
                jobs.append(self.job(job_name, name, dataset, target))
        return jobs

    def job(self, job_name: str, dataset_name: str, dataset: dict, target_name: str) -> dict:
        repository = self.repository(target_name)
        schedule = self.schedules[dataset["schedule"]]
        config = {
            "format": 1,
            "dataset": job_name,
            "host": self.host,
            "repository": {"url": repository["url"], "password_file": repository["password_file"]},
            "paths": list(dataset["paths"]),
            "excludes": list(dataset.get("excludes", [])),
            "one_file_system": bool(dataset.get("one_file_system", False)),
            # The runner tags dataset:<job>; further copies also carry the dataset's own tag so
            # restores and drills find the dataset in every repository.
            "tags": ([] if job_name == dataset_name else ["dataset:%s" % dataset_name]) + list(dataset.get("tags", [])),
            "retention": _restic_retention(dataset["retention"]),
            "schedule": self._schedule(schedule),
            "hooks": self._hooks(dataset),
            "check": dict(dataset.get("check", {})),
            "status_dir": self.status_dir,
            "metrics_dir": self.metrics_dir,
        }
        if dataset.get("rpo"):  # the target the metrics export beside the backups' age
            config["rpo"] = parse_duration(dataset["rpo"])
        if repository["env_file"]:
            config["repository"]["env_file"] = repository["env_file"]
        if repository["options"]:
            config["repository"]["options"] = repository["options"]
        if dataset.get("ping_url"):
            config["ping_url"] = dataset["ping_url"]
        consistency = self._consistency(dataset)
        if consistency:
            config["consistency"] = consistency
        return {
            "name": job_name,
            "dataset": dataset_name,
            "target": target_name,
            "calendar": schedule["calendar"],
            "delay_seconds": self.site.delay_seconds(job_name, schedule),
            "config": config,
        }

    def _schedule(self, schedule: dict) -> dict:
        """The schedule's gate settings, with the site profile filling what the schedule leaves open."""
        return self.site.gate(schedule)

    def _consistency(self, dataset: dict) -> dict | None:
        """The profile as the runner takes it: pre/post become hooks, passwords become files."""
        name = dataset.get("consistency") or ""
        profile = self.profiles.get(name)
        if not profile or profile["type"] in ("custom", "none"):
            return None
        settings = {k: v for k, v in profile.items() if k not in ("pre", "post")}
        for section in ("postgresql", "mariadb"):
            if "password" in (settings.get(section) or {}):
                settings[section] = {k: v for k, v in settings[section].items() if k != "password"}
                settings[section]["password_file"] = self._profile_password_file(name)
        return settings

    def _profile_password_file(self, profile_name: str) -> str:
        return "%s/consistency-%s.password" % (self.secrets_dir, profile_name)

    def secrets(self) -> list:
        """Private files the jobs need besides repository credentials (database passwords)."""
        wanted = {}
        for _name, dataset in self.tier_datasets():
            profile = self.profiles.get(dataset.get("consistency") or "") or {}
            for section in ("postgresql", "mariadb"):
                password = (profile.get(section) or {}).get("password")
                if password:
                    wanted[self._profile_password_file(dataset["consistency"])] = password
        return [{"path": path, "content": content} for path, content in sorted(wanted.items())]

    def _hooks(self, dataset: dict) -> dict:
        profile = self.profiles.get(dataset.get("consistency") or "", {})
        return {
            "pre": [_command(c) for c in profile.get("pre", [])],
            "post": [_command(c) for c in profile.get("post", [])],
        }


def _restic_retention(retention: dict) -> dict:
    """GFS counts as restic takes them: JSON Schema lets 7.0 pass as an integer."""
    return {k: (v if k == "max_age" else int(v)) for k, v in retention.items() if k != "thinning"}


def _command(command: dict) -> dict:
    hook = {"argv": list(command["argv"]), "env": dict(command.get("env", {}))}
    if "timeout" in command:
        hook["timeout"] = parse_duration(command["timeout"])
    return hook
