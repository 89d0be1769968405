# -*- coding: utf-8 -*-
"""restorable.backup.snapshot through Ansible: check mode creates nothing, a run returns the manifest,
and a password never appears in the output."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from fleet.inventory import ansible_bin, ansible_env
from snapshot_helpers import is_read_only, status_of


def run_module(args: dict, check: bool = False) -> dict:
    argv = [str(ansible_bin("ansible")), "localhost", "-i", "localhost,", "-c", "local",
            "-e", "ansible_python_interpreter=%s" % sys.executable, "-m", "restorable.backup.snapshot",
            "-a", json.dumps(args)] + (["--check"] if check else [])
    result = subprocess.run(argv, env=ansible_env(ANSIBLE_STDOUT_CALLBACK="minimal", ANSIBLE_CALLBACK_RESULT_FORMAT="json"),
                            capture_output=True, text=True, timeout=300, check=False)
    # minimal: "localhost | CHANGED => {...}" (after an error message when it failed)
    head, sep, document = result.stdout[result.stdout.find("localhost | "):].partition(" => ")
    assert sep and head.startswith("localhost |"), result.stdout + result.stderr
    return json.loads(document) | {"_raw": result.stdout + result.stderr}


def test_module_check_mode_then_backup_api_snapshot(pg_on_btrfs, btrfs, status_dir):
    cluster = pg_on_btrfs.cluster
    args = {"name": "pg-module", "volumes": [str(pg_on_btrfs.volume)], "status_dir": str(status_dir),
            "consistency": {"type": "postgresql",
                            "postgresql": {"mode": "backup_api", "host": str(cluster.socket_dir), "port": cluster.port,
                                           "user": pg_on_btrfs.role}},
            "postgresql_password": pg_on_btrfs.password}
    left_before = btrfs.snapshots()
    planned = run_module(args, check=True)
    assert planned["changed"] and "FAILED!" not in planned["_raw"], planned
    assert btrfs.snapshots() == left_before and not os.path.exists(status_dir / "snapshot-pg-module.json")

    taken = run_module(args)
    assert taken["changed"] and "FAILED!" not in taken["_raw"], taken
    manifest = taken["manifest"]
    assert manifest["consistent"] and is_read_only(manifest["volumes"][0]["snapshot"])
    assert json.loads(manifest["label"])["backup_label"].startswith("START WAL LOCATION:")
    assert status_of(status_dir, "pg-module")["snapshot_id"] == manifest["id"]
    assert pg_on_btrfs.password not in taken["_raw"]

    listed = run_module(dict(args, action="list"))
    assert [rp["id"] for rp in listed["recovery_points"]] == [manifest["id"]]
    deleted = run_module(dict(args, action="delete", recovery_point=manifest["id"]))
    assert deleted["changed"] and not os.path.exists(manifest["volumes"][0]["snapshot"])
    assert not run_module(dict(args, action="delete", recovery_point=manifest["id"]))["changed"]


def test_module_refuses_a_password_inside_the_profile(pg_on_btrfs, status_dir):
    args = {"name": "pg-secret", "volumes": [str(pg_on_btrfs.volume)], "status_dir": str(status_dir),
            "consistency": {"type": "postgresql", "postgresql": {"mode": "backup_api", "password": "x" * 12}}}
    refused = run_module(args)
    assert "localhost | FAILED!" in refused["_raw"] and "postgresql_password" in refused["msg"]
