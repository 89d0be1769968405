# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: drills_of
short_description: The restore drills a source host declares, dataset by dataset
version_added: 0.1.0
description:
  - One entry per dataset of each drill in a host's C(restorable_drills), with the drill host,
    the repository URL and options as the drill host reaches it (SSH options pointing at the
    credentials M(restorable.backup.job) placed there when the drill runs on another
    host), the M(restorable.backup.drill) parameters and the calendar.
  - Carries no secret (passwords and keys come from C(restorable.backup.agent_plan)), so it can
    be a loop of a task. The same plan the scheduled drills of C(restorable.backup.drill_plan)
    come from; used by the C(restorable.backup.drill) playbook.
author:
  - Restorable maintainers (@restorable)
options:
  source_host:
    description: The inventory name of the host whose drills are wanted.
    type: str
    required: true
extends_documentation_fragment:
  - restorable.backup.fleet_hostvars
"""

EXAMPLES = r"""
- name: Show where the drills of this host run
  ansible.builtin.debug:
    msg: "{{ (hostvars | restorable.backup.drills_of(inventory_hostname)) | map(attribute='params.drill_host') }}"
"""

RETURN = r"""
_value:
  description: Entries with C(name), C(calendar), C(target), C(repository), C(status_file) and C(params).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import planner_from_hostvars


def drills_of(hostvars, source_host):
    try:
        return planner_from_hostvars(hostvars).drills_of(source_host)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"drills_of": drills_of}
