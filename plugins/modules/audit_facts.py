#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: audit_facts
short_description: What a host observes for the fleet audit
version_added: 0.1.0
description:
  - Collects the host facts document the fleet audit (M(restorable.backup.audit)) judges, that is the status
    of every job with the tier, dataset and target of the copy it writes and whether that copy still
    exists, consistency group snapshots, the records of the scheduled drills run on this host, the
    locks read back from the storage, the tape libraries' cartridges and the state of protected VMs.
  - Locks are read from the storage, not taken from the policy, that is the S3 bucket's Object Lock
    configuration and the retention of snapshot objects the jobs wrote (with the host's own S3 keys
    file), and the WORM protection of written cartridges.
  - Stopped or paused VMs and vaulted cartridges are listed with their state, so the audit keeps them.
author:
  - Restorable maintainers (@restorable)
options:
  host:
    description: The inventory name of the host, recorded in the document.
    type: str
    required: true
extends_documentation_fragment:
  - restorable.backup.agent_root
  - restorable.backup.read_only
"""

EXAMPLES = r"""
- name: Collect what the audit judges
  restorable.backup.audit_facts:
    host: "{{ inventory_hostname }}"
    root: "{{ agent_root | default('/') }}"
  register: audit_host
"""

RETURN = r"""
facts:
  description:
    - The host facts document (format 1), with C(format), C(host), C(collected), C(jobs) (status
      documents by job name, each with C(job) set to its C(tier), C(dataset), C(target) and C(present)),
      C(snapshot_groups), C(drills) (ledger records), C(locks) (by target, C(kind), C(verified),
      C(mode), C(days), C(detail)), C(tape) (cartridges by library), C(vms) (state by VM name) and
      C(problems) (job configurations that could not be read).
  returned: always
  type: dict
  sample: {"format": 1, "host": "web01", "collected": "2026-12-03T10:00:00Z", "jobs": {}, "snapshot_groups": {},
           "drills": [], "locks": {"s3-offsite": {"kind": "s3_object_lock", "verified": true, "mode": "COMPLIANCE",
                                                  "days": 30, "detail": "bucket b: COMPLIANCE retention of 30 day(s)"}},
           "tape": {}, "vms": {"db01": "shut off"}, "problems": []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.audit.facts import collect_host_facts


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            host=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, facts=collect_host_facts(module.params["root"], module.params["host"]))


if __name__ == "__main__":
    main()
