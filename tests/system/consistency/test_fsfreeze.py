# -*- coding: utf-8 -*-
"""fsfreeze profile on real XFS and btrfs filesystems: the thaw always happens, and in time.

Each test proves the filesystem really was frozen (a writer blocks) and really was thawed (a
writer finishes) instead of trusting return codes.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    QuiesceFailed, profile_from_config, quiesce_or_crash_consistent)

MARGIN = 1.5  # seconds beyond max_freeze that a thaw may take (watchdog poll, fsfreeze, writer)


def fsfreeze_profile(mountpoints, status_dir, max_freeze="5s", on_failure=None):
    config = {"type": "fsfreeze", "max_freeze": max_freeze, "fsfreeze": {"mountpoints": [str(m) for m in mountpoints]}}
    if on_failure:
        config["on_failure"] = on_failure
    return profile_from_config(config, str(status_dir), str(status_dir))


def assert_blocked(proc: subprocess.Popen, seconds: float = 0.4) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=seconds)


def test_freeze_snapshot_thaw_on_success_with_measured_window(make_loopfs, tmp_path):
    xfs, btrfs = make_loopfs("xfs"), make_loopfs("btrfs")
    profile = fsfreeze_profile([xfs.mountpoint, btrfs.mountpoint], tmp_path)
    blocked = []

    def snapshot():
        began = time.monotonic()
        writers = [xfs.start_writer(), btrfs.start_writer()]
        for writer in writers:
            assert_blocked(writer)  # both really frozen while the snapshot runs
        blocked.extend(writers)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
        return "snap-1"

    wall = time.monotonic()
    result, record = profile.frozen(snapshot)
    wall = time.monotonic() - wall
    assert result == "snap-1"
    for writer in blocked:  # released by the thaw
        assert writer.wait(timeout=2) == 0
    assert xfs.writer_finishes_within(2) and btrfs.writer_finishes_within(2)
    assert record.consistent and record.reason == "" and record.profile == "fsfreeze"
    assert 1.0 <= record.seconds <= wall  # the window covers the snapshot, measured, not guessed
    assert record.started < record.ended
    log = (tmp_path / "consistency-watchdog.log").read_text()
    assert "disarmed" in log and "firing" not in log


def test_thaw_after_an_exception_in_snapshot(make_loopfs, tmp_path):
    xfs = make_loopfs("xfs")
    profile = fsfreeze_profile([xfs.mountpoint], tmp_path)

    def snapshot():
        assert_blocked(xfs.start_writer("during.bin"))
        raise RuntimeError("snapshot API down")

    with pytest.raises(RuntimeError, match="snapshot API down"):
        profile.frozen(snapshot)
    assert xfs.writer_finishes_within(2)


def test_watchdog_thaws_when_the_snapshot_outlives_max_freeze(make_loopfs, tmp_path):
    xfs = make_loopfs("xfs")
    profile = fsfreeze_profile([xfs.mountpoint], tmp_path, max_freeze="2s")
    seen = {}

    def snapshot():
        writer = xfs.start_writer("during.bin")
        writer.wait(timeout=2 + MARGIN)  # returns once the watchdog thawed, within the limit
        seen["thawed_after"] = time.monotonic() - began
        time.sleep(0.5)
        return "late-snapshot"

    began = time.monotonic()
    with pytest.raises(QuiesceFailed, match="max_freeze") as caught:
        profile.frozen(snapshot)
    assert 1.9 <= seen["thawed_after"] <= 2 + MARGIN
    # The snapshot was taken (the caller may delete it) but it is not application-consistent.
    assert caught.value.result == "late-snapshot"
    assert caught.value.record.consistent is False and caught.value.record.seconds >= 2.3
    assert xfs.writer_finishes_within(2)
    assert "deadline" in (tmp_path / "consistency-watchdog.log").read_text()


def test_snapshot_of_the_frozen_btrfs_itself_is_released_by_the_watchdog(make_loopfs, tmp_path):
    # btrfs `subvolume snapshot` of a frozen btrfs blocks in the kernel until the thaw: only
    # the watchdog can end it, and the result must not be called consistent.
    btrfs = make_loopfs("btrfs")
    subprocess.run(["btrfs", "subvolume", "create", str(btrfs.mountpoint / "data")], check=True, capture_output=True)
    profile = fsfreeze_profile([btrfs.mountpoint], tmp_path, max_freeze="2s")

    def snapshot():
        return subprocess.run(["btrfs", "subvolume", "snapshot", "-r", str(btrfs.mountpoint / "data"),
                               str(btrfs.mountpoint / "snap")], capture_output=True, check=False, timeout=30).returncode

    began = time.monotonic()
    with pytest.raises(QuiesceFailed, match="max_freeze") as caught:
        profile.frozen(snapshot)
    assert time.monotonic() - began <= 2 + MARGIN + 1
    assert caught.value.result == 0
    assert btrfs.writer_finishes_within(2)


def test_sigterm_to_the_runner_thaws_at_once(make_loopfs, start_runner):
    xfs = make_loopfs("xfs")
    runner = start_runner([str(xfs.mountpoint)], max_freeze=30)
    runner.wait_for("frozen")
    writer = xfs.start_writer("during.bin")
    assert_blocked(writer)
    sent = time.monotonic()
    runner.proc.send_signal(signal.SIGTERM)
    assert writer.wait(timeout=3) == 0  # long before max_freeze (30 s)
    assert time.monotonic() - sent < 3
    assert runner.proc.wait(timeout=5) == 143
    assert "interrupted SIGTERM" in runner.proc.stdout.read()
    assert "disarmed" in runner.watchdog_log()


def test_sigkill_of_the_runner_thaws_and_no_writer_stays_blocked(make_loopfs, start_runner):
    xfs = make_loopfs("xfs")
    max_freeze = 5
    runner = start_runner([str(xfs.mountpoint)], max_freeze=max_freeze)
    runner.wait_for("frozen")
    writer = xfs.start_writer("during.bin")
    assert_blocked(writer)
    killed = time.monotonic()
    runner.proc.kill()
    assert writer.wait(timeout=max_freeze + MARGIN) == 0
    elapsed = time.monotonic() - killed
    # The watchdog sees the control pipe close: it thaws at once, not only at the deadline.
    assert elapsed < 2, "thawed %.2fs after SIGKILL" % elapsed
    assert runner.proc.wait(timeout=5) == -signal.SIGKILL
    log = runner.watchdog_log()
    assert "runner gone" in log and '"returncode": 0' in log


def test_sigkill_of_a_runner_stuck_on_the_frozen_fs_thaws_at_max_freeze(make_loopfs, start_runner):
    # The runner itself writes to the frozen filesystem: it sits in D state, SIGKILL cannot end
    # it and its pipe stays open. Only the deadline can save it, and must.
    xfs = make_loopfs("xfs")
    max_freeze = 3
    runner = start_runner([str(xfs.mountpoint)], max_freeze=max_freeze, mode="write")
    frozen_at = runner.wait_for("frozen")
    writer = xfs.start_writer("during.bin")
    time.sleep(0.3)
    runner.proc.kill()
    killed = time.monotonic()
    assert writer.wait(timeout=max_freeze + MARGIN) == 0
    assert time.monotonic() - frozen_at <= max_freeze + MARGIN
    assert runner.proc.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - killed <= max_freeze + MARGIN
    assert "deadline" in runner.watchdog_log()


def test_not_a_mountpoint_fails_or_is_crash_consistent(make_loopfs, tmp_path):
    xfs = make_loopfs("xfs")
    inside = xfs.mountpoint / "subdir"
    inside.mkdir()
    for path in (inside, tmp_path / "does-not-exist"):
        calls = []
        with pytest.raises(QuiesceFailed, match="not a mount point|does not exist"):
            quiesce_or_crash_consistent(fsfreeze_profile([path], tmp_path), "fail", lambda: calls.append(1))
        assert calls == []  # with on_failure=fail no snapshot is taken
        profile = fsfreeze_profile([xfs.mountpoint, path], tmp_path, on_failure="crash_consistent")
        result, record = quiesce_or_crash_consistent(profile, None, lambda: "crash-snap")
        assert result == "crash-snap"
        assert record.consistent is False and "crash-consistent" in record.reason and str(path) in record.reason
        assert xfs.writer_finishes_within(2)  # the valid mount point was never left frozen


def test_a_failed_second_freeze_thaws_the_first(make_loopfs, tmp_path):
    xfs, btrfs = make_loopfs("xfs"), make_loopfs("btrfs")
    profile = fsfreeze_profile([xfs.mountpoint, btrfs.mountpoint], tmp_path)
    profile.program = str(tmp_path / "fsfreeze-wrapper")
    # A wrapper that fails to freeze the second filesystem (as a busy or broken one would).
    (tmp_path / "fsfreeze-wrapper").write_text(
        "#!/bin/sh\nif [ \"$1\" = -f ] && [ \"$2\" = '%s' ]; then echo 'cannot freeze' >&2; exit 1; fi\n"
        "exec fsfreeze \"$@\"\n" % btrfs.mountpoint)
    (tmp_path / "fsfreeze-wrapper").chmod(0o755)
    with pytest.raises(QuiesceFailed, match="cannot freeze") as caught:
        profile.frozen(lambda: "never")
    assert caught.value.record.consistent is False
    assert xfs.writer_finishes_within(2) and btrfs.writer_finishes_within(2)


def test_freeze_record_serialises(make_loopfs, tmp_path):
    xfs = make_loopfs("xfs")
    _result, record = fsfreeze_profile([xfs.mountpoint], tmp_path).frozen(lambda: None)
    data = json.loads(json.dumps(record.to_dict()))
    assert set(data) == {"profile", "started", "ended", "seconds", "consistent", "reason", "label"}
    assert 0 < data["seconds"] < 2


def test_the_snapshot_of_the_volume_holds_a_clean_filesystem_with_every_write(make_loopfs, tmp_path):
    # What the freeze is for: XFS on a volume (a loop image in a btrfs subvolume, the "array"),
    # written without fsync, then frozen around a snapshot of the volume. The snapshot must
    # mount WITHOUT log recovery (norecovery) and hold every byte written before the freeze.
    array = make_loopfs("btrfs", size_mb=1024)
    subprocess.run(["btrfs", "subvolume", "create", str(array.mountpoint / "vol")], check=True, capture_output=True)
    image = array.mountpoint / "vol" / "app.img"
    with open(image, "wb") as handle:
        handle.truncate(320 * 1024 * 1024)
    devices, mounts = [], []

    def attach(path, *options):
        device = subprocess.run(["losetup", "-f", "--show", *options, str(path)], check=True, capture_output=True,
                                text=True).stdout.strip()
        devices.append(device)
        return device

    try:
        app = tmp_path / "app"
        app.mkdir()
        device = attach(image)
        subprocess.run(["mkfs.xfs", "-q", "-f", device], check=True, capture_output=True)
        subprocess.run(["mount", device, str(app)], check=True, capture_output=True)
        mounts.append(app)
        expected = {}
        for number in range(20):
            data = (b"%04d" % number) * 25000
            (app / ("file-%d" % number)).write_bytes(data)  # page cache only: no fsync
            expected["file-%d" % number] = data
        profile = fsfreeze_profile([app], tmp_path / "status")
        (tmp_path / "status").mkdir()
        snapshot_dir = array.mountpoint / "snap"

        def snapshot():
            subprocess.run(["btrfs", "subvolume", "snapshot", "-r", str(array.mountpoint / "vol"), str(snapshot_dir)],
                           check=True, capture_output=True, timeout=60)
            return snapshot_dir

        _result, record = profile.frozen(snapshot)
        assert record.consistent
        (app / "after-the-snapshot").write_bytes(b"later")
        copy = tmp_path / "copy"
        copy.mkdir()
        copy_device = attach(snapshot_dir / "app.img", "--read-only")
        subprocess.run(["mount", "-o", "ro,norecovery,nouuid", copy_device, str(copy)], check=True, capture_output=True)
        mounts.append(copy)
        found = {path.name: path.read_bytes() for path in copy.iterdir()}
        assert found == expected
    finally:
        for path in reversed(mounts):
            subprocess.run(["fsfreeze", "-u", str(path)], capture_output=True, check=False)
            subprocess.run(["umount", str(path)], capture_output=True, check=False)
        for device in reversed(devices):
            subprocess.run(["losetup", "-d", device], capture_output=True, check=False)
