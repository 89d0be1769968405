#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: drill_schedule
short_description: The scheduled restore drills of a drill host (systemd timers, or cron)
version_added: 0.1.0
description:
  - Places the credentials of the source repositories the host drills (mode 0600, below
    C(etc/restorable/secrets/drills)), installs the agent runtime (the same code the
    M(restorable.backup.drill) module runs) under C(usr/local/lib/restorable), writes each
    drill's configuration (mode 0600, secrets by path only) to C(etc/restorable/drills), and
    schedules it with a systemd service and timer where systemd runs the host, or a
    C(/etc/cron.d) entry otherwise.
  - The scheduled job runs C(python3 -m restorable_agent drill --config FILE), appends each
    record to C(var/lib/restorable/drills/ledger.jsonl) and writes the JUnit, HTML and Markdown
    reports beside it; it exits non-zero when a drill failed.
  - The lists are the whole wanted state; drills and credentials not in them are removed.
author:
  - Restorable maintainers (@restorable)
options:
  jobs:
    description: The scheduled drills, normally the C(jobs) of the C(restorable.backup.drill_plan) filter.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Job name (C(<source host>-<drill>)).
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
  secrets:
    description:
      - Credentials of the source repositories, normally the C(secrets) of the
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
    description: How drills are started.
    type: str
    choices: [auto, systemd, cron]
    default: auto
  root:
    description:
      - Directory that configurations, credentials, the runtime and units or cron entries are
        written below. C(/) on a real host.
      - Below any other root, units and cron entries are written but not activated.
    type: path
    default: /
  python:
    description: Python interpreter that runs the drills.
    type: path
    default: /usr/bin/python3
attributes:
  check_mode:
    support: full
    description: Reports what would change, writes nothing.
  diff_mode:
    support: full
    description: Shows the configuration and unit files before and after; credentials stay hidden.
  idempotent:
    support: full
    description: A second run with the same drills changes nothing.
"""

EXAMPLES = r"""
- name: Schedule the restore drills this host runs
  restorable.backup.drill_schedule:
    jobs: "{{ drill_plan.jobs }}"
    secrets: "{{ drill_plan.secrets }}"
  vars:
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
  sample: ["web01-weekly: drill configuration", "web01-weekly: /etc/systemd/system/restorable-drill-web01-weekly.timer"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.agent.units import CalendarError
from ansible_collections.restorable.backup.plugins.module_utils.converge.drills import DrillScheduler, DrillScheduleSpec
from ansible_collections.restorable.backup.plugins.module_utils.converge.jobs import converge_and_exit, schedule_argument_spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=schedule_argument_spec(dict(
            name=dict(type="str", required=True),
            calendar=dict(type="str", required=True),
            config=dict(type="dict", required=True),
        )),
        supports_check_mode=True,
    )
    scheduler = DrillScheduler(module.check_mode, module.params["scheduler"], module.params["root"], module.params["python"])
    converge_and_exit(module, scheduler, [DrillScheduleSpec.from_params(p) for p in module.params["jobs"]], "restore drills",
                      (CalendarError, ValueError))


if __name__ == "__main__":
    main()
