# -*- coding: utf-8 -*-
"""Point names, the two layouts of a point directory, the canary, btrfs command lines and output
(no btrfs needed: listing reads the directory)."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.snapshot.btrfs import (
    BtrfsSnapshotProvider, is_read_only, parse_subvolume_show, received_uuid)
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.provider import SnapshotError
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.points import (
    CANARY, PointStore, default_snapshot_dir, filesystem_type, is_point_name, point_name, point_time, read_canary,
    write_canary)

BTRFS = BtrfsSnapshotProvider(program="/usr/bin/btrfs")
SHOW = """data/.snapshots/20261125T120000Z
\tName: \t\t\t20261125T120000Z
\tUUID: \t\t\tb860e066-1a57-5443-9fde-b68553c27b6d
\tParent UUID: \t\t-
\tReceived UUID: \t\t71b7240b-9adf-e44f-a99a-d2718036a6d4
\tFlags: \t\t\treadonly
\tSnapshot(s):
\t\t\t\tdata/other
"""


def test_point_names_are_utc_seconds_and_nothing_else():
    when = datetime.datetime(2026, 11, 25, 13, 0, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert point_name(when) == "20261125T120005Z"
    assert point_time("20261125T120005Z") == when
    for bad in ("20261125T120005", "../20261125T120005Z", "20261125T120005Z/", ".20261125T120005Z", "latest", ""):
        assert not is_point_name(bad)
    with pytest.raises(ValueError):
        point_time("/etc/passwd")


def test_default_snapshot_dir_is_beside_the_subvolume():
    assert default_snapshot_dir("/srv/data/") == "/srv/.restorable-cdp/data"


def test_flat_and_nested_layouts(tmp_path):
    for name in ("20261125T120100Z", "20261125T120000Z", ".incoming", "notes.txt", "20261125T1201Z"):
        (tmp_path / name).mkdir()
    flat = PointStore(str(tmp_path))
    assert flat.names() == ["20261125T120000Z", "20261125T120100Z"]
    assert flat.path("20261125T120000Z") == str(tmp_path / "20261125T120000Z")
    nested = PointStore(str(tmp_path), nested=True)
    assert nested.path("20261125T120000Z") == str(tmp_path / "20261125T120000Z" / "20261125T120000Z")
    assert [when.minute for _name, when in nested.points()] == [0, 1]
    with pytest.raises(SnapshotError, match="not a point name"):
        flat.path("../x")
    assert PointStore(str(tmp_path / "missing")).names() == []


def test_a_copy_or_rollback_never_goes_over_anything(tmp_path):
    store = PointStore(str(tmp_path / "points"), btrfs=BTRFS)
    (tmp_path / "taken").mkdir()
    with pytest.raises(SnapshotError, match="exists already"):
        store.writable_copy("20261125T120000Z", str(tmp_path / "taken"))
    with pytest.raises(SnapshotError, match="does not exist"):
        store.writable_copy("20261125T120000Z", str(tmp_path / "free"))
    (tmp_path / "points" / "20261125T120000Z").mkdir(parents=True)
    with pytest.raises(SnapshotError, match="not a btrfs subvolume"):
        store.rollback(str(tmp_path / "taken"), "20261125T120000Z", datetime.datetime.now(datetime.timezone.utc))
    assert (tmp_path / "taken").is_dir()


def test_canary_round_trip_and_damage(tmp_path):
    write_canary(str(tmp_path), "data", "20261125T120000Z", "ab12", "2026-11-25T12:00:00Z")
    assert read_canary(str(tmp_path))["point"] == "20261125T120000Z"
    (tmp_path / CANARY).write_text("[1]")
    with pytest.raises(ValueError, match="not an object"):
        read_canary(str(tmp_path))
    (tmp_path / CANARY).write_text("{")
    with pytest.raises(ValueError, match="unreadable"):
        read_canary(str(tmp_path))
    (tmp_path / CANARY).unlink()
    with pytest.raises(ValueError, match="no canary"):
        read_canary(str(tmp_path))


def test_filesystem_type_takes_the_deepest_mount(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / %s rw - btrfs /dev/loop0 rw\n"
        "41 40 0:51 / %s/with\\040space rw - tmpfs tmpfs rw\n" % (tmp_path, tmp_path))
    (tmp_path / "with space").mkdir()
    assert filesystem_type(str(tmp_path / "not" / "yet"), str(mountinfo)) == "btrfs"
    assert filesystem_type(str(tmp_path / "with space" / "x"), str(mountinfo)) == "tmpfs"
    assert filesystem_type("/usr", str(mountinfo)) == "ext4"


def test_btrfs_command_lines_of_points():
    assert BTRFS.read_only_snapshot_argv("/srv/data", "/s/p") == [
        "/usr/bin/btrfs", "subvolume", "snapshot", "-r", "/srv/data", "/s/p"]
    assert BTRFS.delete_argv("/s/a", "/s/b") == ["/usr/bin/btrfs", "subvolume", "delete", "/s/a", "/s/b"]
    assert BTRFS.send_argv("/s/b", "/s/a") == ["/usr/bin/btrfs", "send", "-p", "/s/a", "/s/b"]
    assert BTRFS.send_argv("/s/b") == ["/usr/bin/btrfs", "send", "/s/b"]
    assert BTRFS.receive_argv("/r/.incoming/x") == ["/usr/bin/btrfs", "receive", "--chroot", "/r/.incoming/x"]


def test_subvolume_show_parsing():
    fields = parse_subvolume_show(SHOW)
    assert fields["Name"] == "20261125T120000Z"
    assert is_read_only(fields)
    assert received_uuid(fields) == "71b7240b-9adf-e44f-a99a-d2718036a6d4"
    writable = parse_subvolume_show(SHOW.replace("readonly", "-").replace("71b7240b-9adf-e44f-a99a-d2718036a6d4", "-"))
    assert not is_read_only(writable)
    assert received_uuid(writable) is None
