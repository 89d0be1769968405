# -*- coding: utf-8 -*-
"""restorable.backup.cdp_restore through ansible-playbook on real btrfs points: on the replica a
writable copy in a sandbox (check mode writes nothing, a second run changes nothing); on the
source, by job, a rollback that keeps the current state aside."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from cdp_btrfs_helpers import show

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import job_config_path
from fleet.inventory import ansible_bin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apply"))

from apply_helpers import run_ansible  # noqa: E402  pylint: disable=wrong-import-position

PLAYBOOK = """
- hosts: web01
  gather_facts: false
  tasks:
    - name: Restore a point
      restorable.backup.cdp_restore: "{{ restore_args }}"
      register: restored
    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ restored | to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      check_mode: false
      changed_when: false
"""


def restore(tmp_path: Path, args: dict, *flags: str) -> dict:
    result = tmp_path / "result.json"
    (tmp_path / "inv.yml").write_text(yaml.safe_dump({"all": {"hosts": {"web01": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({"restore_args": args, "result_file": str(result)}))
    ran = run_ansible([ansible_bin("ansible-playbook"), "-i", tmp_path / "inv.yml", tmp_path / "play.yml",
                       "-e", "@%s" % (tmp_path / "vars.json"), *flags])
    assert ran.returncode == 0, ran.describe()
    return json.loads(result.read_text())


def test_a_replica_point_becomes_a_writable_copy_once(dataset, cdp_filesystems, tmp_path):
    dataset.write("data.txt", "v1")
    first = dataset.run()
    dataset.write("data.txt", "v2")
    assert first.ok and dataset.run().ok
    sandbox = cdp_filesystems.replica.mountpoint / ("restore-" + dataset.name)
    args = {"point_dir": str(dataset.replica_root), "points_on": "replica", "point": first.snapshot_id,
            "sandbox": str(sandbox), "protected_paths": [str(dataset.replica_root)]}

    checked = restore(tmp_path, args, "--check")
    assert checked["changed"] and checked["point"] == first.snapshot_id and not sandbox.exists()

    done = restore(tmp_path, args)
    copy = sandbox / first.snapshot_id
    assert done["changed"] and done["path"] == str(copy)
    assert (copy / "data.txt").read_text() == "v1" and show(copy)["Flags"] == "-"  # writable
    (copy / "data.txt").write_text("edited in the sandbox")
    assert (dataset.replica_point(first.snapshot_id) / "data.txt").read_text() == "v1"  # the point is untouched

    assert restore(tmp_path, args)["changed"] is False


def test_a_rollback_by_job_keeps_the_current_state_aside(dataset, tmp_path):
    dataset.write("data.txt", "v1")
    first = dataset.run()
    assert first.ok
    dataset.write("data.txt", "v2 (current)")
    root = tmp_path / "host"
    config_file = Path(job_config_path(str(root), dataset.name))
    config_file.parent.mkdir(parents=True)
    config_file.write_text(json.dumps(dataset.config(replica=False).to_dict()))

    done = restore(tmp_path, {"job": dataset.name, "point": first.snapshot_id, "rollback": True, "root": str(root)})
    assert done["changed"] and done["path"] == str(dataset.subvolume)
    assert (dataset.subvolume / "data.txt").read_text() == "v1"
    assert (Path(done["kept_aside"]) / "data.txt").read_text() == "v2 (current)"
