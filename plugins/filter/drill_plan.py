# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: drill_plan
short_description: The scheduled restore drills and drill credentials of a drill host
version_added: 0.1.0
description:
  - From every inventory host's validated C(restorable_*) variables, the restore drills that run
    on one drill host (the drills whose C(drill_host) is that host, and the host's own drills
    without a C(drill_host)).
  - C(jobs) holds one scheduled job per source host and drill with a C(calendar), its
    configuration listing the datasets as the M(restorable.backup.drill) module takes them, secrets
    by file path only. C(secrets) holds the source repositories' credentials (password, S3 keys,
    SSH key, known_hosts) to place on the drill host for every drill that runs there, scheduled
    or not.
  - Used by the C(restorable.backup.agent) role with M(restorable.backup.job) (its O(drills)); secrets
    are part of the result, so never print it.
author:
  - Restorable maintainers (@restorable)
options:
  drill_host:
    description: The inventory name of the drill host.
    type: str
    required: true
  root:
    description: The drill host's C(agent_root) (C(/) on a real host).
    type: str
    default: /
extends_documentation_fragment:
  - restorable.backup.fleet_hostvars
"""

EXAMPLES = r"""
- name: Schedule the backup jobs and the drills this host runs
  restorable.backup.job:
    jobs: "{{ (hostvars[inventory_hostname] | restorable.backup.agent_plan(inventory_hostname)).jobs }}"
    drills: "{{ (hostvars | restorable.backup.drill_plan(inventory_hostname)).jobs }}"
    drill_secrets: "{{ (hostvars | restorable.backup.drill_plan(inventory_hostname)).secrets }}"
"""

RETURN = r"""
_value:
  description: C(jobs), C(secrets) and C(evidence_dir) (ledger and reports) of the drill host.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import planner_from_hostvars


def drill_plan(hostvars, drill_host, root="/"):
    try:
        return planner_from_hostvars(hostvars, {drill_host: root}).schedule(drill_host)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"drill_plan": drill_plan}
