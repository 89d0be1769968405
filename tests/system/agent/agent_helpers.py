# -*- coding: utf-8 -*-
"""Helpers of the agent system tests: the agent installed as on a host, and job configs.

The agent runs exactly as the systemd unit runs it: the standalone package copied to a
directory, started as `python3 -m restorable_agent run --config FILE` in a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


# Makes ansible_collections.restorable.backup importable (this checkout).
import collection_path  # noqa: F401,E402  pylint: disable=unused-import

from ansible_collections.restorable.backup.plugins.module_utils.core.layout import PACKAGE_NAME  # noqa: E402

# The host's interpreter (what the unit's ExecStart uses), else the one running the tests.
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class AgentHarness:
    """Writes job configs and runs the installed agent on them."""

    def __init__(self, install_dir: Path, root: Path) -> None:
        self.install_dir = install_dir
        self.root = root

    def config(self, dataset: str, repository: str, password_file: Path, paths: list[str],
               **fields: Any) -> Path:
        document: dict[str, Any] = {
            "format": 1, "dataset": dataset, "host": "testhost",
            "repository": {"url": repository, "password_file": str(password_file)},
            "paths": paths, "status_dir": str(self.root / "status"), "metrics_dir": str(self.root / "metrics"),
            "restic": {"cache_dir": str(self.root / "cache")},
        }
        for key, value in fields.items():
            if key in ("env_file", "options"):
                document["repository"][key] = value
            else:
                document[key] = value
        path = self.root / ("%s.json" % dataset)
        path.write_text(json.dumps(document, indent=2))
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_", "PYTHON"))}
        env["PYTHONPATH"] = str(self.install_dir)
        return env

    def command(self, action: str, config: Path, *args: str) -> list[str]:
        return [HOST_PYTHON, "-m", PACKAGE_NAME, action, "--config", str(config), *args]

    def start(self, config: Path, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command("run", config, *args), env=self.env(), cwd="/",
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def run(self, config: Path, *args: str, timeout: float = 300) -> "AgentRun":
        started = time.monotonic()
        proc = subprocess.run(self.command("run", config, *args), env=self.env(), cwd="/", capture_output=True,
                              text=True, timeout=timeout, check=False)
        return AgentRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def cli(self, action: str, config: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(action, config, *args), env=self.env(), cwd="/", capture_output=True,
                              text=True, timeout=120, check=False)

    def status(self, dataset: str) -> dict[str, Any]:
        return json.loads((self.root / "status" / ("%s.json" % dataset)).read_text())

    def metrics(self, dataset: str) -> str:
        return (self.root / "metrics" / ("restorable_%s.prom" % dataset)).read_text()


class AgentRun:
    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds

    @property
    def result(self) -> dict[str, Any]:
        assert self.stdout.strip(), "no result printed; stderr: %s" % self.stderr
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return "AgentRun(rc=%d, stdout=%s, stderr=%s)" % (self.returncode, self.stdout[-2000:], self.stderr[-2000:])


def restic_snapshots(repo_env: dict[str, str], url: str, *filters: str) -> list[dict[str, Any]]:
    proc = subprocess.run(["restic", "-r", url, "snapshots", "--json", *filters], env=repo_env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def scan_cmdlines(needles: list[str]) -> tuple[list[str], list[list[str]]]:
    """(hits, restic argvs seen): every process whose argv contains a needle."""
    hits, seen = [], []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        text = " ".join(argv)
        if argv and os.path.basename(argv[0]) == "restic":
            seen.append(argv + ["pid=" + entry])
        for needle in needles:
            if needle in text:
                hits.append("pid %s: %s" % (entry, text))
    return hits, seen


def random_tree(root: Path, files: int, size: int) -> Path:
    """files random (incompressible, undeduplicable) files of size bytes under root."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        with open(root / ("f%04d.bin" % index), "wb") as handle:
            left = size
            while left > 0:
                chunk = min(left, 4 << 20)
                handle.write(os.urandom(chunk))
                left -= chunk
    return root
