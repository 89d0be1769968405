# -*- coding: utf-8 -*-
"""fsfreeze profile logic without freezing anything: refusals, order, watchdog registration.

Real freezes of real filesystems are in tests/system/consistency.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import QuiesceFailed, profile_from_config


def fsfreeze(tmp_path, mountpoints, status_dir=None, **config):
    config.update({"type": "fsfreeze", "fsfreeze": {"mountpoints": mountpoints}})
    return profile_from_config(config, str(tmp_path / "staging"), str(status_dir or tmp_path))


def fake_fsfreeze(tmp_path, fail_freeze_of=""):
    """A stand-in fsfreeze that logs its calls (and can fail one freeze)."""
    program = tmp_path / "fake-fsfreeze"
    program.write_text(
        "#!/bin/sh\necho \"$1 $2\" >> %s\n"
        "if [ \"$1\" = -f ] && [ \"$2\" = '%s' ]; then echo 'fsfreeze: cannot freeze' >&2; exit 1; fi\n"
        "if [ \"$1\" = -u ] && [ \"$2\" = '%s' ]; then echo 'fsfreeze: unfreeze failed: Invalid argument' >&2; exit 1; fi\n"
        % (tmp_path / "calls", fail_freeze_of, fail_freeze_of))
    program.chmod(0o755)
    return str(program)


def calls(tmp_path):
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_refuses_what_must_never_be_frozen(tmp_path):
    cases = [
        ([str(tmp_path)], "not a mount point"),
        ([str(tmp_path / "missing")], "does not exist"),
        (["relative/path"], "not an absolute path"),
        (["/"], "root filesystem"),
    ]
    for mountpoints, message in cases:
        with pytest.raises(QuiesceFailed, match=message):
            fsfreeze(tmp_path, mountpoints).check_mountpoints()
    if os.path.ismount("/proc"):
        with pytest.raises(QuiesceFailed, match="same filesystem"):
            fsfreeze(tmp_path, ["/proc", "/proc/"]).check_mountpoints()
        with pytest.raises(QuiesceFailed, match="status directory /proc/self is on /proc"):
            fsfreeze(tmp_path, ["/proc"], status_dir="/proc/self").check_mountpoints()
    with pytest.raises(QuiesceFailed, match="without mountpoints"):
        fsfreeze(tmp_path, [])


def test_freezes_in_order_and_thaws_in_reverse(tmp_path, monkeypatch):
    profile = fsfreeze(tmp_path, ["/a", "/b", "/c"])
    profile.program = fake_fsfreeze(tmp_path)
    monkeypatch.setattr(profile, "check_mountpoints", lambda: None)
    result, record = profile.frozen(lambda: calls(tmp_path))
    assert result == ["-f /a", "-f /b", "-f /c"]
    assert calls(tmp_path)[3:] == ["-u /c", "-u /b", "-u /a"]
    assert record.consistent and record.seconds > 0


def test_a_failed_freeze_thaws_what_was_frozen(tmp_path, monkeypatch):
    profile = fsfreeze(tmp_path, ["/a", "/b", "/c"])
    profile.program = fake_fsfreeze(tmp_path, fail_freeze_of="/b")
    monkeypatch.setattr(profile, "check_mountpoints", lambda: None)
    with pytest.raises(QuiesceFailed, match="fsfreeze -f /b failed: fsfreeze: cannot freeze"):
        profile.frozen(lambda: pytest.fail("no snapshot"))
    # /b answers "Invalid argument" (not frozen): tolerated, /c was never touched.
    assert calls(tmp_path) == ["-f /a", "-f /b", "-u /b", "-u /a"]


def test_the_watchdog_knows_every_thaw_before_the_freeze(tmp_path, monkeypatch):
    profile = fsfreeze(tmp_path, ["/a", "/b"])
    profile.program = fake_fsfreeze(tmp_path)
    monkeypatch.setattr(profile, "check_mountpoints", lambda: None)
    registered = []

    class SpyWatchdog:
        def add_command(self, argv, env=None, timeout=None):
            registered.append((" ".join(argv[1:]), len(calls(tmp_path))))

    profile.quiesce(SpyWatchdog())
    profile.release()
    # Each thaw was registered before its freeze ran (calls so far: 0, then 1).
    assert registered == [("-u /a", 0), ("-u /b", 1)]
