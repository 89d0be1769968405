# -*- coding: utf-8 -*-
"""restorable.backup.tape_library and tape_media through ansible-playbook on localhost, on a real
directory library: check mode writes nothing; the first run writes the configuration and lays out
slots, drives, import/export slot, vault and catalog; a second run changes nothing; the library the
module set up answers tape_media (inventory never changes anything); state absent removes the
configuration and leaves the cartridges' directory."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from apply_helpers import PlaybookRun, run_ansible
from fleet.inventory import ansible_bin

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
PLAYBOOK = """
- hosts: st01
  gather_facts: false
  tasks:
    - name: Set up the library
      restorable.backup.tape_library:
        libraries: "{{ tape_libraries }}"
        state: "{{ tape_state }}"
      register: library
    - name: Read the library's inventory
      restorable.backup.tape_media:
        library_config: "{{ tape_libraries[0].config_path }}"
      register: media
      when: tape_state == 'present' and not ansible_check_mode
    - name: Keep the results for the test
      ansible.builtin.copy:
        content: "{{ {'library': library, 'media': media} | to_json }}"
        dest: "{{ tape_result }}"
        mode: "0600"
      check_mode: false
      changed_when: false
"""


def library(tmp_path: Path) -> dict:
    path = str(tmp_path / "vtl")
    return {"name": "vtl01", "config_path": str(tmp_path / "etc/restorable/tape/vtl01.json"), "files": [], "config": {
        "format": 1, "name": "vtl01", "driver": "directory", "path": path, "state_dir": path, "slots": 3, "drives": 1,
        "media": {"type": "LTO-8", "capacity_bytes": 16 * 10 ** 6}, "vault": {"destination": "offsite"},
        "pools": {"daily": {"retention_days": 14, "barcode_prefix": "DM", "worm": False, "vault": True}}}}


def run(tmp_path: Path, state: str, *args: str) -> tuple[PlaybookRun, dict]:
    result = tmp_path / ("result-%d.json" % len(list(tmp_path.glob("result-*.json"))))
    (tmp_path / "inv.yml").write_text(yaml.safe_dump({"all": {"hosts": {"st01": dict(LOCAL)}}}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({"tape_libraries": [library(tmp_path)], "tape_state": state,
                                                    "tape_result": str(result)}))
    ran = run_ansible([ansible_bin("ansible-playbook"), "-i", tmp_path / "inv.yml", tmp_path / "play.yml",
                       "-e", "@%s" % (tmp_path / "vars.json"), *args])
    assert ran.returncode == 0, ran.describe()
    return ran, json.loads(result.read_text())


def test_tape_library_and_media_modules_through_ansible(tmp_path):
    _ran, checked = run(tmp_path, "present", "--check", "--diff")
    assert checked["library"]["changed"] and not (tmp_path / "etc").exists() and not (tmp_path / "vtl").exists()

    _ran, first = run(tmp_path, "present")
    assert first["library"]["changed"]
    assert json.loads((tmp_path / "etc/restorable/tape/vtl01.json").read_text())["name"] == "vtl01"
    for folder in ("slots/0001", "slots/0003", "drives/0", "ie", "vault/offsite"):
        assert (tmp_path / "vtl" / folder).is_dir(), folder
    assert (tmp_path / "vtl/catalog.json").is_file()
    inventory = first["media"]["inventory"]
    assert not first["media"]["changed"]
    assert ([s["barcode"] for s in inventory["slots"]], inventory["cartridges"]) == ([None, None, None], [])

    _ran, second = run(tmp_path, "present")
    assert not second["library"]["changed"] and second["library"]["actions"] == []

    _ran, removed = run(tmp_path, "absent")
    assert removed["library"]["changed"] and not (tmp_path / "etc/restorable/tape/vtl01.json").exists()
    assert (tmp_path / "vtl/catalog.json").is_file()  # the library's data stays
