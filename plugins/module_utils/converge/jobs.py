# -*- coding: utf-8 -*-
# Private to restorable.backup: the scheduled agent jobs of a host. The wanted set is the whole
# set: jobs that are no longer in the policy lose their timer, cron entry and configuration.
from __future__ import annotations

import glob
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Callable

from ..core.jobspec import TIERS_WITHOUT_REPOSITORY
from ..core.layout import HostLayout
from ..runtime.standalone import install_standalone
from .units import AgentJob, CalendarError, cron_file_name, render_cron_file, render_systemd_units, unit_base_name
from .files import DesiredFile, FileConverger

SYSTEMD, CRON = "systemd", "cron"
_UNIT_GLOB = unit_base_name("*")


def detect_scheduler() -> str:
    """systemd when it runs this host (the sd_booted test), cron otherwise."""
    return SYSTEMD if os.path.isdir("/run/systemd/system") else CRON


@dataclass
class JobSpec:
    name: str
    calendar: str
    config: dict
    delay_seconds: int = 0

    @classmethod
    def from_params(cls, params: dict) -> "JobSpec":
        return cls(params["name"], params["calendar"], params["config"], params.get("delay_seconds") or 0)


class JobFailed(Exception):
    pass


class JobManager:
    def __init__(self, check_mode: bool, scheduler: str, root: str = "/", python: str = "/usr/bin/python3") -> None:
        self.check_mode = check_mode
        self.scheduler = detect_scheduler() if scheduler == "auto" else scheduler
        # Below another root (hosts sharing a machine) units are written but never started.
        self.activate = os.path.abspath(root) == "/"
        self.root = root
        self.layout = HostLayout(root)
        self.config_dir = self.layout.config_dir
        self.install_dir = self.layout.install_dir
        self.systemd_dir = self.layout.systemd_dir
        self.cron_dir = self.layout.cron_dir
        self.python = python
        self.files = FileConverger(check_mode)
        self.actions: list = []

    def converge(self, jobs: list, secrets: list = ()) -> None:
        for secret in secrets:
            if self.files.ensure(DesiredFile(secret["path"], secret["content"].rstrip("\n") + "\n", 0o600, secret=True)):
                self.actions.append("placed %s" % secret["path"])
        self.install_runtime()
        wanted_units: set = set()
        for job in jobs:
            wanted_units.update(self._ensure_job(job))
        self.prune_units(wanted_units, _UNIT_GLOB)
        for path in sorted(set(glob.glob(os.path.join(self.config_dir, "*.json"))) - {self.config_path(job.name) for job in jobs}):
            if _is_job_config(path) and self.files.remove(path):
                self.actions.append("removed %s" % path)
        self.activate_timers({job.name: unit_base_name(job.name) + ".timer" for job in jobs})

    def config_path(self, name: str) -> str:
        return self.layout.job_config(name)

    def install_runtime(self) -> None:
        """The standard-library runtime the timers and cron entries run."""
        runtime = install_standalone(self.install_dir, self.check_mode)
        if runtime:
            self.actions.append("%s agent runtime in %s (%d files)" % ("would update" if self.check_mode else "updated", self.install_dir, len(runtime)))
            self.files.changes.written.extend(runtime)

    def ensure_config(self, name: str, config: dict, what: str) -> None:
        text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        if self.files.ensure(DesiredFile(self.config_path(name), text, 0o600)):
            self.actions.append("%s: %s" % (name, what))

    def ensure_schedule(self, name: str, systemd_units: Callable[[], dict], cron_name: str, cron_text: Callable[[], str]) -> set:
        """The job's units (systemd) or cron entry, by scheduler; the paths wanted.

        Rendered lazily: cron cannot express every calendar a systemd timer can.
        """
        if self.scheduler == SYSTEMD:
            wanted = {os.path.join(self.systemd_dir, unit): text for unit, text in systemd_units().items()}
        else:
            wanted = {os.path.join(self.cron_dir, cron_name): cron_text()}
        for path, text in wanted.items():
            if self.files.ensure(DesiredFile(path, text, 0o644)):
                self.actions.append("%s: %s" % (name, path))
        return set(wanted)

    def _ensure_job(self, job: JobSpec) -> set:
        self.ensure_config(job.name, job.config, "job configuration")
        agent_job = AgentJob(job.name, self.config_path(job.name), job.calendar, job.delay_seconds,
                             python=self.python, install_dir=self.install_dir)
        return self.ensure_schedule(job.name, lambda: render_systemd_units(agent_job), cron_file_name(job.name),
                                    lambda: render_cron_file(agent_job))

    def prune_units(self, wanted_units: set, unit_glob: str) -> None:
        """Units and cron entries matching unit_glob that no job wants: timers stopped, files removed."""
        managed = glob.glob(os.path.join(self.systemd_dir, unit_glob + ".*")) + glob.glob(os.path.join(self.cron_dir, unit_glob))
        for path in sorted(set(managed) - wanted_units):
            if path.endswith(".timer") and self.activate and not self.check_mode:
                self._systemctl("disable", "--now", os.path.basename(path), required=False)
            if self.files.remove(path):
                self.actions.append("removed %s" % path)

    def activate_timers(self, timers: dict) -> None:
        """Enable and start each job's timer ({job name: timer unit}) where systemd runs this root."""
        if self.scheduler != SYSTEMD or not self.activate:
            return
        if any(p.startswith(self.systemd_dir) for p in self.files.changes.written + self.files.changes.removed) and not self.check_mode:
            self._systemctl("daemon-reload")
        for name, timer in timers.items():
            if self._is(timer, "is-enabled") and self._is(timer, "is-active"):
                continue
            self.actions.append("%s: %s %s" % (name, "would enable and start" if self.check_mode else "enabled and started", timer))
            self.files.changes.written.append(timer)
            if not self.check_mode:
                self._systemctl("enable", "--now", timer)

    def _is(self, unit: str, query: str) -> bool:
        return subprocess.run(["systemctl", query, "--quiet", unit], check=False).returncode == 0

    def _systemctl(self, *args: str, required: bool = True) -> None:
        result = subprocess.run(["systemctl"] + list(args), capture_output=True, text=True, check=False)
        if result.returncode != 0 and required:
            raise JobFailed("systemctl %s failed: %s" % (" ".join(args), result.stderr.strip()))


def converge_and_exit(module, work: list) -> None:
    """Converge each (manager, jobs, secrets) for a module; exit with changed, scheduler, actions, diff."""
    actions: list = []
    for manager, jobs, secrets in work:
        try:
            manager.converge(jobs, secrets)
        except (JobFailed, CalendarError, OSError, ValueError) as exc:
            module.fail_json(msg="scheduling failed: %s" % exc, actions=actions + manager.actions)
        actions += manager.actions
    managers = [item[0] for item in work]
    result = dict(changed=any(m.files.changes.changed for m in managers), scheduler=managers[0].scheduler, actions=actions)
    if module._diff:
        result["diff"] = [entry for m in managers for entry in m.files.changes.diff()]
    module.exit_json(**result)


def _is_job_config(path: str) -> bool:
    """Only files this collection wrote are removed from the configuration directory."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return False
    if not isinstance(document, dict) or not {"format", "dataset"} <= set(document):
        return False
    # CDP and array jobs keep their points outside restic: the tier marks them instead of a repository.
    return "repository" in document or document.get("tier") in TIERS_WITHOUT_REPOSITORY
