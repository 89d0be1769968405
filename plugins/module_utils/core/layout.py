# -*- coding: utf-8 -*-
# Private to restorable.backup: every path the collection uses on a host, defined once.
# The controller imports it to plan (it writes these paths into job configurations) and the
# host code imports it to act; hosts that share one machine (tests, the demo) each live below
# a root of their own, so every path is relative to a root.
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

PACKAGE_NAME = "restorable_agent"  # the standalone copy of the engine on hosts
DEFAULT_INSTALL_DIR = "/usr/local/lib/restorable"
DEFAULT_STATUS_DIR = "/var/lib/restorable"
CONFIG_DIR = "/etc/restorable"


@dataclass(frozen=True)
class HostLayout:
    """The directories of one host below its root ("/" for a real host)."""

    root: str = "/"

    def below(self, path: str) -> str:
        return posixpath.join(self.root, path.lstrip("/"))

    @property
    def config_dir(self) -> str:
        return self.below(CONFIG_DIR)

    @property
    def secrets_dir(self) -> str:
        return self.below(CONFIG_DIR + "/secrets")

    @property
    def drill_config_dir(self) -> str:
        return self.below(CONFIG_DIR + "/drills")

    @property
    def drill_secrets_dir(self) -> str:
        """Copies of source repositories' credentials on a drill host: the job module owns every
        file in it and removes those no drill uses."""
        return self.below(CONFIG_DIR + "/secrets/drills")

    @property
    def status_dir(self) -> str:
        return self.below(DEFAULT_STATUS_DIR)

    @property
    def metrics_dir(self) -> str:
        return self.below(DEFAULT_STATUS_DIR + "/metrics")

    @property
    def scratch_dir(self) -> str:
        """Where host-tier points are staged before they go to their repositories."""
        return self.below(DEFAULT_STATUS_DIR + "/scratch")

    @property
    def evidence_dir(self) -> str:
        """Where scheduled drills keep their ledger and reports on a drill host."""
        return self.below(DEFAULT_STATUS_DIR + "/drills")

    @property
    def evidence_ledger(self) -> str:
        """The host's hash-chained ledger of runs and scheduled drills (see evidence/ledger.py)."""
        return self.below(DEFAULT_STATUS_DIR + "/evidence/ledger.jsonl")

    @property
    def install_dir(self) -> str:
        return self.below(DEFAULT_INSTALL_DIR)

    @property
    def systemd_dir(self) -> str:
        return self.below("/etc/systemd/system")

    @property
    def cron_dir(self) -> str:
        return self.below("/etc/cron.d")

    def job_config(self, name: str) -> str:
        return os.path.join(self.config_dir, name + ".json")

    def drill_config(self, name: str) -> str:
        return os.path.join(self.drill_config_dir, name + ".json")


@dataclass(frozen=True)
class DatasetFiles:
    """The files of one dataset's runs in a status directory (which a job may move)."""

    status_dir: str
    dataset: str

    def _file(self, suffix: str) -> str:
        return os.path.join(self.status_dir, self.dataset + suffix)

    @property
    def status(self) -> str:
        return self._file(".json")

    @property
    def lock(self) -> str:
        return self._file(".lock")

    @property
    def running(self) -> str:
        """A marker that exists while a run works: found at the next start, the run was killed."""
        return self._file(".running")

    @property
    def canary(self) -> str:
        """Where a job writes its freshness canary; drills on other hosts look for it there."""
        return self._file(".canary")

    @property
    def staging(self) -> str:
        """Scratch space of the consistency profile (dumps, client files)."""
        return os.path.join(self.status_dir, "staging", self.dataset)


def metrics_file(metrics_dir: str, dataset: str) -> str:
    """The node_exporter textfile of one dataset."""
    return os.path.join(metrics_dir, "restorable_%s.prom" % dataset)
