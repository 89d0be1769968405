#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: job
short_description: The scheduled backup jobs and restore drills of a host (systemd timers, or cron)
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
  - With O(drills), the same call converges the restore drills that run on this host (as a drill
    host), that is the credentials of the source repositories it drills (mode 0600, below
    C(etc/restorable/secrets/drills)), each drill's configuration (C(etc/restorable/drills), secrets
    by path only) and its timer or cron entry. The scheduled drill runs
    C(python3 -m restorable_agent drill --config FILE), the code the M(restorable.backup.drill)
    module runs, appends each record to C(var/lib/restorable/drills/ledger.jsonl), writes JUnit,
    HTML and Markdown reports beside it, and exits non-zero when a drill failed. That list too is
    the whole wanted state.
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
  drills:
    description:
      - The scheduled restore drills of this host, normally the C(jobs) of the
        C(restorable.backup.drill_plan) filter. Omitted, drills are left as they are.
    type: list
    elements: dict
    suboptions:
      name:
        description: Drill job name (C(<source host>-<drill>)).
        type: str
        required: true
      calendar:
        description: systemd calendar expression (the drill's C(calendar)).
        type: str
        required: true
      config:
        description: The drill configuration read by the scheduled job.
        type: dict
        required: true
  drill_secrets:
    description:
      - Credentials of the source repositories the host drills, normally the C(secrets) of the
        C(restorable.backup.drill_plan) filter; written with mode 0600 and never shown in diffs.
      - Each must be a file directly below C(etc/restorable/secrets/drills) of O(root).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Where the file goes.
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
extends_documentation_fragment:
  - restorable.backup.agent_root
"""

EXAMPLES = r"""
- name: Schedule this host's backup jobs
  restorable.backup.job:
    jobs: "{{ (hostvars[inventory_hostname] | restorable.backup.agent_plan(inventory_hostname)).jobs }}"

- name: Schedule the backup jobs and the restore drills this host runs
  restorable.backup.job:
    jobs: "{{ agent_plan.jobs }}"
    secrets: "{{ agent_plan.secrets }}"
    drills: "{{ drill_plan.jobs }}"
    drill_secrets: "{{ drill_plan.secrets }}"
  vars:
    agent_plan: "{{ hostvars[inventory_hostname] | restorable.backup.agent_plan(inventory_hostname) }}"
    drill_plan: "{{ hostvars | restorable.backup.drill_plan(inventory_hostname) }}"
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

from ansible_collections.restorable.backup.plugins.module_utils.converge.drills import DrillScheduler, DrillScheduleSpec
from ansible_collections.restorable.backup.plugins.module_utils.converge.jobs import JobManager, JobSpec, converge_and_exit

SECRET_FILES = dict(type="list", elements="dict", default=[], no_log=False, options=dict(
    path=dict(type="path", required=True),
    content=dict(type="str", required=True, no_log=True),
))


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            jobs=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                calendar=dict(type="str", required=True),
                delay_seconds=dict(type="int", default=0),
                config=dict(type="dict", required=True),
                dataset=dict(type="str"),
                target=dict(type="str"),
            )),
            secrets=SECRET_FILES,
            drills=dict(type="list", elements="dict", options=dict(
                name=dict(type="str", required=True),
                calendar=dict(type="str", required=True),
                config=dict(type="dict", required=True),
            )),
            drill_secrets=SECRET_FILES,
            scheduler=dict(type="str", choices=["auto", "systemd", "cron"], default="auto"),
            root=dict(type="path", default="/"),
            python=dict(type="path", default="/usr/bin/python3"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    where = (module.check_mode, params["scheduler"], params["root"], params["python"])
    # One call for both: every module invocation per host counts on a fleet-wide re-apply.
    work = [(JobManager(*where), [JobSpec.from_params(p) for p in params["jobs"]], params["secrets"])]
    if params["drills"] is not None:
        work.append((DrillScheduler(*where), [DrillScheduleSpec.from_params(p) for p in params["drills"]], params["drill_secrets"]))
    converge_and_exit(module, work)


if __name__ == "__main__":
    main()
