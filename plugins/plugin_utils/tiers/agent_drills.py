# -*- coding: utf-8 -*-
# Private to restorable.backup: the restore drills of a host's agent datasets. Each (drill,
# dataset) runs on the drill's drill_host, else on the source host itself. The on-demand
# playbook and the scheduled drill on a drill host take their parameters from here, so both
# drill the same way.
#
# A drill on another host needs the source repository's credentials there: the drill host
# receives copies of the source host's (password, S3 keys scoped to the source's prefix, SSH
# key and known_hosts for SFTP) as private files of its own, secrets/drills/<source>-<target>.*,
# apart from the drill host's own repositories. A drill on its source host uses the files the
# agent tier placed for its backups.
from __future__ import annotations

import posixpath
import re
from typing import Any

from ansible_collections.restorable.backup.plugins.module_utils.core.layout import DatasetFiles, HostLayout

from .agent_jobs import AgentPlanner
from .base import Fleet

DEFAULT_SANDBOX = "/var/tmp/restorable-drill"
DEFAULT_CHECKS = ["integrity", "freshness", "content"]
# The database settings a drill uses: it starts the restored data in a scratch server of its own.
SERVER_CHECK_KEYS = ("mode", "databases", "checks")


class _RemoteRepositories(AgentPlanner):
    """A source host's repositories as a drill host reaches them: same URL and credentials, with
    the SSH options pointing at copies below the drill host's secrets directory."""

    def __init__(self, source: str, policy: dict, source_root: str, drill_root: str) -> None:
        super().__init__(source, policy, source_root)
        self.secrets_dir = HostLayout(drill_root).drill_secrets_dir

    def _options(self, name: str, target: dict) -> list:
        return super()._options(secret_stem(self.host, name), target)


def safe_name(host: str) -> str:
    """An inventory name as a file and unit name part: cron skips files with dots (FQDNs)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", host)


def secret_stem(source: str, target: str) -> str:
    """File name stem of a source repository's credentials copied to a drill host."""
    return "%s-%s" % (safe_name(source), target)


def job_name(source: str, drill: str) -> str:
    return "%s-%s" % (safe_name(source), drill)


def drill_host(source: str, drill: dict) -> str:
    return drill.get("drill_host") or source


class AgentDrills:
    """The drill entries of one source host's agent datasets; the fleet gives drill hosts' roots and policies."""

    def __init__(self, planner: AgentPlanner, fleet: Fleet) -> None:
        self.planner = planner
        self.fleet = fleet
        self.source = planner.host
        self.policy = fleet.policies[planner.host]

    def entries(self) -> list[dict[str, Any]]:
        datasets = dict(self.planner.tier_datasets())
        # A drill host outside the fleet runs nothing; drills_of reports it for the source.
        drills = sorted((name, drill) for name, drill in (self.policy.get("restorable_drills") or {}).items()
                        if drill_host(self.source, drill) in self.fleet.policies)
        return [self._entry(name, drill, dataset, datasets[dataset])
                for name, drill in drills for dataset in drill["datasets"] if dataset in datasets]

    def _entry(self, name: str, drill: dict, dataset_name: str, dataset: dict) -> dict[str, Any]:
        source, planner = self.source, self.planner
        on = drill_host(source, drill)
        target = dataset["targets"][0]  # the primary copy: the job named after the dataset
        repository = planner.repository(target) if on == source else self._remote_repository(on, target)
        params = {
            "drill": name,
            "dataset": dataset_name,
            "source_host": source,
            "drill_host": on,
            "recovery_point": dict(drill.get("recovery_point") or {"choice": "latest"}),
            "sample": dict(drill.get("sample") or {"mode": "all"}),
            "checks": list(drill.get("checks") or DEFAULT_CHECKS + (["custom"] if drill.get("commands") else [])),
            "commands": [dict(c) for c in drill.get("commands") or []],
            "application": self._application(dataset),
            "sandbox": drill.get("sandbox") or DEFAULT_SANDBOX,
            "protected_paths": self._protected_paths(on),
            "read_data_subset": (dataset.get("check") or {}).get("read_data_subset", "5%"),
            # Found in the restore even where the source's status (with the token) is not readable.
            "canary_path": DatasetFiles(planner.status_dir, dataset_name).canary,
        }
        for measure in ("rto", "rpo"):
            if drill.get(measure) or dataset.get(measure):
                params[measure] = drill.get(measure) or dataset.get(measure)
        return {
            "name": job_name(source, name),
            "calendar": drill.get("calendar"),
            "target": target,
            "repository": {k: repository[k] for k in ("url", "options", "password", "env", "password_file", "env_file")},
            "secrets": _secret_files(repository) if on != source else [],
            # The backup's status (canary, snapshot) is readable only on the source host itself.
            "status_file": DatasetFiles(planner.status_dir, dataset_name).status if on == source else None,
            "params": params,
        }

    def _remote_repository(self, on: str, target: str) -> dict:
        remote = _RemoteRepositories(self.source, self.policy, self.fleet.root(self.source), self.fleet.root(on))
        repository = remote.repository(target)
        stem = posixpath.join(remote.secrets_dir, secret_stem(self.source, target))
        repository["password_file"] = stem + ".password"
        repository["env_file"] = stem + ".env" if repository["env"] else None
        repository["ssh_key_file"] = stem + ".key"
        repository["known_hosts_file"] = stem + ".known_hosts"
        return repository

    def _application(self, dataset: dict) -> dict[str, Any]:
        """What the application layer reads of the dataset's consistency profile (as the drill
        playbook passes it): never a password or a connection to the production server."""
        profiles = self.policy.get("restorable_consistency_profiles") or {}
        profile = profiles.get(dataset.get("consistency") or "") or {}
        application: dict[str, Any] = {"type": profile.get("type", "none"), "sqlite": dict(profile.get("sqlite") or {})}
        for server in ("postgresql", "mariadb"):
            application[server] = {k: v for k, v in (profile.get(server) or {}).items() if k in SERVER_CHECK_KEYS}
        return application

    def _protected_paths(self, on: str) -> list[str]:
        """Never restore into what the source host or the drill host protects."""
        paths: list[str] = []
        for host in (self.source, on):
            for dataset in (self.fleet.policies[host].get("restorable_datasets") or {}).values():
                paths += [p for p in dataset.get("paths") or [] if p not in paths]
        return paths


def _secret_files(repository: dict) -> list[dict[str, str]]:
    files = [{"path": repository["password_file"], "content": repository["password"]}]
    if repository["env_file"]:
        files.append({"path": repository["env_file"],
                      "content": "".join("%s=%s\n" % item for item in sorted(repository["env"].items()))})
    if repository.get("ssh_private_key"):
        files.append({"path": repository["ssh_key_file"], "content": repository["ssh_private_key"]})
    if repository.get("known_hosts"):
        files.append({"path": repository["known_hosts_file"], "content": repository["known_hosts"]})
    return files
