# -*- coding: utf-8 -*-
# Private to restorable.backup: the interface every snapshot provider implements.
"""A snapshot provider snapshots one volume at a time; the group engine calls it.

``create(volume, destination)`` makes a WRITABLE snapshot, so that a profile can still add files
to it (a PostgreSQL backup_label); ``make_read_only(path)`` seals it afterwards;
``delete(path)`` removes one. ``snapshot_root(volume, snapshot_dir)`` says where a volume's
recovery points live: one directory per recovery point id below it, and the manifest beside them.
"""
from __future__ import annotations

import abc
import os


class SnapshotError(Exception):
    """A snapshot could not be created, sealed, listed or deleted; the message says why."""


class SnapshotProvider(abc.ABC):
    """Creates, seals and deletes snapshots of single volumes."""

    name = "base"

    def snapshot_root(self, volume: str, snapshot_dir: str | None = None) -> str:
        """The directory holding this volume's recovery points.

        Default ``<volume parent>/.restorable-snapshots/<volume name>`` (on the volume's own
        filesystem, where copy-on-write snapshots must live); with snapshot_dir,
        ``<snapshot_dir>/<volume name>``.
        """
        volume = os.path.normpath(volume)
        base = snapshot_dir or os.path.join(os.path.dirname(volume), ".restorable-snapshots")
        return os.path.join(base, os.path.basename(volume))

    @abc.abstractmethod
    def check_volume(self, volume: str) -> None:
        """Raise SnapshotError when volume cannot be snapshotted (cheap checks, before any freeze)."""

    @abc.abstractmethod
    def create(self, volume: str, destination: str) -> str:
        """A writable snapshot of volume at destination (which must not exist); its path."""

    @abc.abstractmethod
    def make_read_only(self, path: str) -> None:
        """Seal a snapshot created by create()."""

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Remove a snapshot (read-only or not)."""
