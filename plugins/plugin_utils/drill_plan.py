# -*- coding: utf-8 -*-
# Private to restorable.backup: from the fleet's validated policies to the restore drills of
# the agent tier. Each (source host, drill, dataset) runs on the drill's drill_host, else on
# the source host itself. The on-demand playbook and the scheduled drill on a drill host take
# their parameters from here, so both drill the same way.
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
from ansible_collections.restorable.backup.plugins.plugin_utils.agent_plan import SECRETS_DIR, AgentPlanner, below
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import plain
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import VARIABLE_PREFIX

# Its own directory: the job module (its drills) owns every file in it and removes the unwanted.
DRILL_SECRETS_DIR = SECRETS_DIR + "/drills"
DEFAULT_SANDBOX = "/var/tmp/restorable-drill"
DEFAULT_CHECKS = ["integrity", "freshness", "content"]
# The database settings a drill uses: it starts the restored data in a scratch server of its own.
SERVER_CHECK_KEYS = ("mode", "databases", "checks")


class _RemoteRepositories(AgentPlanner):
    """A source host's repositories as a drill host reaches them: same URL and credentials, with
    the SSH options pointing at copies below the drill host's secrets directory."""

    def __init__(self, source: str, policy: dict, source_root: str, drill_root: str) -> None:
        super().__init__(source, policy, source_root)
        self.secrets_dir = below(drill_root, DRILL_SECRETS_DIR)

    def _options(self, name: str, target: dict) -> list:
        return super()._options(secret_stem(self.host, name), target)


def _safe(host: str) -> str:
    """An inventory name as a file and unit name part: cron skips files with dots (FQDNs)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", host)


def secret_stem(source: str, target: str) -> str:
    """File name stem of a source repository's credentials copied to a drill host."""
    return "%s-%s" % (_safe(source), target)


def job_name(source: str, drill: str) -> str:
    return "%s-%s" % (_safe(source), drill)


class DrillPlanner:
    """The drills of a fleet: policies and agent roots by inventory host name."""

    def __init__(self, policies: dict[str, dict], roots: dict[str, str]) -> None:
        self.policies = policies
        self.roots = roots

    def root(self, host: str) -> str:
        return self.roots.get(host) or "/"

    def drill_host(self, source: str, drill: dict) -> str:
        return drill.get("drill_host") or source

    def _drills(self, source: str) -> list[tuple[str, dict]]:
        return sorted((self.policies[source].get("restorable_drills") or {}).items())

    def drills_of(self, source: str) -> list[dict[str, Any]]:
        """One entry per dataset of each drill the source host declares (the on-demand playbook).

        Without secrets: a playbook loops over these, and a loop item is shown in verbose output.
        """
        return [_public(entry) for name, drill in self._drills(source) for entry in self._entries(source, name, drill)]

    def drills_on(self, drill_host: str) -> list[dict[str, Any]]:
        """One entry per dataset of every drill of the fleet that runs on drill_host."""
        return [entry for source in sorted(self.policies) for name, drill in self._drills(source)
                if self.drill_host(source, drill) == drill_host for entry in self._entries(source, name, drill)]

    def _entries(self, source: str, name: str, drill: dict) -> list[dict[str, Any]]:
        drill_host = self.drill_host(source, drill)
        if drill_host not in self.policies:
            raise ValueError("drill %s of %s: drill_host %s is not in the inventory" % (name, source, drill_host))
        planner = AgentPlanner(source, self.policies[source], self.root(source))
        datasets = dict(planner.agent_datasets())
        # Only the agent tier has a restore driver; other tiers' datasets are drilled by their own tier.
        return [self._entry(source, name, drill, dataset, datasets[dataset], planner)
                for dataset in drill["datasets"] if dataset in datasets]

    def _entry(self, source: str, name: str, drill: dict, dataset_name: str, dataset: dict,
               planner: AgentPlanner) -> dict[str, Any]:
        drill_host = self.drill_host(source, drill)
        target = dataset["targets"][0]  # the primary copy: the job named after the dataset
        if drill_host == source:
            repository = planner.repository(target)
        else:
            repository = self._remote_repository(source, drill_host, target)
        params = {
            "drill": name,
            "dataset": dataset_name,
            "source_host": source,
            "drill_host": drill_host,
            "recovery_point": dict(drill.get("recovery_point") or {"choice": "latest"}),
            "sample": dict(drill.get("sample") or {"mode": "all"}),
            "checks": list(drill.get("checks") or DEFAULT_CHECKS + (["custom"] if drill.get("commands") else [])),
            "commands": [dict(c) for c in drill.get("commands") or []],
            "application": self._application(source, dataset),
            "sandbox": drill.get("sandbox") or DEFAULT_SANDBOX,
            "protected_paths": self._protected_paths(source, drill_host),
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
            "secrets": self._secret_files(repository) if drill_host != source else [],
            # The backup's status (canary, snapshot) is readable only on the source host itself.
            "status_file": posixpath.join(planner.status_dir, dataset_name + ".json") if drill_host == source else None,
            "params": params,
        }

    def _remote_repository(self, source: str, drill_host: str, target: str) -> dict:
        remote = _RemoteRepositories(source, self.policies[source], self.root(source), self.root(drill_host))
        repository = remote.repository(target)
        stem = posixpath.join(remote.secrets_dir, secret_stem(source, target))
        repository["password_file"] = stem + ".password"
        repository["env_file"] = stem + ".env" if repository["env"] else None
        repository["ssh_key_file"] = stem + ".key"
        repository["known_hosts_file"] = stem + ".known_hosts"
        return repository

    @staticmethod
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

    def _application(self, source: str, dataset: dict) -> dict[str, Any]:
        """What the application layer reads of the dataset's consistency profile (as the drill
        playbook passes it): never a password or a connection to the production server."""
        profiles = self.policies[source].get("restorable_consistency_profiles") or {}
        profile = profiles.get(dataset.get("consistency") or "") or {}
        application: dict[str, Any] = {"type": profile.get("type", "none"), "sqlite": dict(profile.get("sqlite") or {})}
        for server in ("postgresql", "mariadb"):
            application[server] = {k: v for k, v in (profile.get(server) or {}).items() if k in SERVER_CHECK_KEYS}
        return application

    def _protected_paths(self, source: str, drill_host: str) -> list[str]:
        """Never restore into what the source host or the drill host protects."""
        paths: list[str] = []
        for host in (source, drill_host):
            for dataset in (self.policies[host].get("restorable_datasets") or {}).values():
                paths += [p for p in dataset.get("paths") or [] if p not in paths]
        return paths

    def schedule(self, drill_host: str) -> dict[str, list]:
        """What the drill host gets: a job per scheduled (source, drill) and the secrets of every drill on it
        (on-demand drills from the playbook use them too); drills counts the dataset drills it runs."""
        root = self.root(drill_host)
        jobs: dict[str, dict] = {}
        secrets: dict[str, str] = {}
        owners: dict[str, str] = {}  # job name: source host
        entries = self.drills_on(drill_host)
        for entry in entries:
            for secret in entry["secrets"]:
                if secrets.setdefault(secret["path"], secret["content"]) != secret["content"]:
                    raise ValueError("two source repositories of drills on %s need the same file %s: rename a host or target"
                                     % (drill_host, secret["path"]))
            if not entry["calendar"]:
                continue
            source = entry["params"]["source_host"]
            if owners.setdefault(entry["name"], source) != source:
                raise ValueError("drills of %s and %s on %s would share the job name %s: rename a host or drill"
                                 % (owners[entry["name"]], source, drill_host, entry["name"]))
            job = jobs.setdefault(entry["name"], {
                "name": entry["name"], "calendar": entry["calendar"],
                "config": {"format": 1, "name": entry["name"], "evidence_dir": HostLayout(root).evidence_dir, "datasets": []}})
            job["config"]["datasets"].append(dict(entry["params"], status_file=entry["status_file"],
                                                  repository=_without_values(entry["repository"])))
        return {"drills": len(entries), "jobs": [jobs[name] for name in sorted(jobs)],
                "secrets": [{"path": path, "content": content} for path, content in sorted(secrets.items())],
                "evidence_dir": HostLayout(root).evidence_dir}


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    public = {k: v for k, v in entry.items() if k not in ("secrets", "repository")}
    public["repository"] = {"url": entry["repository"]["url"], "options": list(entry["repository"]["options"])}
    return public


def _without_values(repository: dict) -> dict:
    """The repository as a configuration file may hold it: secrets by path only."""
    kept = {"url": repository["url"], "options": list(repository["options"]), "password_file": repository["password_file"]}
    if repository["env_file"]:
        kept["env_file"] = repository["env_file"]
    return kept


def planner_from_hostvars(hostvars: Any, roots: dict[str, str] | None = None) -> DrillPlanner:
    """A planner over every host of Ansible's hostvars; roots: agent roots known better than hostvars (role defaults)."""
    policies, found_roots = {}, {}
    for host in hostvars.keys():
        variables = hostvars[host]
        policies[host] = {k: plain(variables[k]) for k in variables.keys() if isinstance(k, str) and k.startswith(VARIABLE_PREFIX)}
        found_roots[host] = str(variables.get("agent_root") or "/")
    found_roots.update(roots or {})
    return DrillPlanner(policies, found_roots)
