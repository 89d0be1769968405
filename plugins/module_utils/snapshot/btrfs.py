# -*- coding: utf-8 -*-
# Private to restorable.backup: btrfs subvolume snapshots.
"""btrfs: ``subvolume snapshot`` (writable), ``property set -ts PATH ro true``, ``subvolume delete``.

A snapshot is taken writable and sealed read-only later, after the profile wrote what a restore
needs into it; ``btrfs subvolume snapshot -r`` would make that impossible. Sources that need no
such completion (the CDP tier's points) take read-only snapshots at once, and send, receive and
inspect them (``subvolume show``) with the command lines below.
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

    def read_only_snapshot_argv(self, volume: str, destination: str) -> list[str]:
        return [self.program, "subvolume", "snapshot", "-r", volume, destination]

    def delete_argv(self, path: str, *more: str) -> list[str]:
        return [self.program, "subvolume", "delete", path, *more]

    def show_argv(self, path: str) -> list[str]:
        return [self.program, "subvolume", "show", path]

    def send_argv(self, path: str, parent: str | None = None) -> list[str]:
        return [self.program, "send"] + (["-p", parent] if parent else []) + [path]

    def receive_argv(self, directory: str) -> list[str]:
        # --chroot: whatever the stream says, nothing is written outside the directory.
        return [self.program, "receive", "--chroot", directory]

    def run(self, argv: list[str], what: str, timeout: float | None = BTRFS_TIMEOUT) -> CommandResult:
        """Run one btrfs command; SnapshotError naming `what` when it fails."""
        result = run_command(argv, env=base_env(_C_LOCALE), timeout=timeout)
        if not result.ok:
            raise SnapshotError("%s failed: %s" % (what, describe_failure(result)))
        return result

    def show(self, path: str) -> dict[str, str]:
        """The fields of ``btrfs subvolume show`` (UUID, Received UUID, Flags, ...)."""
        return parse_subvolume_show(self.run(self.show_argv(path), "inspecting subvolume %s" % path).stdout)

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
        self.run(self.create_argv(volume, destination), "btrfs snapshot of %s" % volume)
        return destination

    def make_read_only(self, path: str) -> None:
        self.run(self.read_only_argv(path), "making %s read-only" % path)

    def delete(self, path: str) -> None:
        self.run(self.delete_argv(path), "deleting snapshot %s" % path)


def parse_subvolume_show(text: str) -> dict[str, str]:
    """``Name:  value`` lines of ``btrfs subvolume show`` as a dict; "-" stands for no value."""
    fields = {}
    for line in text.splitlines()[1:]:  # the first line is the path
        key, sep, value = line.strip().partition(":")
        if sep and key and not key.startswith("Snapshot"):
            fields[key.strip()] = value.strip()
    return fields


def is_read_only(fields: dict[str, str]) -> bool:
    return "readonly" in fields.get("Flags", "").split()


def received_uuid(fields: dict[str, str]) -> str | None:
    value = fields.get("Received UUID", "-")
    return None if value in ("", "-") else value


PROVIDERS = {"btrfs": BtrfsSnapshotProvider}


def provider_from_name(name: str) -> SnapshotProvider:
    """The provider for a policy's ``provider`` (only btrfs runs on hosts so far)."""
    if name not in PROVIDERS:
        raise SnapshotError("snapshot provider %s is not available here (available: %s)" % (
            name, ", ".join(sorted(PROVIDERS))))
    return PROVIDERS[name]()
