# -*- coding: utf-8 -*-
"""Fixtures of the tape library system tests: a btrfs on a loop device for the session (libraries
and the volumes whose send streams go to tape live on it), a factory writing library
configurations, a movable clock and libraries built on them.

Loop devices follow tests/system/snapshot (loop_helpers); only the loop devices and mounts made
here are detached and unmounted. Drivers' tests (directory here, s3 beside it) take these fixtures
by name: tape_fs, tape_clock, library_config_file, tape_library.
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "snapshot"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loop_helpers import LoopMount, loop_mount, must  # noqa: E402  pylint: disable=wrong-import-position
from tape_helpers import Clock, library_config, write_config  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import (  # noqa: E402
    open_library)

FS_MB = 1536
NEEDED = ("losetup", "mount", "umount", "mkfs.btrfs", "btrfs", "lsattr", "tar")
_NAMES = itertools.count(1)


def _unusable() -> str | None:
    """Why this machine cannot run the suite (CI runs it as root: a skip there fails .ci/junit_guard.py)."""
    missing = [tool for tool in NEEDED if not shutil.which(tool)]
    reasons = (["not root (loop devices, inode attributes)"] if os.geteuid() else []) + \
        (["not installed: " + ", ".join(missing)] if missing else []) + \
        ([] if os.path.exists("/dev/loop-control") else ["no /dev/loop-control"])
    return "; ".join(reasons) or None


@dataclass
class TapeFilesystem:
    """The session's btrfs: fresh(name) is a new directory on it, subvolume(name) a new subvolume."""

    mount: LoopMount

    @property
    def root(self) -> Path:
        return self.mount.mountpoint

    def fresh(self, name: str) -> Path:
        path = self.root / ("%s-%d" % (name, next(_NAMES)))
        path.mkdir()
        return path

    def subvolume(self, name: str) -> Path:
        path = self.root / ("%s-%d" % (name, next(_NAMES)))
        must(["btrfs", "subvolume", "create", path])
        return path


@pytest.fixture(scope="session")
def tape_fs():
    reason = _unusable()
    if reason:
        pytest.skip(reason)
    holder = Path(tempfile.mkdtemp(prefix="restorable-tape-"))
    fs = loop_mount(holder / "tape.img", holder / "mnt", "btrfs", FS_MB)
    try:
        yield TapeFilesystem(fs)
    finally:
        fs.close()  # unmounts and detaches; WORM files inside go with the image
        shutil.rmtree(holder, ignore_errors=True)


@pytest.fixture
def tape_clock() -> Clock:
    return Clock()


@pytest.fixture
def library_config_file(tape_fs):
    """write(name, **fields) -> path of a library configuration JSON (tape_helpers.library_config);
    a directory library gets a fresh directory on the session's btrfs unless `path` is given."""
    configs = tape_fs.fresh("configs")

    def write(name: str = "vtl01", path: Path | None = None, **fields) -> Path:
        where = path or tape_fs.fresh("library-" + name)
        return write_config(configs / ("%s.json" % name), library_config(name, where, **fields))

    return write


@pytest.fixture
def tape_library(library_config_file, tape_clock):
    """make(name, **fields) -> an ensured TapeLibrary on the session's btrfs, clock = tape_clock."""
    made = []

    def make(name: str = "vtl01", **fields):
        library = open_library(str(library_config_file(name, **fields)), now=tape_clock)
        library.ensure()
        made.append(library)
        return library

    yield make
    for library in made:
        library.close()


@pytest.fixture
def ramfs():
    """A ramfs mount (a filesystem without append-only/immutable attributes), unmounted after."""
    if _unusable():
        pytest.skip(_unusable())
    mountpoint = Path(tempfile.mkdtemp(prefix="restorable-tape-ramfs-"))
    must(["mount", "-t", "ramfs", "ramfs", mountpoint])
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False).returncode == 0:
            mountpoint.rmdir()
