# -*- coding: utf-8 -*-
# Private to restorable.backup: the recovery points of a btrfs CDP dataset. A point is a
# read-only snapshot named by its UTC time (YYYYMMDDTHHMMSSZ), so names sort by time and a
# directory listing is the list of points: no btrfs command is spent on finding them.
"""Two layouts of one directory of points.

Flat (the source): ``<snapshot_dir>/<name>`` is the read-only snapshot itself; ``btrfs
subvolume snapshot -r`` makes it in one step, so a point either exists whole or not at all.

Nested (the replica): ``<root>/<name>/<name>``. ``btrfs receive`` creates the subvolume under the
name the stream carries and seals it read-only at the very end; a read-only subvolume cannot move
to another directory (the kernel refuses to update its ``..``), so each receive goes into a fresh
plain directory ``<root>/.incoming/<name>/`` and, once checked, that directory is renamed to
``<root>/<name>``: a point appears in one rename, whole and verified. Deleted points leave through
``<root>/.deleting/`` the same way. What a crash leaves in those two directories is swept later.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat
from typing import Any, Sequence

from ...common.fileio import atomic_write
from ...common.mounts import filesystem_type
from ...snapshot.btrfs import BTRFS_TIMEOUT, BtrfsSnapshotProvider
from ...snapshot.provider import SnapshotError

NAME_FORMAT = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
CANARY = ".restorable-cdp-canary"  # at the subvolume's root, so every point carries its own
INCOMING = ".incoming"
DELETING = ".deleting"
SUBVOLUME_INODE = 256  # btrfs: the root directory of every subvolume has this inode number


def point_name(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime(NAME_FORMAT)


def is_point_name(name: str) -> bool:
    return bool(_NAME.match(name))


def point_time(name: str) -> datetime.datetime:
    """The UTC time a point name stands for; ValueError for anything else."""
    if not is_point_name(name):
        raise ValueError("%r is not a point name (YYYYMMDDTHHMMSSZ)" % name)
    return datetime.datetime.strptime(name, NAME_FORMAT).replace(tzinfo=datetime.timezone.utc)


def default_snapshot_dir(subvolume: str) -> str:
    """``<parent>/.restorable-cdp/<name>``: on the subvolume's filesystem, where snapshots must
    live, apart from the array tier's ``.restorable-snapshots``."""
    subvolume = os.path.normpath(subvolume)
    return os.path.join(os.path.dirname(subvolume), ".restorable-cdp", os.path.basename(subvolume))


def is_subvolume(path: str) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_ino == SUBVOLUME_INODE


def require_btrfs(path: str, what: str) -> None:
    """SnapshotError unless path is on btrfs (points can only live there)."""
    try:
        kind = filesystem_type(path)
    except (OSError, ValueError, IndexError) as exc:
        raise SnapshotError("cannot tell the filesystem of %s %s: %s" % (what, path, exc)) from None
    if kind != "btrfs":
        raise SnapshotError("%s %s is on %s, not btrfs" % (what, path, kind or "an unknown filesystem"))


def _limit(timeout: float | None) -> float:
    """The run's time left, at most the time one btrfs command may take."""
    return BTRFS_TIMEOUT if timeout is None else min(timeout, BTRFS_TIMEOUT)


def _subvolumes_in(directory: str) -> list[str]:
    if os.path.islink(directory) or not os.path.isdir(directory):
        return []
    return [path for path in (os.path.join(directory, entry) for entry in os.listdir(directory)) if is_subvolume(path)]


# -- the canary -------------------------------------------------------------------------------

def write_canary(subvolume: str, dataset: str, name: str, token: str, written: str) -> None:
    """The file the next point carries: which point it is, and a token only the source recorded."""
    document = {"dataset": dataset, "point": name, "token": token, "written": written}
    atomic_write(os.path.join(subvolume, CANARY), json.dumps(document, sort_keys=True) + "\n", mode=0o644)


def read_canary(root: str) -> dict[str, Any]:
    """The canary at the root of a point or its copy; ValueError saying what is wrong with it."""
    path = os.path.join(root, CANARY)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise ValueError("no canary %s" % CANARY) from None
    except (OSError, ValueError) as exc:
        raise ValueError("canary %s unreadable: %s" % (CANARY, exc)) from None
    if not isinstance(document, dict):
        raise ValueError("canary %s is not an object" % CANARY)
    return document


# -- the store --------------------------------------------------------------------------------

class PointStore:
    """The points in one directory, flat (source) or nested (replica)."""

    def __init__(self, directory: str, nested: bool = False, btrfs: BtrfsSnapshotProvider | None = None) -> None:
        self.directory = os.path.normpath(directory)
        self.nested = nested
        self.btrfs = btrfs or BtrfsSnapshotProvider()

    def path(self, name: str) -> str:
        """The point's subvolume."""
        if not is_point_name(name):
            raise SnapshotError("%r is not a point name (YYYYMMDDTHHMMSSZ)" % name)
        if self.nested:
            return os.path.join(self.directory, name, name)
        return os.path.join(self.directory, name)

    def names(self) -> list[str]:
        """Every point, oldest first; a missing directory holds none."""
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(entry for entry in entries if is_point_name(entry))

    def points(self) -> list[tuple[str, datetime.datetime]]:
        return [(name, point_time(name)) for name in self.names()]

    def take(self, subvolume: str, name: str, command_prefix: Sequence[str] = (), timeout: float | None = None) -> str:
        """A read-only snapshot of subvolume as point `name` (flat layout); its path."""
        destination = self.path(name)
        if os.path.lexists(destination):
            raise SnapshotError("point %s exists already in %s (runs less than a second apart?)" % (name, self.directory))
        argv = list(command_prefix) + self.btrfs.read_only_snapshot_argv(subvolume, destination)
        self.btrfs.run(argv, "btrfs snapshot of %s" % subvolume, timeout=_limit(timeout))
        return destination

    def delete(self, names: Sequence[str], timeout: float | None = None) -> None:
        """Delete points with one btrfs command; nested ones first leave the listing by a rename."""
        if not names:
            return
        paths = [self.path(name) for name in names]
        if self.nested:
            trash = os.path.join(self.directory, DELETING)
            os.makedirs(trash, mode=0o700, exist_ok=True)
            for name in names:
                os.rename(os.path.join(self.directory, name), os.path.join(trash, name))
            paths = [os.path.join(trash, name, name) for name in names]
        self.btrfs.run(self.btrfs.delete_argv(*paths), "deleting %d point(s) in %s" % (len(paths), self.directory),
                       timeout=_limit(timeout))
        if self.nested:
            for name in names:
                os.rmdir(os.path.join(self.directory, DELETING, name))

    def sweep(self) -> list[str]:
        """Remove what interrupted receives and deletions left in .incoming and .deleting; what went."""
        leftovers = self._leftovers()
        subvolumes = [path for wrapper in leftovers for path in _subvolumes_in(wrapper)]
        if subvolumes:
            self.btrfs.run(self.btrfs.delete_argv(*subvolumes), "removing %d leftover subvolume(s)" % len(subvolumes))
        for wrapper in leftovers:
            if os.path.isdir(wrapper) and not os.path.islink(wrapper):
                shutil.rmtree(wrapper)
            else:
                os.unlink(wrapper)
        return leftovers

    def _leftovers(self) -> list[str]:
        found = []
        for scratch in (INCOMING, DELETING):
            top = os.path.join(self.directory, scratch)
            try:
                found += [os.path.join(top, entry) for entry in sorted(os.listdir(top))]
            except FileNotFoundError:
                continue
        return found

    def show(self, name: str) -> dict[str, str]:
        return self.btrfs.show(self.path(name))

    def writable_copy(self, name: str, destination: str) -> str:
        """A writable snapshot of the point at destination (which must not exist, on the same filesystem)."""
        if os.path.lexists(destination):
            raise SnapshotError("%s exists already: a copy never goes over anything" % destination)
        source = self.path(name)
        if not os.path.isdir(source):
            raise SnapshotError("point %s does not exist in %s" % (name, self.directory))
        self.btrfs.run(self.btrfs.create_argv(source, destination), "writable copy of point %s" % name)
        return destination

    def rollback(self, subvolume: str, name: str, now: datetime.datetime) -> str:
        """Put the point back in place of subvolume, the current state kept aside as
        ``<subvolume>.before-<point>-<now>``; the path kept aside."""
        subvolume = os.path.normpath(subvolume)
        aside = "%s.before-%s-%s" % (subvolume, name, point_name(now))
        source = self.path(name)
        if not os.path.isdir(source):
            raise SnapshotError("point %s does not exist in %s" % (name, self.directory))
        if not is_subvolume(subvolume):
            raise SnapshotError("%s is not a btrfs subvolume: nothing is rolled back" % subvolume)
        if os.path.lexists(aside):
            raise SnapshotError("%s exists already: nothing is rolled back" % aside)
        try:
            os.rename(subvolume, aside)
        except OSError as exc:
            raise SnapshotError("cannot move %s aside to %s: %s" % (subvolume, aside, exc.strerror)) from None
        try:
            self.btrfs.run(self.btrfs.create_argv(source, subvolume), "rollback of %s to point %s" % (subvolume, name))
        except SnapshotError:
            os.rename(aside, subvolume)  # the current state goes back where it was
            raise
        return aside
