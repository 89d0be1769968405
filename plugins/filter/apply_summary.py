# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: apply_summary
short_description: One line per host saying what restorable.backup.apply changed on it
version_added: 0.1.0
description:
  - "Reads, for each host, the results the C(restorable.backup.agent) role registered
    (C(agent_repositories), C(agent_jobs)) and its plan (C(agent_fleet_plan)), and says what
    changed, for example C(web01: 2 jobs scheduled, 1 repository initialised, credentials unchanged)
    or C(web01: no change)."
  - A host the role never finished is named as not converged.
author:
  - Restorable maintainers (@restorable)
options:
  hosts:
    description: The hosts to report, for example C(ansible_play_hosts_all).
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - restorable.backup.fleet_hostvars
"""

EXAMPLES = r"""
- name: Say what apply changed
  ansible.builtin.debug:
    msg: "{{ hostvars | restorable.backup.apply_summary(ansible_play_hosts_all) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: One line per host, in the order given.
  type: list
  elements: str
"""

from ansible_collections.restorable.backup.plugins.plugin_utils.apply_summary import change_line
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import plain


def apply_summary(hostvars, hosts):
    return [_line(host, hostvars[host]) for host in hosts]


def _line(host, variables):
    plan = plain((variables.get("agent_fleet_plan") or {}).get(host)) or {}  # this host's part only: the fleet's is large
    drill_jobs = [job["name"] for job in (plan.get("drills") or {}).get("jobs", [])]
    return change_line(host, plain(variables.get("agent_repositories")), plain(variables.get("agent_jobs")), drill_jobs)


class FilterModule:
    def filters(self):
        return {"apply_summary": apply_summary}
