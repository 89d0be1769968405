# -*- coding: utf-8 -*-
"""Helpers of the array tier's system tests: datasets run through the real Runner (the registry's
runner_for with a job configuration), directory tape libraries with small cartridges, sandboxes on
btrfs, and looks at trees and cartridges."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import collection_path  # noqa: F401  pylint: disable=unused-import  # the checkout's collection

from ansible_collections.restorable.backup.plugins.module_utils.core.driver import RunRecord
from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions
from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import runner_for

MB = 1000 * 1000
_LIBRARIES = itertools.count(1)
_SANDBOXES = itertools.count(1)


def run(argv: list, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False, **kwargs)


@dataclass
class ArrayDataset:
    """One array dataset of a test: its volumes (subvolumes of the test's btrfs) and status."""

    name: str
    volumes: list[Path]
    status_dir: Path

    def snapshot(self, volume: Path, point: str) -> Path:
        return volume.parent / ".restorable-snapshots" / volume.name / point

    def points(self) -> list[str]:
        root = self.volumes[0].parent / ".restorable-snapshots" / self.volumes[0].name
        return sorted(entry[:-5] for entry in os.listdir(root) if entry.endswith(".json")) if root.is_dir() else []

    def config(self, library: Path | None = None, pool: str = "daily", consistency: dict | None = None,
               every: int = 1, chain_length: int = 7, **options: Any) -> JobConfig:
        settings: dict[str, Any] = {"volumes": [str(v) for v in self.volumes], "provider": "btrfs"}
        if library is not None:
            settings["export"] = {"library_config": str(library), "pool": pool, "every": every,
                                  "chain_length": chain_length}
        settings.update(options)
        document = {"format": 1, "tier": "array", "dataset": self.name, "host": "storage01",
                    "status_dir": str(self.status_dir), "options": settings}
        if consistency:
            document["consistency"] = consistency
        return JobConfig.from_dict(document, source="%s.json" % self.name)

    def run(self, config: JobConfig) -> RunRecord:
        return runner_for(config, RunOptions(ignore_window=True, ignore_load=True)).run()

    def state(self) -> dict:
        return json.loads((self.status_dir / ("%s.array.json" % self.name)).read_text())

    def drill_params(self, library: Path, sandbox: Path, **more: Any) -> dict:
        params = {"tier": "array", "dataset": self.name, "drill": "tape-drill", "library_config": str(library),
                  "volumes": [str(v) for v in self.volumes], "point": "latest", "recall": False,
                  "sandbox": str(sandbox), "checks": ["catalog", "media", "freshness", "content"],
                  "rpo": 3600, "rto": 900, "expect_volumes": len(self.volumes)}
        params.update(more)
        return params


class Libraries:
    """Directory tape libraries of one test, each in a directory of its own on the XFS."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Path] = []

    def make(self, capacity_bytes: int, slots: int = 12, pools: dict | None = None) -> Path:
        name = "vtl%02d" % next(_LIBRARIES)
        home = self.root / name
        home.mkdir()
        self.made.append(home)
        path = self.root / ("%s.json" % name)
        self.write(path, name, home, capacity_bytes, slots, pools)
        return path

    @staticmethod
    def write(path: Path, name: str, home: Path, capacity_bytes: int, slots: int, pools: dict | None = None) -> None:
        document = {"format": 1, "name": name, "driver": "directory", "path": str(home), "state_dir": str(home),
                    "slots": slots, "drives": 2, "media": {"type": "LTO-8", "capacity_bytes": capacity_bytes},
                    "pools": pools or {"daily": {"retention_days": 35, "barcode_prefix": "DA"}},
                    "vault": {"destination": "ironmountain"}}
        path.write_text(json.dumps(document))

    def close(self) -> None:
        for home in self.made:
            run(["chattr", "-R", "-i", "-a", home])  # WORM pools' attributes: only the test's own library
            shutil.rmtree(home, ignore_errors=True)
            Path(str(home) + ".json").unlink(missing_ok=True)


def cartridge_file(library: Path, barcode: str) -> Path:
    """Where the directory driver keeps a cartridge, wherever it is (slot, drive, vault)."""
    home = Path(json.loads(library.read_text())["path"])
    found = [path for path in home.rglob("cartridge") if path.parent.name == barcode]
    assert len(found) == 1, "cartridge %s: %s" % (barcode, found)
    return found[0]


class Sandboxes:
    """Restore sandboxes on the btrfs; whatever subvolumes a test left in them are deleted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Path] = []

    def new(self) -> Path:
        self.root.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.root, 0o755)
        path = self.root / ("box%d" % next(_SANDBOXES))
        path.mkdir(mode=0o755)
        os.chmod(path, 0o755)
        self.made.append(path)
        return path

    def close(self) -> None:
        for box in self.made:
            if not box.exists():
                continue
            mount = self.root.parent
            inside = os.path.relpath(box, mount) + "/"
            listing = run(["btrfs", "subvolume", "list", mount]).stdout
            nested = sorted((line.split(" path ", 1)[1] for line in listing.splitlines() if " path " in line),
                            key=len, reverse=True)
            for relative in [path for path in nested if path.startswith(inside)]:
                run(["btrfs", "property", "set", "-ts", mount / relative, "ro", "false"])
                run(["btrfs", "subvolume", "delete", mount / relative])
            shutil.rmtree(box, ignore_errors=True)


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256 of a file, 'dir', or 'link -> target'} of a tree, for comparisons."""
    found = {}
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in dirs:
            found[os.path.relpath(os.path.join(directory, name), root)] = "dir"
        for name in sorted(files):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            if os.path.islink(path):
                found[relative] = "link -> " + os.readlink(path)
            else:
                with open(path, "rb") as handle:
                    found[relative] = hashlib.sha256(handle.read()).hexdigest()
    return found


def tree_bytes(paths: list[Path]) -> int:
    return sum(int(run(["du", "-sb", path]).stdout.split()[0]) for path in paths)


def write_random(path: Path, size: int) -> None:
    """Incompressible data, so a stream's size is what the test asked for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))


def s3_library_config(path: Path, name: str, state_dir: Path, s3: dict[str, Any], capacity_bytes: int,
                      slots: int = 12, drives: int = 2, pools: dict | None = None) -> Path:
    """The configuration file of an S3-backed library (driver s3; `s3` as s3_tape_helpers.s3_settings
    makes it): cartridges are objects of the bucket, the state (catalog, s3-media.json, staging
    files) lives in state_dir."""
    document = {"format": 1, "name": name, "driver": "s3", "state_dir": str(state_dir), "slots": slots,
                "drives": drives, "media": {"type": "LTO-8", "capacity_bytes": capacity_bytes},
                "pools": pools or {"daily": {"retention_days": 35, "barcode_prefix": "DA"}},
                "vault": {"destination": "ironmountain-fra"}, "s3": s3}
    path.write_text(json.dumps(document))
    return path
