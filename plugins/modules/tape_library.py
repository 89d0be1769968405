#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: tape_library
short_description: Set up the virtual tape libraries a host exports array snapshots to
version_added: 0.1.0
description:
  - For each library, writes its configuration file (the JSON every export, restore and drill of the
    array tier opens, see docs/tape.md), an S3 library's credentials as a private file (mode 0600), and
    lets the library lay itself out (C(TapeLibrary.ensure)) with its state directory and empty catalog,
    and for the directory driver its slot, drive, import/export and vault directories; an S3 library
    checks that its bucket answers.
  - With O(state=absent), removes the configuration and credentials files only. Cartridges, the catalog
    and the library's directories stay; they hold backups, and apply never deletes a backup.
  - Normally called by the C(restorable.backup.agent) role with the plan of the array tier (its
    C(tape_libraries)), before the jobs that export to the libraries are scheduled.
author:
  - Restorable maintainers (@restorable)
options:
  libraries:
    description: The libraries, one entry each.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The library's name (its C(tape_library) target).
        type: str
        required: true
      config_path:
        description: Where the library's configuration goes (C(/etc/restorable/tape/NAME.json) for root C(/)).
        type: path
        required: true
      config:
        description:
          - The library's configuration (C(format), C(name), C(driver), C(path) or C(s3), C(state_dir), C(slots), C(drives),
            C(media), C(pools), C(vault)), as the array tier's planner makes it. Required with O(state=present).
        type: dict
      files:
        description: Private files the library reads (an S3 library's credentials), each a C(path) and a C(content).
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Where the file goes.
            type: path
            required: true
          content:
            description: The file's content (required with O(state=present)).
            type: str
  state:
    description: Whether the libraries' configuration and credentials are there or not.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Says which files and directories would be written or created; writes and creates nothing.
  diff_mode:
    support: full
    description: The configuration files as a diff; credentials show as hidden.
  idempotent:
    support: full
    description: A second run with the same libraries changes nothing.
"""

EXAMPLES = r"""
- name: A directory library of 8 slots and small cartridges for a demo
  restorable.backup.tape_library:
    libraries:
      - name: demo-vtl
        config_path: /etc/restorable/tape/demo-vtl.json
        config:
          format: 1
          name: demo-vtl
          driver: directory
          path: /srv/vtl
          state_dir: /srv/vtl
          slots: 8
          drives: 1
          media: {type: LTO-8, capacity_bytes: 16000000}
          pools:
            daily: {retention_days: 14, barcode_prefix: DM, worm: false, vault: false}

- name: The libraries the array tier planned for this host
  restorable.backup.tape_library:
    libraries: "{{ fleet[inventory_hostname].tiers.array.tape_libraries }}"
  no_log: true  # S3 credentials are in the plan

- name: Stop configuring a library (its cartridges stay)
  restorable.backup.tape_library:
    libraries:
      - name: old-vtl
        config_path: /etc/restorable/tape/old-vtl.json
    state: absent
"""

RETURN = r"""
libraries:
  description: Per library, C(name), C(config_path), C(changed) and C(actions).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "demo-vtl", "config_path": "/etc/restorable/tape/demo-vtl.json", "changed": true,
            "actions": ["placed /etc/restorable/tape/demo-vtl.json", "created catalog /srv/vtl/catalog.json"]}]
actions:
  description: What was done (or would be, in check mode), one line each, library first.
  returned: always
  type: list
  elements: str
"""

from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.converge.tape_library import TapeLibraries, TapeLibraryFailed


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            libraries=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                config_path=dict(type="path", required=True),
                config=dict(type="dict"),
                files=dict(type="list", elements="dict", default=[], options=dict(
                    path=dict(type="path", required=True),
                    content=dict(type="str", no_log=True),
                )),
            )),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    libraries = TapeLibraries(module.check_mode)
    try:
        results = libraries.converge(module.params["libraries"], module.params["state"])
    except TapeLibraryFailed as exc:
        module.fail_json(msg=str(exc), diff=libraries.files.changes.diff())
    actions = ["%s: %s" % (result.name, action) for result in results for action in result.actions]
    module.exit_json(changed=any(result.changed for result in results), libraries=[asdict(r) for r in results],
                     actions=actions, diff=libraries.files.changes.diff())


if __name__ == "__main__":
    main()
