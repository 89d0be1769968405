# -*- coding: utf-8 -*-
# Private to restorable.backup: the scheduled agent jobs of a host. The wanted set is the whole
# set: jobs that are no longer in the policy lose their timer, cron entry and configuration.
from __future__ import annotations

import glob
import json
import os
import subprocess
from dataclasses import dataclass

from ..agent.standalone import DEFAULT_INSTALL_DIR, install_standalone
from ..agent.units import AgentJob, cron_file_name, render_cron_file, render_systemd_units, unit_base_name
from .files import DesiredFile, FileConverger

SYSTEMD_DIR = "etc/systemd/system"
CRON_DIR = "etc/cron.d"
CONFIG_DIR = "etc/restorable"
SYSTEMD, CRON = "systemd", "cron"
_UNIT_GLOB = unit_base_name("*")


def job_config_path(root: str, name: str) -> str:
    return os.path.join(root, CONFIG_DIR, name + ".json")


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
        self.config_dir = os.path.join(root, CONFIG_DIR)
        self.install_dir = os.path.join(root, DEFAULT_INSTALL_DIR.lstrip("/"))
        self.systemd_dir = os.path.join(root, SYSTEMD_DIR)
        self.cron_dir = os.path.join(root, CRON_DIR)
        self.python = python
        self.files = FileConverger(check_mode)
        self.actions: list = []

    def converge(self, jobs: list, secrets: list = ()) -> None:
        for secret in secrets:
            if self.files.ensure(DesiredFile(secret["path"], secret["content"].rstrip("\n") + "\n", 0o600, secret=True)):
                self.actions.append("placed %s" % secret["path"])
        runtime = install_standalone(self.install_dir, self.check_mode)
        if runtime:
            self.actions.append("%s agent runtime in %s (%d files)" % ("would update" if self.check_mode else "updated", self.install_dir, len(runtime)))
            self.files.changes.written.extend(runtime)
        wanted_units: set = set()
        for job in jobs:
            wanted_units.update(self._ensure_job(job))
        self._prune(wanted_units, {self.config_path(job.name) for job in jobs})
        if self.scheduler == SYSTEMD and self.activate:
            self._activate_timers([job.name for job in jobs])

    def config_path(self, name: str) -> str:
        return job_config_path(self.root, name)

    def _ensure_job(self, job: JobSpec) -> set:
        config_text = json.dumps(job.config, indent=2, sort_keys=True) + "\n"
        if self.files.ensure(DesiredFile(self.config_path(job.name), config_text, 0o600)):
            self.actions.append("%s: job configuration" % job.name)
        agent_job = AgentJob(job.name, self.config_path(job.name), job.calendar, job.delay_seconds,
                             python=self.python, install_dir=self.install_dir)
        if self.scheduler == SYSTEMD:
            wanted = {os.path.join(self.systemd_dir, name): text for name, text in render_systemd_units(agent_job).items()}
        else:
            wanted = {os.path.join(self.cron_dir, cron_file_name(job.name)): render_cron_file(agent_job)}
        for path, text in wanted.items():
            if self.files.ensure(DesiredFile(path, text, 0o644)):
                self.actions.append("%s: %s" % (job.name, path))
        return set(wanted)

    def _prune(self, wanted_units: set, wanted_configs: set) -> None:
        managed = glob.glob(os.path.join(self.systemd_dir, _UNIT_GLOB + ".*")) + glob.glob(os.path.join(self.cron_dir, _UNIT_GLOB))
        for path in sorted(set(managed) - wanted_units):
            if path.endswith(".timer") and self.activate and not self.check_mode:
                self._systemctl("disable", "--now", os.path.basename(path), required=False)
            if self.files.remove(path):
                self.actions.append("removed %s" % path)
        for path in sorted(set(glob.glob(os.path.join(self.config_dir, "*.json"))) - wanted_configs):
            if _is_job_config(path) and self.files.remove(path):
                self.actions.append("removed %s" % path)

    def _activate_timers(self, names: list) -> None:
        if any(p.startswith(self.systemd_dir) for p in self.files.changes.written + self.files.changes.removed) and not self.check_mode:
            self._systemctl("daemon-reload")
        for name in names:
            timer = unit_base_name(name) + ".timer"
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


def _is_job_config(path: str) -> bool:
    """Only files this collection wrote are removed from the configuration directory."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and {"format", "dataset", "repository"} <= set(document)
