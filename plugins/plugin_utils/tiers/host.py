# -*- coding: utf-8 -*-
# Private to restorable.backup: the host tier's planner: whole VMs of the hypervisor backed up
# into restic repositories (the agent tier's repositories and credentials, a job per target),
# and restore drills that boot the restored VM on the drill host's hypervisor.
from __future__ import annotations

from typing import Any

from ansible_collections.restorable.backup.plugins.module_utils.core.layout import HostLayout
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.libvirt import DEFAULT_URI
from ansible_collections.restorable.backup.plugins.plugin_utils.site_profile import SiteProfile

from .agent_drills import AgentDrills, secret_stem
from .agent_jobs import AgentPlanner
from .base import Copy, Fleet, TierPlanner, target_copy

HOST_CHECKS = ["integrity", "freshness", "content", "application"]


class HostJobs(AgentPlanner):
    """Repositories and jobs of the host datasets a hypervisor runs itself (no proxy_host)."""

    tier = "host"

    def __init__(self, host: str, policy: dict, root: str = "/", site: SiteProfile | None = None) -> None:
        super().__init__(host, policy, root, site)
        self.hypervisor = hypervisor_settings(policy, root)
        self.libvirt_uri = self.hypervisor["libvirt_uri"]

    def tier_datasets(self) -> list:
        return [(n, d) for n, d in super().tier_datasets() if not d.get("proxy_host")]

    def job(self, job_name: str, dataset_name: str, dataset: dict, target_name: str) -> dict:
        job = super().job(job_name, dataset_name, dict(dataset, paths=[]), target_name)  # a host dataset has no paths
        config = job["config"]
        config.update(tier="host", paths=[], excludes=[])
        config.pop("consistency", None)
        config["options"] = {
            "vms": dict(dataset["vms"]),
            "disks": dict(dataset.get("disks") or {}),
            "quiesce": bool(dataset.get("quiesce", False)),
            "mode": dataset.get("mode", "incremental"),
            "libvirt_uri": self.libvirt_uri,
            "scratch_dir": self.hypervisor["scratch_dir"],
        }
        if dataset.get("full_every"):
            config["options"]["full_every"] = int(dataset["full_every"])
        return job


class ProxiedJobs(HostJobs):
    """A hypervisor's datasets whose proxy_host is `proxy`, as jobs of the proxy (the VCB model):
    the proxy drives the hypervisor's libvirt remotely, libvirt pushes the changed blocks to the
    scratch directory both share, and the proxy digests, compresses, encrypts and uploads them.
    Same repositories and points as if the hypervisor ran them; credentials and status live on the proxy."""

    def __init__(self, hypervisor: str, policy: dict, hypervisor_root: str, proxy: str, proxy_root: str,
                 site: SiteProfile | None = None) -> None:
        super().__init__(hypervisor, policy, hypervisor_root, site)
        self.proxy = proxy
        layout = HostLayout(proxy_root)
        self.secrets_dir, self.status_dir, self.metrics_dir = layout.secrets_dir, layout.status_dir, layout.metrics_dir
        self.libvirt_uri = self.hypervisor["remote_uri"]

    def tier_datasets(self) -> list:
        return [(n, d) for n, d in AgentPlanner.tier_datasets(self) if d.get("proxy_host") == self.proxy]

    def repository(self, name: str) -> dict:
        """Credentials under names of their own: hypervisors may name different repositories alike."""
        spec = super().repository(name)
        stem = secret_stem(self.host, name)
        spec.update(name=stem, password_file="%s/%s.password" % (self.secrets_dir, stem),
                    options=self._options(stem, self.targets[name]))
        if spec["env_file"]:
            spec["env_file"] = "%s/%s.env" % (self.secrets_dir, stem)
        return spec

    def jobs(self) -> list:
        jobs = []
        for job in super().jobs():
            # One proxy serves many hypervisors: their job names must not meet.
            job["name"] = job["config"]["dataset"] = "%s-%s" % (job["name"], self.host)
            job["config"]["tags"] = sorted(set(job["config"]["tags"]) | {"dataset:%s" % job["dataset"]})
            jobs.append(job)
        return jobs


def hypervisor_settings(policy: dict, root: str) -> dict[str, str]:
    settings = policy.get("restorable_hypervisor") or {}
    uri = settings.get("libvirt_uri") or DEFAULT_URI
    return {"libvirt_uri": uri, "remote_uri": settings.get("remote_uri") or uri,
            "scratch_dir": settings.get("scratch_dir") or HostLayout(root).scratch_dir}


class HostDrills(AgentDrills):
    """Drill entries of a hypervisor's host datasets: the restored VM boots on the drill host."""

    def _entry(self, name: str, drill: dict, dataset_name: str, dataset: dict) -> dict[str, Any]:
        entry = super()._entry(name, drill, dataset_name, dataset)
        params = entry["params"]
        on = params["drill_host"]
        params.update(tier="host", libvirt_uri=hypervisor_settings(self.fleet.policies[on], self.fleet.root(on))["libvirt_uri"],
                      guest_commands=[list(c["argv"]) for c in drill.get("guest_commands") or []])
        params.pop("canary_path", None)
        params.pop("application", None)
        if not drill.get("checks"):
            params["checks"] = list(HOST_CHECKS) + (["custom"] if drill.get("commands") else [])
        if drill.get("vm"):
            params["vm"] = drill["vm"]
        entry["status_file"] = None
        return entry


class HostTierPlanner(TierPlanner):
    tier = "host"

    def __init__(self, host: str, fleet: Fleet) -> None:
        super().__init__(host, fleet)
        self.planner = HostJobs(host, self.policy, fleet.root(host), fleet.site(host))

    def proxied(self) -> list[ProxiedJobs]:
        """The hypervisors whose host datasets name this host as their proxy."""
        planners = []
        for name in sorted(self.fleet.policies):
            datasets = (self.fleet.policies[name].get("restorable_datasets") or {}).values()
            if any(d.get("tier") == self.tier and d.get("proxy_host") == self.host for d in datasets):
                # The hypervisor's site staggers and caps its VMs' backups, whichever proxy runs them.
                planners.append(ProxiedJobs(name, self.fleet.policies[name], self.fleet.root(name), self.host,
                                            self.fleet.root(self.host), self.fleet.site(name)))
        return planners

    def plan(self) -> dict[str, list]:
        repositories = self.planner.repositories() + [r for p in self.proxied() for r in p.repositories()]
        return dict(super().plan(), repositories=repositories)

    def jobs(self) -> list[dict]:
        return self.planner.jobs() + [job for p in self.proxied() for job in p.jobs()]

    def secrets(self) -> list[dict]:
        return []

    def drills(self) -> list[dict]:
        return HostDrills(self.planner, self.fleet).entries()

    def describe(self, dataset: dict) -> str:
        vms = dataset["vms"]
        selection = "every VM" if vms.get("all") else ", ".join(vms.get("names", []) + vms.get("patterns", []))
        return "%s backups of %s from the hypervisor" % (dataset.get("mode", "incremental"), selection)

    def copies(self, dataset: dict) -> list[Copy]:
        targets = self.planner.targets
        return [target_copy(targets[name], name) for name in dataset.get("targets", []) if name in targets]
