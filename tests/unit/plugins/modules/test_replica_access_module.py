# -*- coding: utf-8 -*-
"""The replica_access module as Ansible calls it: arguments, result, diff, check mode, failure.

The engine's installation is recorded, not done: under ansible-test's collection loader the
standalone sources come as bytes, which install_standalone takes for a change on every call
(the converge tests and the system test install it for real)."""
from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.restorable.backup.plugins.module_utils.converge import replica_access as converge
from ansible_collections.restorable.backup.plugins.module_utils.common.mounts import filesystem_type
from ansible_collections.restorable.backup.plugins.modules import replica_access

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINNp2eX+d7NFOA4U/rnxGZcVOnFQkBSI8xD31gxWbDLe"


@pytest.fixture(autouse=True)
def installs(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(converge, "install_standalone", lambda install_dir, check_mode: calls.append((install_dir, check_mode)) or [])
    return calls


def run(capsys, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit):
            replica_access.main()
    return json.loads(capsys.readouterr().out)


def arguments(tmp_path, **overrides) -> dict:
    args = {"root": str(tmp_path / "root"), "require_btrfs": False,
            "entries": [{"source": "web01", "dataset": "data", "path": str(tmp_path / "replicas/web01/data"),
                         "public_key": KEY + " comment ignored"}]}
    return dict(args, **overrides)


def test_converges_once_then_reports_no_change(tmp_path, capsys, installs):
    first = run(capsys, arguments(tmp_path), diff=True)
    keys = tmp_path / "root/root/.ssh/authorized_keys"
    assert first["changed"] and first["authorized_keys"] == str(keys)
    assert "create directory %s" % (tmp_path / "replicas/web01/data") in first["actions"]
    assert first["diff"]["before"] == "" and first["diff"]["after"] == keys.read_text()
    assert "comment ignored" not in keys.read_text()
    second = run(capsys, arguments(tmp_path), diff=True)
    assert not second["changed"] and second["actions"] == [] and "diff" not in second
    assert installs == [(str(tmp_path / "root/usr/local/lib/restorable"), False)] * 2


def test_check_mode_creates_nothing(tmp_path, capsys, installs):
    result = run(capsys, arguments(tmp_path), check_mode=True)
    assert installs == [(str(tmp_path / "root/usr/local/lib/restorable"), True)]
    assert result["changed"] and all(a.startswith("would ") for a in result["actions"])
    assert list(tmp_path.iterdir()) == []


def test_given_paths_are_used(tmp_path, capsys, installs):
    keys, engine = tmp_path / "keys", tmp_path / "engine"
    result = run(capsys, arguments(tmp_path, authorized_keys=str(keys), install_dir=str(engine), python="/opt/py/bin/python3"))
    assert result["authorized_keys"] == str(keys)
    assert "PYTHONPATH=%s exec /opt/py/bin/python3 -m restorable_agent" % engine in keys.read_text()
    assert installs == [(str(engine), False)]


def test_a_path_off_btrfs_fails_the_task(tmp_path, capsys):
    if filesystem_type(str(tmp_path)) == "btrfs":
        pytest.skip("the temporary directory is on btrfs")
    result = run(capsys, arguments(tmp_path, require_btrfs=True))
    assert result["failed"] and "source web01, dataset data, path %s" % (tmp_path / "replicas/web01/data") in result["msg"]
    assert "not btrfs" in result["msg"] and list(tmp_path.iterdir()) == []


def test_a_missing_option_is_refused(tmp_path, capsys):
    args = arguments(tmp_path)
    del args["entries"][0]["public_key"]
    result = run(capsys, args)
    assert result["failed"] and "public_key" in result["msg"]
