#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: status_info
short_description: What a host last did for each of its backup jobs and restore drills
version_added: 0.1.0
description:
  - Reads the machine-readable status the runner records for every job configured on the host,
    that is last result and reason, recovery point id, bytes, duration, canary, check results and
    history.
  - On a drill host, also the newest result of each scheduled restore drill from its ledger.
author:
  - Restorable maintainers (@restorable)
options:
  jobs:
    description: Only these jobs (default all).
    type: list
    elements: str
extends_documentation_fragment:
  - restorable.backup.agent_root
  - restorable.backup.read_only
"""

EXAMPLES = r"""
- name: Read the backup status
  restorable.backup.status_info:
  register: backup_status

- name: Show the last result of each job
  ansible.builtin.debug:
    msg: "{{ backup_status.jobs | dict2items | map(attribute='value.last.result') }}"
"""

RETURN = r"""
jobs:
  description: Status per job, the latest run's fields plus counters, C(last_success), C(last_check) and C(history).
  returned: always
  type: dict
  sample: {"www": {"result": "success", "snapshot_id": "4f1c...", "consecutive_failures": 0, "last_success": {"finished": "2026-11-24T01:00:12Z"}}}
snapshot_groups:
  description:
    - Status per consistency group snapshotted on this host (M(restorable.backup.snapshot) with the default
      status directory below I(root)), by group name; the same fields and counters as O(jobs), with C(tier=snapshot).
  returned: always
  type: dict
  sample: {"db": {"result": "success", "tier": "snapshot", "snapshot_id": "20261124T010000Z", "consecutive_failures": 0}}
drills:
  description:
    - The newest record of each scheduled drill run on this host (source host, dataset and drill), from
      C(var/lib/restorable/drills/ledger.jsonl) below I(root); empty where no drill ran.
  returned: always
  type: list
  elements: dict
  sample: [{"source_host": "web01", "dataset": "www", "drill": "weekly", "result": "passed", "failed_layers": []}]
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, job_config_path, load_job_config
from ansible_collections.restorable.backup.plugins.module_utils.core.status import StatusStore
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import HostLayout
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.group import SNAPSHOT_STATUS_PREFIX
from ansible_collections.restorable.backup.plugins.module_utils.drill.report import LEDGER, latest_drills


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            jobs=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    root = module.params["root"]
    names = module.params["jobs"] or sorted(os.path.basename(p)[:-5] for p in glob.glob(job_config_path(root, "*")))
    jobs = {}
    for name in names:
        try:
            config = load_job_config(job_config_path(root, name))
            jobs[name] = StatusStore(config.status_dir, config.dataset).load()
        except (ConfigError, ValueError) as exc:
            module.fail_json(msg=str(exc))
    layout = HostLayout(root)
    module.exit_json(changed=False, jobs=jobs, snapshot_groups=snapshot_groups(layout.status_dir),
                     drills=latest_drills(os.path.join(layout.evidence_dir, LEDGER)))


def snapshot_groups(status_dir: str) -> dict:
    """The status of each consistency group's last snapshot run, by group name."""
    groups = {}
    for path in sorted(glob.glob(os.path.join(status_dir, SNAPSHOT_STATUS_PREFIX + "*.json"))):
        name = os.path.basename(path)[len(SNAPSHOT_STATUS_PREFIX):-len(".json")]
        groups[name] = StatusStore(status_dir, SNAPSHOT_STATUS_PREFIX + name).load()
    return groups


if __name__ == "__main__":
    main()
