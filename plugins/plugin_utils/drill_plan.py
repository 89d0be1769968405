# -*- coding: utf-8 -*-
# Private to restorable.backup: from the fleet's validated policies to its restore drills, tier by
# tier through the planner registry. Each (source host, drill, dataset) runs on the drill's
# drill_host, else on the source host itself; the tier's planner says how (see tiers/agent_drills).
#
# Every host is planned once per fleet: a planner builds each host's tier planners and drill
# entries the first time they are asked for, and one planner serves every task of a play that
# passes the same hostvars (planner_from_hostvars), so a play costs one walk of the fleet.
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

from ansible_collections.restorable.backup.plugins.module_utils.common.durations import parse_duration
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import HostLayout
from ansible_collections.restorable.backup.plugins.plugin_utils.evidence_plan import EvidencePlan
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import plain
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.compliance import DEFAULT_DRILL_MAX_AGE
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import VARIABLE_PREFIX
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS, Tiers
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.agent_drills import drill_host
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet, TierPlanner


class DrillPlanner:
    """The drills and tier plans of a fleet: policies and agent roots by inventory host name."""

    def __init__(self, policies: Mapping[str, dict], roots: Mapping[str, str], tiers: Tiers = TIERS) -> None:
        self.fleet = Fleet(policies, roots)
        self.tiers = tiers
        self._planners: dict[str, list[TierPlanner]] = {}
        self._entries: dict[str, list[dict[str, Any]]] = {}
        self._on: dict[str, list[dict[str, Any]]] | None = None

    def root(self, host: str) -> str:
        return self.fleet.root(host)

    def planners(self, host: str) -> list[TierPlanner]:
        if host not in self._planners:
            self._planners[host] = self.tiers.planners(host, self.fleet)
        return self._planners[host]

    def host_plan(self, host: str) -> dict[str, Any]:
        """What apply converges on a host: each tier's plan, and the drills that run there."""
        return {"tiers": {p.tier: p.plan() for p in self.planners(host)}, "drills": self.schedule(host)}

    def _drills(self, source: str) -> list[tuple[str, dict]]:
        return sorted((self.fleet.policies[source].get("restorable_drills") or {}).items())

    def _source_entries(self, source: str) -> list[dict[str, Any]]:
        """Every tier's entries of the source's drills, in drill order, each dataset in its place in the drill."""
        if source not in self._entries:
            drills = dict(self._drills(source))
            entries = [entry for planner in self.planners(source) for entry in planner.drills()]
            self._entries[source] = sorted(entries, key=lambda e: (
                e["params"]["drill"], drills[e["params"]["drill"]]["datasets"].index(e["params"]["dataset"])))
        return self._entries[source]

    def drills_of(self, source: str) -> list[dict[str, Any]]:
        """One entry per dataset of each drill the source host declares (the on-demand playbook).

        Without secrets: a playbook loops over these, and a loop item is shown in verbose output.
        """
        for name, drill in self._drills(source):
            if drill_host(source, drill) not in self.fleet.policies:
                raise ValueError("drill %s of %s: drill_host %s is not in the inventory" % (name, source, drill_host(source, drill)))
        return [_public(entry) for entry in self._source_entries(source)]

    def drills_on(self, on: str) -> list[dict[str, Any]]:
        """One entry per dataset of every drill of the fleet that runs on the drill host on."""
        if self._on is None:  # every source's drills, once, by drill host
            self._on = {}
            for source in sorted(self.fleet.policies):
                for entry in self._source_entries(source):
                    self._on.setdefault(entry["params"]["drill_host"], []).append(entry)
        return list(self._on.get(on, []))

    def schedule(self, on: str) -> dict[str, list]:
        """What the drill host gets: a job per scheduled (source, drill) and the secrets of every drill on it
        (on-demand drills from the playbook use them too); drills counts the dataset drills it runs."""
        root = self.root(on)
        jobs: dict[str, dict] = {}
        secrets: dict[str, str] = {}
        owners: dict[str, str] = {}  # job name: source host
        entries = self.drills_on(on)
        for entry in entries:
            for secret in entry["secrets"]:
                if secrets.setdefault(secret["path"], secret["content"]) != secret["content"]:
                    raise ValueError("two source repositories of drills on %s need the same file %s: rename a host or target"
                                     % (on, secret["path"]))
            if not entry["calendar"]:
                continue
            source = entry["params"]["source_host"]
            if owners.setdefault(entry["name"], source) != source:
                raise ValueError("drills of %s and %s on %s would share the job name %s: rename a host or drill"
                                 % (owners[entry["name"]], source, on, entry["name"]))
            job = jobs.setdefault(entry["name"], {
                "name": entry["name"], "calendar": entry["calendar"],
                "config": {"format": 1, "name": entry["name"], "evidence_dir": HostLayout(root).evidence_dir, "datasets": [],
                           # node_exporter's textfile of the drill (drill/metrics.py) and the age its last pass may reach
                           "metrics_dir": HostLayout(root).metrics_dir, "max_age_seconds": self._max_age(source)}})
            job["config"]["datasets"].append(dict(entry["params"], status_file=entry["status_file"],
                                                  repository=_without_values(entry["repository"])))
        return EvidencePlan(on, self.fleet.policies[on], root).add_to_drills({
            "drills": len(entries), "jobs": [jobs[name] for name in sorted(jobs)],
            "secrets": [{"path": path, "content": content} for path, content in sorted(secrets.items())],
            "evidence_dir": HostLayout(root).evidence_dir})

    def _max_age(self, source: str) -> int:
        """The source's drill_max_age (restorable_compliance), as the 0 rule of 3-2-1-1-0 counts it."""
        compliance = self.fleet.policies[source].get("restorable_compliance") or {}
        return parse_duration(compliance.get("drill_max_age", DEFAULT_DRILL_MAX_AGE))


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


class HostvarsPolicies(Mapping):
    """The restorable_* variables of each host of Ansible's hostvars, templated when first read:
    a planner reads only the hosts it needs, each once."""

    def __init__(self, hostvars: Any) -> None:
        self._hostvars = hostvars
        self._hosts = list(hostvars.keys())
        self._known = set(self._hosts)
        self._policies: dict[str, dict] = {}

    def __getitem__(self, host: str) -> dict:
        if host not in self._policies:
            if host not in self._known:
                raise KeyError(host)
            variables = self._hostvars[host]
            self._policies[host] = {k: plain(variables[k]) for k in variables.keys() if isinstance(k, str) and k.startswith(VARIABLE_PREFIX)}
        return self._policies[host]

    def __contains__(self, host: object) -> bool:
        return host in self._known

    def __iter__(self) -> Iterator[str]:
        return iter(self._hosts)

    def __len__(self) -> int:
        return len(self._hosts)


class HostvarsRoots(Mapping):
    """Each host's agent_root from hostvars ("/" without one), read when first asked for; overrides win."""

    def __init__(self, hostvars: Any, overrides: dict[str, str]) -> None:
        self._hostvars = hostvars
        self._roots = dict(overrides)

    def __getitem__(self, host: str) -> str:
        if host not in self._roots:
            self._roots[host] = str(self._hostvars[host].get("agent_root") or "/")
        return self._roots[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self._hostvars.keys())

    def __len__(self) -> int:
        return len(self._hostvars)


# The planners of the last hostvars, by roots given: Ansible makes one hostvars per play, so every
# task of a play shares one walk of the fleet, and a new play drops the last one's.
_CURRENT: dict[str, Any] = {"hostvars": None, "planners": {}}


def planner_from_hostvars(hostvars: Any, roots: dict[str, str] | None = None) -> DrillPlanner:
    """A planner over every host of Ansible's hostvars; roots: agent roots known better than hostvars (role defaults)."""
    if _CURRENT["hostvars"] is not hostvars:
        _CURRENT.update(hostvars=hostvars, planners={})
    found = HostvarsRoots(hostvars, {})
    # A root hostvars already gives changes nothing: tasks passing their own host's root share a planner.
    overrides = tuple(sorted((host, root) for host, root in (roots or {}).items() if root != found[host]))
    planners = _CURRENT["planners"]
    if overrides not in planners:
        planners[overrides] = DrillPlanner(HostvarsPolicies(hostvars), HostvarsRoots(hostvars, dict(overrides)))
    return planners[overrides]
