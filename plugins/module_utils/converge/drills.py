# -*- coding: utf-8 -*-
# Private to restorable.backup: the scheduled restore drills of a drill host. The wanted set is
# the whole set: drills no longer in the policy lose their timer or cron entry and their
# configuration, and source credentials no drill uses any more are removed from the host.
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

from ..agent.standalone import install_standalone
from ..agent.units import DrillJob, drill_unit_base_name, render_drill_cron_file, render_drill_systemd_units
from .files import DesiredFile
from .jobs import CONFIG_DIR, SYSTEMD, JobManager

DRILL_CONFIG_DIR = CONFIG_DIR + "/drills"
DRILL_SECRETS_DIR = CONFIG_DIR + "/secrets/drills"
_UNIT_GLOB = drill_unit_base_name("*")


@dataclass
class DrillScheduleSpec:
    name: str
    calendar: str
    config: dict

    @classmethod
    def from_params(cls, params: dict) -> "DrillScheduleSpec":
        return cls(params["name"], params["calendar"], params["config"])


class DrillScheduler(JobManager):
    """Converges drill configurations, credentials and schedules the way JobManager does backups
    (same runtime, scheduler choice, activation rules and systemctl handling)."""

    def __init__(self, check_mode: bool, scheduler: str, root: str = "/", python: str = "/usr/bin/python3") -> None:
        super().__init__(check_mode, scheduler, root, python)
        self.drill_config_dir = os.path.join(root, DRILL_CONFIG_DIR)
        self.drill_secrets_dir = os.path.join(root, DRILL_SECRETS_DIR)

    def converge(self, jobs: list, secrets: list = ()) -> None:
        for secret in secrets:
            self._ensure_secret(secret["path"], secret["content"])
        self._prune_files(self.drill_secrets_dir, "*", {s["path"] for s in secrets}, secret=True)
        runtime = install_standalone(self.install_dir, self.check_mode)
        if runtime:
            self.actions.append("%s agent runtime in %s (%d files)" % ("would update" if self.check_mode else "updated", self.install_dir, len(runtime)))
            self.files.changes.written.extend(runtime)
        wanted_units: set = set()
        for job in jobs:
            wanted_units.update(self._ensure_drill(job))
        self._prune_units(wanted_units)
        self._prune_files(self.drill_config_dir, "*.json", {self.config_path(job.name) for job in jobs})
        if self.scheduler == SYSTEMD and self.activate:
            self._activate_drill_timers([job.name for job in jobs])

    def config_path(self, name: str) -> str:
        return os.path.join(self.drill_config_dir, name + ".json")

    def _ensure_secret(self, path: str, content: str) -> None:
        if os.path.dirname(os.path.abspath(path)) != os.path.abspath(self.drill_secrets_dir):
            raise ValueError("drill credential %s must be in %s" % (path, self.drill_secrets_dir))
        if self.files.ensure(DesiredFile(path, content.rstrip("\n") + "\n", 0o600, secret=True)):
            self.actions.append("placed %s" % path)

    def _ensure_drill(self, job: DrillScheduleSpec) -> set:
        config_text = json.dumps(job.config, indent=2, sort_keys=True) + "\n"
        if self.files.ensure(DesiredFile(self.config_path(job.name), config_text, 0o600)):
            self.actions.append("%s: drill configuration" % job.name)
        drill = DrillJob(job.name, self.config_path(job.name), job.calendar, python=self.python, install_dir=self.install_dir)
        if self.scheduler == SYSTEMD:
            wanted = {os.path.join(self.systemd_dir, name): text for name, text in render_drill_systemd_units(drill).items()}
        else:
            wanted = {os.path.join(self.cron_dir, drill_unit_base_name(job.name)): render_drill_cron_file(drill)}
        for path, text in wanted.items():
            if self.files.ensure(DesiredFile(path, text, 0o644)):
                self.actions.append("%s: %s" % (job.name, path))
        return set(wanted)

    def _prune_units(self, wanted: set) -> None:
        managed = glob.glob(os.path.join(self.systemd_dir, _UNIT_GLOB + ".*")) + glob.glob(os.path.join(self.cron_dir, _UNIT_GLOB))
        for path in sorted(set(managed) - wanted):
            if path.endswith(".timer") and self.activate and not self.check_mode:
                self._systemctl("disable", "--now", os.path.basename(path), required=False)
            if self.files.remove(path):
                self.actions.append("removed %s" % path)

    def _prune_files(self, directory: str, pattern: str, wanted: set, secret: bool = False) -> None:
        """Files of a directory this module owns that nothing wants any more."""
        for path in sorted(set(glob.glob(os.path.join(directory, pattern))) - wanted):
            if os.path.isfile(path) and self.files.remove(path, secret=secret):
                self.actions.append("removed %s" % path)

    def _activate_drill_timers(self, names: list) -> None:
        if any(p.startswith(self.systemd_dir) for p in self.files.changes.written + self.files.changes.removed) and not self.check_mode:
            self._systemctl("daemon-reload")
        for name in names:
            timer = drill_unit_base_name(name) + ".timer"
            if self._is(timer, "is-enabled") and self._is(timer, "is-active"):
                continue
            self.actions.append("%s: %s %s" % (name, "would enable and start" if self.check_mode else "enabled and started", timer))
            self.files.changes.written.append(timer)
            if not self.check_mode:
                self._systemctl("enable", "--now", timer)
