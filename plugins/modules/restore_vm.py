#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: restore_vm
short_description: Restore a VM's recovery point of a host dataset as standalone disk images, optionally as a new VM
version_added: 0.1.0
description:
  - Reads the chosen point of one VM and every point its chain needs (the full first) from the
    repository of a host-tier job on this hypervisor, and merges them into one standalone qcow2
    image per disk in O(directory). Every block is checked against the digests recorded when the
    points were taken.
  - With O(define), the point's domain XML becomes a new VM under that name, with a new UUID, the
    restored disks and no network interface; it is defined, not started.
  - Never writes to the original domain or its disks. A directory holding a disk of any VM of
    this hypervisor is refused, as is a non-empty directory that holds another restore, and the
    name of an existing VM.
author:
  - Restorable maintainers (@restorable)
options:
  job:
    description: The host-tier job (see M(restorable.backup.job)) whose repository holds the points.
    type: str
    required: true
  vm:
    description: The VM, by name or UUID.
    type: str
    required: true
  point:
    description: C(latest), or a point id (a unique prefix is enough).
    type: str
    default: latest
  at:
    description: The newest point at or before this ISO 8601 time (instead of O(point)).
    type: str
  directory:
    description: Where the disk images go (absent or empty; a second run with the same point changes nothing).
    type: path
    required: true
  define:
    description: Name of a new VM to define from the restored point.
    type: str
attributes:
  check_mode:
    support: full
    description: Chooses the point and reports what would be restored and defined; writes nothing.
  diff_mode:
    support: none
    description: Disk images have no useful diff.
  idempotent:
    support: full
    description: A directory holding the same point, and a VM of that name on those images, are left as they are.
extends_documentation_fragment:
  - restorable.backup.agent_root
"""

EXAMPLES = r"""
- name: Restore the newest point of erp01 and define it as erp01-restored
  restorable.backup.restore_vm:
    job: vms
    vm: erp01
    directory: /srv/restore/erp01
    define: erp01-restored

- name: Restore the disks of erp01 as they were on the morning of 1 December
  restorable.backup.restore_vm:
    job: vms
    vm: erp01
    at: "2026-12-01T06:00:00Z"
    directory: /srv/restore/erp01-dec01
"""

RETURN = r"""
point:
  description: The id of the restored point.
  returned: always
  type: str
  sample: 4f1c2a0b9d...
kind:
  description: C(full), C(incremental) or C(differential).
  returned: always
  type: str
  sample: incremental
position:
  description: The point's position in its chain (0 for the full).
  returned: always
  type: int
  sample: 3
disks:
  description: Restored image by disk target.
  returned: always
  type: dict
  sample: {"vda": "/srv/restore/erp01/vda.qcow2"}
chain:
  description: The ids of the points read, full first (when a restore ran).
  returned: when restored
  type: list
  elements: str
defined:
  description: The name of the VM defined from the point, if any.
  returned: always
  type: str
  sample: erp01-restored
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, job_config_path, load_job_config
from ansible_collections.restorable.backup.plugins.module_utils.common.process import SecretFileError
from ansible_collections.restorable.backup.plugins.module_utils.storage.repository import RepositoryError
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.chain import ChainBroken
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.libvirt import LibvirtError
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.restore import RestoreRefused
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.vm_restore import restore_vm


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            job=dict(type="str", required=True),
            vm=dict(type="str", required=True),
            point=dict(type="str", default="latest"),
            at=dict(type="str"),
            directory=dict(type="path", required=True),
            define=dict(type="str"),
            root=dict(type="path", default="/"),
        ),
        mutually_exclusive=[("point", "at")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        config = load_job_config(job_config_path(params["root"], params["job"]))
        if config.tier != "host":
            module.fail_json(msg="job %s is of the %s tier; restore_vm restores host-tier jobs" % (params["job"], config.tier))
        result = restore_vm(config, params["vm"], params["directory"], params["point"], params["at"], params["define"],
                            module.check_mode)
    except (ConfigError, RestoreRefused, ChainBroken, RepositoryError, LibvirtError, SecretFileError) as exc:
        module.fail_json(msg="restore_vm %s: %s" % (params["vm"], exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
