# -*- coding: utf-8 -*-
"""Fixtures of the btrfs CDP system tests: two btrfs filesystems on loop devices (the source's and
the replica's), a replica host (a real sshd of its own, as root, so btrfs receive works) reached
with each dataset's own key, whose authorized_keys line carries the forced command for real, and
the standalone engine installed on it as the job module installs it on hosts.

Loop devices follow tests/system/snapshot (loop_helpers); the sshd is a host of the fleet plugin
(tests/system/fleet), stopped by its PID at the end of the session. Only what is started here is
stopped, and only the loop devices attached here are detached.
"""
from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "snapshot"))

from cdp_btrfs_helpers import Clock, Dataset, must  # noqa: E402  pylint: disable=wrong-import-position
from loop_helpers import LoopMount, loop_mount  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.restorable.backup.plugins.module_utils.converge.replica_access import (  # noqa: E402
    DEFAULT_PYTHON, ReplicaEntry)
from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import (  # noqa: E402
    install_standalone)

FS_MB = 2048
NEEDED = ("losetup", "mount", "mkfs.btrfs", "btrfs", "fsfreeze", "ssh", "sftp", "ssh-keygen", "/usr/sbin/sshd")
_NAMES = itertools.count(1)


def _unusable() -> str | None:
    """Why this machine cannot run the suite (CI runs it as root: a skip there fails .ci/junit_guard.py)."""
    missing = [tool for tool in NEEDED if not shutil.which(tool)]
    reasons = (["not root (loop devices, btrfs receive, the replica's sshd)"] if os.geteuid() else []) + \
        (["not installed: " + ", ".join(missing)] if missing else []) + \
        ([] if os.path.exists("/dev/loop-control") else ["no /dev/loop-control"])
    return "; ".join(reasons) or None


@dataclass
class CdpFilesystems:
    source: LoopMount
    replica: LoopMount


@pytest.fixture(scope="session")
def cdp_filesystems():
    reason = _unusable()
    if reason:
        pytest.skip(reason)
    holder = Path(tempfile.mkdtemp(prefix="restorable-cdp-"))
    source = loop_mount(holder / "source.img", holder / "source", "btrfs", FS_MB)
    try:
        replica = loop_mount(holder / "replica.img", holder / "replica", "btrfs", FS_MB)
    except BaseException:
        source.close()
        raise
    try:
        yield CdpFilesystems(source, replica)
    finally:
        replica.close()
        source.close()
        shutil.rmtree(holder, ignore_errors=True)


@pytest.fixture(scope="session")
def replica_host(cdp_filesystems, ssh_fleet_factory, tmp_path_factory):
    """The replica's sshd and the directory the engine is installed in (its forced commands run it)."""
    host = ssh_fleet_factory(1, prefix="cdpreplica")[0]
    install_dir = tmp_path_factory.mktemp("replica-engine")
    install_standalone(str(install_dir))
    os.chmod(install_dir, 0o755)
    return host, install_dir


@pytest.fixture
def dataset(cdp_filesystems, replica_host, tmp_path):
    """A dataset of its own: a new subvolume, a replica directory and a key that may only serve it."""
    host, install_dir = replica_host
    name = "data%d" % next(_NAMES)
    subvolume = cdp_filesystems.source.mountpoint / name
    must(["btrfs", "subvolume", "create", subvolume])
    key = tmp_path / "replica.key"
    must(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cdp-test", "-f", key])
    replica_root = cdp_filesystems.replica.mountpoint / "replicas" / "web01" / name
    entry = ReplicaEntry.from_params({"source": "web01", "dataset": name, "path": str(replica_root),
                                      "public_key": (tmp_path / "replica.key.pub").read_text()})
    with open(host.base_dir / "authorized_keys", "a", encoding="utf-8") as handle:
        handle.write(entry.authorized_line(str(install_dir), DEFAULT_PYTHON) + "\n")
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    return Dataset(name, subvolume, replica_root, key, status_dir, host.address, host.port, Clock())
