# -*- coding: utf-8 -*-
"""Helpers of the drill system tests: a real restic repository backed up by the real runner."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# Makes ansible_collections.restorable.backup importable (this checkout).
import collection_path  # noqa: F401,E402  pylint: disable=unused-import

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import load_job_config  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import runner_for as BackupRunner  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.core.status import StatusStore  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.agent.drill import run_agent_drill  # noqa: E402

PASSWORD = "drill-test-password-5b2e"
HOST = "src-host"


@dataclass
class Source:
    """A source host's dataset with its repository, job config and status."""

    root: Path
    data: Path
    repository: Path
    config: Path
    dataset: str = "www"

    def restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env["RESTIC_PASSWORD_FILE"] = str(self.root / "password")
        env["RESTIC_CACHE_DIR"] = str(self.root / "cache")
        return subprocess.run(["restic", "-r", str(self.repository), *args], env=env, capture_output=True,
                              text=True, check=check)

    def backup(self) -> dict[str, Any]:
        status = BackupRunner(load_job_config(str(self.config)), RunOptions(ignore_window=True, ignore_load=True)).run()
        assert status.result == "success", status.reason
        return self.status()

    def status(self) -> dict[str, Any]:
        return StatusStore(str(self.root / "status"), self.dataset).load()

    def params(self, sandbox: Path, **overrides: Any) -> dict[str, Any]:
        params: dict[str, Any] = {
            "drill": "www-daily", "dataset": self.dataset, "source_host": HOST, "drill_host": "drill-host",
            "repository": {"url": str(self.repository), "password": PASSWORD, "env": {}, "options": []},
            "status": self.status(), "recovery_point": {"choice": "latest"}, "sample": {"mode": "all"},
            "checks": ["integrity", "freshness", "content"], "commands": [], "sandbox": str(sandbox),
            "protected_paths": [str(self.data)], "rto": "15m", "rpo": "1h",
            "read_data_subset": "100%", "timeout": 120.0, "keep_restore": False,
        }
        params.update(overrides)
        return params

    def drill(self, sandbox: Path, **overrides: Any) -> dict[str, Any]:
        return run_agent_drill(self.params(sandbox, **overrides))


def make_source(root: Path, files: int = 20) -> Source:
    root.mkdir(parents=True, exist_ok=True)
    data = root / "srv" / "www"
    data.mkdir(parents=True)
    for index in range(files):
        (data / ("page-%03d.html" % index)).write_text("<p>page %d</p>\n" % index * (index + 1))
    (data / "blob.bin").write_bytes(os.urandom(300 * 1024))
    password = root / "password"
    password.write_text(PASSWORD)
    password.chmod(0o600)
    repository = root / "repository"
    config = root / "www.json"
    config.write_text(json.dumps({
        "format": 1, "dataset": "www", "host": HOST,
        "repository": {"url": str(repository), "password_file": str(password)},
        "paths": [str(data)], "status_dir": str(root / "status"), "retention": {"last": 10},
        "restic": {"cache_dir": str(root / "cache")},
    }))
    source = Source(root, data, repository, config)
    source.restic("init")
    return source
