# -*- coding: utf-8 -*-
"""Helpers of the btrfs CDP system tests: a clock the runs share, the Runner with the CDP tier's
driver, and looks at both filesystems with btrfs's own commands."""
from __future__ import annotations

import datetime
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import collection_path  # noqa: F401  pylint: disable=unused-import  # the checkout's collection

from ansible_collections.restorable.backup.plugins.module_utils.core.driver import RunRecord
from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions, Runner
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.driver import CdpDriver

POINT = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")


def must(argv: list, timeout: float = 120, **kwargs: Any) -> str:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(str(a) for a in argv), result.returncode, result.stderr))
    return result.stdout


def show(path: Path) -> dict[str, str]:
    """`btrfs subvolume show` as a dict (Flags, Received UUID, Parent UUID, UUID)."""
    fields = {}
    for line in must(["btrfs", "subvolume", "show", path]).splitlines()[1:]:
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def names_in(directory: Path) -> list[str]:
    """The point names in a directory (what a listing of the source or the replica shows)."""
    return sorted(entry for entry in os.listdir(directory) if POINT.match(entry)) if directory.is_dir() else []


class Clock:
    """The time every run of a test sees, moved on by the test: point names come from it."""

    def __init__(self, start: datetime.datetime | None = None) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.now = start or now - datetime.timedelta(hours=1)

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> datetime.datetime:
        self.now += datetime.timedelta(**delta)
        return self.now


@dataclass
class Dataset:
    """One CDP dataset of a test: its subvolume on the source filesystem, its directory on the
    replica's, the source's own key (forced command in the replica's authorized_keys) and status."""

    name: str
    subvolume: Path
    replica_root: Path
    key: Path
    status_dir: Path
    replica_address: str
    replica_port: int
    clock: Clock = field(default_factory=Clock)

    @property
    def snapshot_dir(self) -> Path:
        return self.subvolume.parent / ".restorable-cdp" / self.name

    def ssh_options(self) -> list[str]:
        return ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR"]

    def options(self, replica: bool = True, snapshot_dir: Path | None = None, **more: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"source": {"type": "btrfs", "subvolume": str(self.subvolume)}, "interval_minutes": 1}
        if snapshot_dir:
            options["source"]["snapshot_dir"] = str(snapshot_dir)
        if replica:
            options["replica"] = {"host": self.replica_address, "port": self.replica_port, "user": "root",
                                  "path": str(self.replica_root), "identity_file": str(self.key),
                                  "ssh_options": self.ssh_options(), "full_resend": more.pop("full_resend", False)}
        options.update(more)
        return options

    def config(self, consistency: dict | None = None, **options: Any) -> JobConfig:
        document = {"format": 1, "tier": "cdp", "dataset": self.name, "host": "web01", "status_dir": str(self.status_dir),
                    "options": self.options(**options)}
        if consistency:
            document["consistency"] = consistency
        return JobConfig.from_dict(document)

    def run(self, config: JobConfig | None = None, minutes: float = 1) -> RunRecord:
        """One run of the job, `minutes` after the last one on the test's clock."""
        self.clock.advance(minutes=minutes)
        config = config or self.config()
        return Runner(config, CdpDriver(config), RunOptions(ignore_window=True, ignore_load=True), now=self.clock).run()

    def write(self, relative: str, text: str) -> None:
        path = self.subvolume / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def source_points(self) -> list[str]:
        return names_in(self.snapshot_dir)

    def replica_points(self) -> list[str]:
        return names_in(self.replica_root)

    def replica_point(self, name: str) -> Path:
        return self.replica_root / name / name

    def ssh(self, command: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        """What the source's key can do on the replica, asked for directly."""
        argv = ["ssh", *self.ssh_options(), "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-p", str(self.replica_port), "root@%s" % self.replica_address, command]
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False)
