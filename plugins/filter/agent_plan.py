# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: agent_plan
short_description: The repositories and jobs of a host's restic tiers (agent, host, cdp)
version_added: 0.1.0
description:
  - Turns a host's validated C(restorable_*) variables into what its agent and host tiers apply
    on it, that is the repositories to initialise, with the credentials to place, and the jobs to
    schedule (a host dataset's jobs that run on a O(host)'s proxy are not among them).
  - Used by the C(restorable.backup.drill) playbook for the repositories' credentials; secrets
    are part of the result, so never print it.
author:
  - Restorable maintainers (@restorable)
options:
  _input:
    description: The host's variables, for example C(hostvars[inventory_hostname]).
    type: dict
    required: true
  host:
    description: The inventory name of the host (spreads start times, names S3 prefixes).
    type: str
    required: true
  root:
    description:
      - Directory the host's configuration, secrets and status live below; C(/) on a real host.
      - Several inventory hosts that share one machine (the demo, tests) each get their own.
    type: str
    default: /
"""

EXAMPLES = r"""
- name: Initialise the repositories of this host
  restorable.backup.repository:
    repositories: "{{ (hostvars[inventory_hostname] | restorable.backup.agent_plan(inventory_hostname)).repositories }}"
"""

RETURN = r"""
_value:
  description: C(repositories), C(jobs) and C(secrets) (database passwords as files) lists.
  type: dict
"""

from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.agent_jobs import AgentPlanner
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.cdp import CdpJobs
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.host import HostJobs
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import plain
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import VARIABLE_PREFIX


def agent_plan(variables, host, root="/"):
    policy = {k: plain(variables[k]) for k in variables.keys() if isinstance(k, str) and k.startswith(VARIABLE_PREFIX)}
    planners = [AgentPlanner(host, policy, root), HostJobs(host, policy, root), CdpJobs(host, policy, root)]
    repositories = {r["name"]: r for planner in planners for r in planner.repositories()}
    return {"repositories": [repositories[name] for name in sorted(repositories)],
            "jobs": [job for planner in planners for job in planner.jobs()], "secrets": planners[0].secrets()}


class FilterModule:
    def filters(self):
        return {"agent_plan": agent_plan}
