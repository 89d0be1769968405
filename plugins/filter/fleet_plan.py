# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_plan
short_description: What apply converges on each host of a play, planned once for the whole play
version_added: 0.1.0
description:
  - From every inventory host's validated C(restorable_*) variables, for each of the given hosts,
    the plan of each tier this version plans (C(tiers), by tier name, for example
    C(tiers.agent.jobs), C(tiers.agent.secrets) and C(tiers.agent.repositories)) and the drills
    that run on the host (C(drills), as C(restorable.backup.drill_plan) returns them).
  - Every host's variables are read once, so a play that sets this once (C(run_once)) plans a
    fleet in time linear in its size. Secrets are part of the result, so never print it.
  - Agent roots come from each host's C(agent_root), C(/) without one.
author:
  - Restorable maintainers (@restorable)
options:
  hosts:
    description: The inventory names of the hosts to plan, for example C(ansible_play_hosts).
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - restorable.backup.fleet_hostvars
"""

EXAMPLES = r"""
- name: Plan every host of the play once
  ansible.builtin.set_fact:
    fleet: "{{ hostvars | restorable.backup.fleet_plan(ansible_play_hosts) }}"
  run_once: true
  no_log: true
"""

RETURN = r"""
_value:
  description: By host, C(tiers) (each tier's C(jobs), C(secrets) and more) and C(drills).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import planner_from_hostvars
from ansible_collections.restorable.backup.plugins.plugin_utils.heap import cycle_collection_paused


def fleet_plan(hostvars, hosts):
    planner = planner_from_hostvars(hostvars)
    try:
        with cycle_collection_paused():
            return {host: planner.host_plan(host) for host in hosts}
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"fleet_plan": fleet_plan}
