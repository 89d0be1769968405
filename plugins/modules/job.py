#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: job
short_description: The scheduled backup jobs of a host (systemd timers, or cron)
version_added: 0.1.0
description:
  - Installs the agent runtime (the same code the M(restorable.backup.run) module runs) under
    C(usr/local/lib/restorable) below O(root), writes each job's configuration, and schedules
    it with a systemd service and timer where systemd runs the host, or a C(/etc/cron.d) entry
    otherwise.
  - The list is the whole wanted state; jobs that are not in it are unscheduled and their
    configuration removed.
  - Each job starts at its calendar time plus a per-host offset (C(delay_seconds)), so a fleet does
    not reach its repository at once.
author:
  - Restorable maintainers (@restorable)
options:
  jobs:
    description: The jobs, normally from the C(restorable.backup.agent_plan) filter.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Job name (the dataset, or C(dataset-target) for further copies).
        type: str
        required: true
      calendar:
        description: systemd calendar expression.
        type: str
        required: true
      delay_seconds:
        description: This host's start offset.
        type: int
        default: 0
      config:
        description: The job configuration read by the runner.
        type: dict
        required: true
      dataset:
        description: Dataset name, for reference.
        type: str
      target:
        description: Target name, for reference.
        type: str
  secrets:
    description:
      - Private files the jobs read, such as database passwords of consistency profiles;
        written with mode 0600 and never shown in diffs.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Where the file goes (normally below C(etc/restorable/secrets)).
        type: path
        required: true
      content:
        description: The secret.
        type: str
        required: true
  scheduler:
    description: How jobs are started.
    type: str
    choices: [auto, systemd, cron]
    default: auto
  root:
    description:
      - Directory that configurations (C(etc/restorable)), the runtime (C(usr/local/lib/restorable))
        and units or cron entries are written below. C(/) on a real host.
      - Below any other root, units and cron entries are written but not activated. That serves
        several inventory hosts sharing one machine (demo, tests), whose backups run on demand.
    type: path
    default: /
  python:
    description: Python interpreter that runs the jobs.
    type: path
    default: /usr/bin/python3
attributes:
  check_mode:
    support: full
    description: Reports what would change, writes nothing.
  diff_mode:
    support: full
    description: Shows the configuration and unit files before and after.
  idempotent:
    support: full
    description: A second run with the same jobs changes nothing.
"""

EXAMPLES = r"""
- name: Schedule this host's backup jobs
  restorable.backup.job:
    jobs: "{{ (hostvars[inventory_hostname] | restorable.backup.agent_plan(inventory_hostname)).jobs }}"
"""

RETURN = r"""
scheduler:
  description: C(systemd) or C(cron).
  returned: always
  type: str
  sample: systemd
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["www: job configuration", "www: /etc/systemd/system/restorable-backup-www.timer"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.converge.jobs import (
    JobManager, JobSpec, converge_and_exit, schedule_argument_spec)


def main() -> None:
    module = AnsibleModule(
        argument_spec=schedule_argument_spec(dict(
            name=dict(type="str", required=True),
            calendar=dict(type="str", required=True),
            delay_seconds=dict(type="int", default=0),
            config=dict(type="dict", required=True),
            dataset=dict(type="str"),
            target=dict(type="str"),
        )),
        supports_check_mode=True,
    )
    manager = JobManager(module.check_mode, module.params["scheduler"], module.params["root"], module.params["python"])
    converge_and_exit(module, manager, [JobSpec.from_params(p) for p in module.params["jobs"]], "backup jobs")


if __name__ == "__main__":
    main()
