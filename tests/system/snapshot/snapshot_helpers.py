# -*- coding: utf-8 -*-
"""Builds the engine under test the way the snapshot module does, and copies snapshots out."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ansible_collections.restorable.backup.plugins.module_utils.snapshot.btrfs import BtrfsSnapshotProvider
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.group import (
    ConsistencyGroupSnapshot, SnapshotGroup, group_snapshot_from_config)


def group_snapshot(name: str, volumes: list, consistency: dict, status_dir: Path) -> ConsistencyGroupSnapshot:
    return group_snapshot_from_config(SnapshotGroup(name, [str(v) for v in volumes]), BtrfsSnapshotProvider(),
                                      consistency, str(status_dir))


def copy_tree(source: Path, target: Path) -> Path:
    """A plain copy (cp -a) of a snapshot's directory: what a restore into a sandbox does."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


def is_read_only(path: str) -> bool:
    out = subprocess.run(["btrfs", "property", "get", "-ts", path, "ro"], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "ro=true"


def status_of(status_dir: Path, group: str) -> dict:
    return json.loads((status_dir / ("snapshot-%s.json" % group)).read_text())
