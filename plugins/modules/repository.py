#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: repository
short_description: Restic repositories of a host, initialised once, with their credentials placed
version_added: 0.1.0
description:
  - Makes every listed restic repository reachable and initialised exactly once, and places its
    credentials on the host (password file, S3 key environment file, SSH key, known_hosts), all
    private to root.
  - The password is tried against the repository before it replaces the one on the host, so a
    wrong password fails with nothing changed.
  - The repositories and credentials normally come from the C(restorable.backup.agent_plan) filter.
author:
  - Restorable maintainers (@restorable)
options:
  repositories:
    description: The repositories.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Target name from C(restorable_targets).
        type: str
        required: true
      type:
        description: Target type.
        type: str
        choices: [local, sftp, s3]
        default: local
      url:
        description: Restic repository URL (a path, C(sftp:...) or C(s3:...)).
        type: str
        required: true
      options:
        description: Extended restic options (C(-o key=value)).
        type: list
        elements: str
        default: []
      password:
        description: Repository password.
        type: str
        required: true
      password_file:
        description: Where the password is kept on the host.
        type: path
        required: true
      env:
        description: Environment for restic, such as S3 keys.
        type: dict
        default: {}
      env_file:
        description: Where the environment is kept on the host.
        type: path
      ssh_private_key:
        description: Private key for an SFTP repository.
        type: str
      known_hosts:
        description: known_hosts lines of the SFTP server.
        type: str
  state:
    description:
      - V(present) initialises and places credentials; V(checked) also runs C(restic check);
        V(absent) removes the credentials, and with O(purge) a local repository's data.
    type: str
    choices: [present, checked, absent]
    default: present
  read_data_subset:
    description: With O(state=checked), the share of pack data C(restic check) reads (C(5%), C(1/10)).
    type: str
  purge:
    description: With O(state=absent), delete a local repository's data too. Remote repositories are never deleted from a host.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports what would be initialised or placed; opens existing repositories read-only.
  diff_mode:
    support: full
    description: Shows which credential files change; their content stays hidden.
  idempotent:
    support: full
    description: A second run with the same repositories changes nothing.
requirements:
  - restic on the host
"""

EXAMPLES = r"""
- name: Initialise this host's repositories
  restorable.backup.repository:
    repositories: "{{ (hostvars[inventory_hostname] | restorable.backup.agent_plan(inventory_hostname)).repositories }}"

- name: Verify a tenth of the data of every repository
  restorable.backup.repository:
    repositories: "{{ (hostvars[inventory_hostname] | restorable.backup.agent_plan(inventory_hostname)).repositories }}"
    state: checked
    read_data_subset: 10%
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["nas: initialised repository at /srv/restic", "nas: placed credentials /etc/restorable/secrets/nas.password"]
checks:
  description: With O(state=checked), the result of C(restic check) per repository.
  returned: when state is checked
  type: dict
  sample: {"nas": {"ok": true, "read_data_subset": "10%", "message": "no errors were found"}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.converge.repositories import (
    RepositoryFailed,
    RepositoryManager,
    RepositorySpec,
)

REPOSITORY_OPTIONS = dict(
    name=dict(type="str", required=True),
    type=dict(type="str", choices=["local", "sftp", "s3"], default="local"),
    url=dict(type="str", required=True),
    options=dict(type="list", elements="str", default=[]),
    password=dict(type="str", required=True, no_log=True),
    password_file=dict(type="path", required=True),
    env=dict(type="dict", default={}, no_log=True),
    env_file=dict(type="path"),
    ssh_private_key=dict(type="str", no_log=True),
    known_hosts=dict(type="str"),
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            repositories=dict(type="list", elements="dict", required=True, options=REPOSITORY_OPTIONS),
            state=dict(type="str", choices=["present", "checked", "absent"], default="present"),
            read_data_subset=dict(type="str"),
            purge=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    manager = RepositoryManager(module.check_mode, module.params["read_data_subset"], module.params["purge"])
    try:
        for params in module.params["repositories"]:
            manager.converge(RepositorySpec.from_params(params), module.params["state"])
    except RepositoryFailed as exc:
        module.fail_json(msg=str(exc), actions=manager.actions, changed=manager.files.changes.changed)
    result = dict(changed=manager.files.changes.changed or any("initialise" in a for a in manager.actions), actions=manager.actions)
    if module.params["state"] == "checked":
        result["checks"] = manager.checks
    if module._diff:
        result["diff"] = manager.files.changes.diff()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
