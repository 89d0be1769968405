# -*- coding: utf-8 -*-
"""A two-volume group frozen with fsfreeze; the watchdog's release mid-snapshot and on_failure."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from loop_helpers import loop_mount, must
from snapshot_helpers import group_snapshot, is_read_only, status_of

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import QuiesceFailed


def payload_in_image(image: str, tmp_path) -> bytes:
    """The payload file of an XFS image, mounted read-only WITHOUT log recovery."""
    device = must(["losetup", "-r", "-f", "--show", image]).strip()
    mountpoint = Path(tempfile.mkdtemp(dir=tmp_path))
    try:
        must(["mount", "-o", "ro,norecovery,nouuid", device, mountpoint])
        try:
            return (mountpoint / "payload").read_bytes()
        finally:
            must(["umount", mountpoint])
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def test_two_volume_group_frozen_with_fsfreeze(xfs_images, status_dir, tmp_path):
    """Each volume is a subvolume holding a disk image; the filesystems IN the images are frozen."""
    (vol_a, fs_a), (vol_b, fs_b) = xfs_images("disk-a"), xfs_images("disk-b")
    payloads = {}
    for volume, fs in ((vol_a, fs_a), (vol_b, fs_b)):
        payloads[str(volume)] = os.urandom(1 << 20)
        (fs.mountpoint / "payload").write_bytes(payloads[str(volume)])
    consistency = {"type": "fsfreeze", "max_freeze": "10s",
                   "fsfreeze": {"mountpoints": [str(fs_a.mountpoint), str(fs_b.mountpoint)]}}
    engine = group_snapshot("disks", [vol_a, vol_b], consistency, status_dir)
    manifest = engine.take()

    assert [entry["volume"] for entry in manifest["volumes"]] == [str(vol_a), str(vol_b)]
    assert manifest["consistent"] and manifest["profile"] == "fsfreeze"
    assert 0 < manifest["freeze_seconds"] < 10 and manifest["freeze"]["seconds"] == manifest["freeze_seconds"]
    for entry in manifest["volumes"]:
        assert is_read_only(entry["snapshot"])
        # Frozen while snapshotted: everything is in place on disk, readable without log recovery.
        assert payload_in_image(os.path.join(entry["snapshot"], "disk.img"), tmp_path) == payloads[entry["volume"]]
        with open(os.path.join(os.path.dirname(entry["snapshot"]), manifest["id"] + ".json"), encoding="utf-8") as handle:
            assert handle.read().count(manifest["id"]) >= 1  # every volume's filesystem holds the manifest
    assert fs_a.mountpoint.joinpath("after").write_text("thawed")  # not frozen any more
    assert status_of(status_dir, "disks")["consistency"]["seconds"] == manifest["freeze_seconds"]

    second = engine.take()
    assert [rp["id"] for rp in engine.recovery_points()] == [manifest["id"], second["id"]]
    assert engine.delete(manifest["id"])
    assert [rp["id"] for rp in engine.recovery_points()] == [second["id"]]
    assert not os.path.exists(manifest["volumes"][0]["snapshot"])


@pytest.fixture
def own_btrfs(tmp_path):
    """A btrfs of its own, safe to freeze (the session's holds the databases)."""
    fs = loop_mount(tmp_path / "frozen.img", tmp_path / "frozen", "btrfs", 320)
    yield fs
    fs.close()


@pytest.mark.parametrize("on_failure", ["fail", "crash_consistent"])
def test_watchdog_release_mid_snapshot(own_btrfs, status_dir, on_failure):
    """A snapshot of a frozen btrfs waits for the thaw: the watchdog thaws at max_freeze."""
    volume = own_btrfs.mountpoint / "vol"
    must(["btrfs", "subvolume", "create", volume])
    consistency = {"type": "fsfreeze", "max_freeze": "2s", "on_failure": on_failure,
                   "fsfreeze": {"mountpoints": [str(own_btrfs.mountpoint)]}}
    engine = group_snapshot("frozen", [volume], consistency, status_dir)
    snapshots = own_btrfs.mountpoint / ".restorable-snapshots"
    if on_failure == "fail":
        with pytest.raises(QuiesceFailed, match="max_freeze"):
            engine.take()
        assert os.listdir(snapshots / "vol") == []  # taken after the thaw, then removed
        assert status_of(status_dir, "frozen")["result"] == "failed"
    else:
        manifest = engine.take()
        assert not manifest["consistent"] and "max_freeze" in manifest["reason"]
        assert is_read_only(manifest["volumes"][0]["snapshot"])
        assert manifest["freeze_seconds"] > 1.5  # measured from the first freeze; the watchdog counts from arming
