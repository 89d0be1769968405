# -*- coding: utf-8 -*-
# Private to restorable.backup: btrfs subvolume snapshots.
"""btrfs: ``subvolume snapshot`` (writable), ``property set -ts PATH ro true``, ``subvolume delete``.

A snapshot is taken writable and sealed read-only later, after the profile wrote what a restore
needs into it; ``btrfs subvolume snapshot -r`` would make that impossible.
"""
from __future__ import annotations

import os
import shutil

from ..common.process import CommandResult, base_env, run_command
from .provider import SnapshotError, SnapshotProvider

BTRFS_TIMEOUT = 120.0
_C_LOCALE = {"LC_ALL": "C"}


def describe_failure(result: CommandResult) -> str:
    if result.timed_out:
        return "timed out"
    return result.stderr_tail(2) or "exit code %d" % result.returncode


class BtrfsSnapshotProvider(SnapshotProvider):
    """Snapshots of btrfs subvolumes, kept on the same filesystem."""

    name = "btrfs"

    def __init__(self, program: str | None = None) -> None:
        self.program = program or shutil.which("btrfs") or "/usr/bin/btrfs"

    def create_argv(self, volume: str, destination: str) -> list[str]:
        return [self.program, "subvolume", "snapshot", volume, destination]

    def read_only_argv(self, path: str) -> list[str]:
        return [self.program, "property", "set", "-ts", path, "ro", "true"]

    def delete_argv(self, path: str) -> list[str]:
        return [self.program, "subvolume", "delete", path]

    def _run(self, argv: list[str], what: str) -> None:
        result = run_command(argv, env=base_env(_C_LOCALE), timeout=BTRFS_TIMEOUT)
        if not result.ok:
            raise SnapshotError("%s failed: %s" % (what, describe_failure(result)))

    def check_volume(self, volume: str) -> None:
        if not os.path.isabs(volume):
            raise SnapshotError("volume %s is not an absolute path" % volume)
        if not os.path.isdir(volume):
            raise SnapshotError("volume %s does not exist or is not a directory" % volume)

    def create(self, volume: str, destination: str) -> str:
        # An existing destination directory would receive the snapshot INSIDE it.
        if os.path.lexists(destination):
            raise SnapshotError("snapshot destination %s exists already" % destination)
        os.makedirs(os.path.dirname(destination), mode=0o700, exist_ok=True)
        self._run(self.create_argv(volume, destination), "btrfs snapshot of %s" % volume)
        return destination

    def make_read_only(self, path: str) -> None:
        self._run(self.read_only_argv(path), "making %s read-only" % path)

    def delete(self, path: str) -> None:
        self._run(self.delete_argv(path), "deleting snapshot %s" % path)


PROVIDERS = {"btrfs": BtrfsSnapshotProvider}


def provider_from_name(name: str) -> SnapshotProvider:
    """The provider for a policy's ``provider`` (only btrfs runs on hosts so far)."""
    if name not in PROVIDERS:
        raise SnapshotError("snapshot provider %s is not available here (available: %s)" % (
            name, ", ".join(sorted(PROVIDERS))))
    return PROVIDERS[name]()
