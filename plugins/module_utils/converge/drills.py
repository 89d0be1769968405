# -*- coding: utf-8 -*-
# Private to restorable.backup: the scheduled restore drills of a drill host. The wanted set is
# the whole set: drills no longer in the policy lose their timer or cron entry and their
# configuration, and source credentials no drill uses any more are removed from the host.
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from .units import DrillJob, drill_unit_base_name, render_drill_cron_file, render_drill_systemd_units
from .files import DesiredFile
from .jobs import JobManager
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
        self.drill_config_dir = self.layout.drill_config_dir
        self.drill_secrets_dir = self.layout.drill_secrets_dir

    def converge(self, jobs: list, secrets: list = ()) -> None:
        for secret in secrets:
            self._ensure_secret(secret["path"], secret["content"])
        self._prune_files(self.drill_secrets_dir, "*", {s["path"] for s in secrets}, secret=True)
        self.install_runtime()
        wanted_units: set = set()
        for job in jobs:
            wanted_units.update(self._ensure_drill(job))
        self.prune_units(wanted_units, _UNIT_GLOB)
        self._prune_files(self.drill_config_dir, "*.json", {self.config_path(job.name) for job in jobs})
        self.activate_timers({job.name: drill_unit_base_name(job.name) + ".timer" for job in jobs})

    def config_path(self, name: str) -> str:
        return self.layout.drill_config(name)

    def _ensure_secret(self, path: str, content: str) -> None:
        if os.path.dirname(os.path.abspath(path)) != os.path.abspath(self.drill_secrets_dir):
            raise ValueError("drill credential %s must be in %s" % (path, self.drill_secrets_dir))
        if self.files.ensure(DesiredFile(path, content.rstrip("\n") + "\n", 0o600, secret=True)):
            self.actions.append("placed %s" % path)

    def _ensure_drill(self, job: DrillScheduleSpec) -> set:
        self.ensure_config(job.name, job.config, "drill configuration")
        drill = DrillJob(job.name, self.config_path(job.name), job.calendar, python=self.python, install_dir=self.install_dir)
        return self.ensure_schedule(job.name, lambda: render_drill_systemd_units(drill), drill_unit_base_name(job.name),
                                    lambda: render_drill_cron_file(drill))

    def _prune_files(self, directory: str, pattern: str, wanted: set, secret: bool = False) -> None:
        """Files of a directory this module owns that nothing wants any more."""
        for path in sorted(set(glob.glob(os.path.join(directory, pattern))) - wanted):
            if os.path.isfile(path) and self.files.remove(path, secret=secret):
                self.actions.append("removed %s" % path)
