#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: replica_access
short_description: Let CDP source hosts replicate btrfs datasets to this host, each to its own directory only
version_added: 0.1.0
description:
  - Runs on a CDP replica host. For every source dataset replicated here, creates the dataset's
    directory (mode 0700, with its missing parents, also 0700) and authorizes the source's key for
    it in root's C(authorized_keys).
  - Each key may run one command only, the standalone engine serving that directory
    (C(python3 -m restorable_agent.runtime.replica_cli --root PATH)), which lists, receives and deletes
    recovery points there and nowhere else; C(restrict) turns off forwarding, agent and terminal.
    The engine is installed in O(install_dir), as M(restorable.backup.job) installs it.
  - The lines of this module are those whose comment is C(restorable-replica:<source>/<dataset>).
    O(entries) is the whole wanted state; lines of this module that no entry wants are removed.
    Every other line of the file is kept byte for byte, in its place.
  - The file is written atomically with mode 0600 in a directory of mode 0700.
  - Every entry is checked before anything changes; a path that is not (or would not be) on btrfs fails
    the task naming the entry's source, dataset and path, and nothing is changed.
  - Directories are never removed, as they hold the replicated recovery points.
author:
  - Restorable maintainers (@restorable)
options:
  entries:
    description:
      - The source datasets replicated to this host, normally the C(replica_access) of the host's CDP plan.
    type: list
    elements: dict
    required: true
    suboptions:
      source:
        description: Inventory name of the source host.
        type: str
        required: true
      dataset:
        description: Name of the dataset on the source host.
        type: str
        required: true
      path:
        description:
          - The dataset's directory on this host, used as given (like the paths of targets in the policy).
          - It must be, or be created as, a directory on btrfs.
        type: path
        required: true
      public_key:
        description:
          - The source's public key for this dataset, one C(authorized_keys) key (type and base64);
            a comment is ignored, the module writes its own.
        type: str
        required: true
  authorized_keys:
    description:
      - The C(authorized_keys) file of the user the sources log in as.
      - Default C(root/.ssh/authorized_keys) below O(root).
    type: path
  install_dir:
    description:
      - Where the standalone engine is installed.
      - Default C(usr/local/lib/restorable) below O(root).
    type: path
  python:
    description: Python interpreter that runs the engine.
    type: path
    default: /usr/bin/python3
  require_btrfs:
    description:
      - Fail when a path is not on btrfs. Only tests of the module itself turn this off.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Checks every entry and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Shows the lines of this module in C(authorized_keys) before and after; other lines are not shown.
  idempotent:
    support: full
    description: A second run with the same entries changes nothing.
notes:
  - The module runs as root; the source hosts log in as the owner of O(authorized_keys).
  - Key pairs are made on the controller by M(restorable.backup.replica_keys).
seealso:
  - module: restorable.backup.replica_keys
extends_documentation_fragment:
  - restorable.backup.agent_root
"""

EXAMPLES = r"""
- name: Let web01 replicate its dataset data to this host
  restorable.backup.replica_access:
    entries:
      - source: web01
        dataset: data
        path: /srv/replicas/web01/data
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM6cG9vKq2Zl4vIbFLUvFO5Vd3fHqxXxFQeKcD0ZC0dQ"

- name: Remove every replica key of this module from the host (directories stay)
  restorable.backup.replica_access:
    entries: []
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["create directory /srv/replicas/web01/data", "write /root/.ssh/authorized_keys (replica keys: 1)"]
authorized_keys:
  description: The C(authorized_keys) file the module manages.
  returned: always
  type: str
  sample: /root/.ssh/authorized_keys
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.converge.replica_access import ReplicaAccess, ReplicaAccessFailed


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            entries=dict(type="list", elements="dict", required=True, options=dict(
                source=dict(type="str", required=True),
                dataset=dict(type="str", required=True),
                path=dict(type="path", required=True),
                public_key=dict(type="str", required=True, no_log=False),
            )),
            authorized_keys=dict(type="path", no_log=False),
            root=dict(type="path", default="/"),
            install_dir=dict(type="path"),
            python=dict(type="path", default="/usr/bin/python3"),
            require_btrfs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    access = ReplicaAccess(module.check_mode, params["root"], params["authorized_keys"], params["install_dir"],
                           params["python"], params["require_btrfs"])
    try:
        changes = access.converge(params["entries"])
    except (ReplicaAccessFailed, OSError) as exc:
        module.fail_json(msg="replica access: %s" % exc, actions=access.changes.actions, authorized_keys=access.authorized_keys)
    result = dict(changed=changes.changed, actions=changes.actions, authorized_keys=access.authorized_keys)
    if module._diff and changes.before != changes.after:
        result["diff"] = {"before_header": access.authorized_keys, "after_header": access.authorized_keys,
                          "before": changes.before, "after": changes.after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
