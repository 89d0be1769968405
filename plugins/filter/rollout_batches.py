# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: rollout_batches
short_description: The hosts of a rolling apply in order, site by site with a canary first
version_added: 0.1.0
description:
  - Orders the hosts site by site (sorted by site name; hosts without a site last) and, in each
    site, its canary host alone first, then the rest of the site.
  - Reads the groups a C(ansible.builtin.group_by) task made, C(rollout_site_<site>) from each
    host's C(restorable_site) (C(rollout_site_) without one) and C(rollout_canary) from the hosts
    with C(rollout_canary=true); a site's canary is its host in C(rollout_canary), else its first
    host by name. Groups, not hostvars, because a play's C(hosts) and C(serial) are templated
    before any host is.
  - Returns C(hosts) (in that order) and C(serial) (the size of each batch), which the
    C(restorable.backup.rollout) playbook gives to its play, so that with C(max_fail_percentage=0)
    the first failure stops the rollout before another host is touched.
author:
  - Restorable maintainers (@restorable)
options:
  _input:
    description: Ansible's C(groups).
    type: dict
    required: true
  sites:
    description: Roll out only these sites (C(restorable_site) names); all when omitted or null.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Group the hosts by site
  hosts: all
  gather_facts: false
  tasks:
    - name: Group by site
      ansible.builtin.group_by:
        key: "rollout_site_{{ restorable_site | default('') }}"

- name: Converge site by site, a canary host first
  hosts: "{{ rollout.hosts }}"
  serial: "{{ rollout.serial }}"
  max_fail_percentage: 0
  vars:
    rollout: "{{ groups | restorable.backup.rollout_batches }}"
  roles:
    - role: restorable.backup.agent
"""

RETURN = r"""
_value:
  description: C(hosts), C(serial) and C(batches) (the hosts of each batch).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.restorable.backup.plugins.plugin_utils.site_profile import rollout

SITE_GROUP = "rollout_site_"
CANARY_GROUP = "rollout_canary"


def rollout_batches(groups, sites=None):
    found = {host: name[len(SITE_GROUP):] or None for name, hosts in groups.items() if name.startswith(SITE_GROUP) for host in hosts}
    try:
        plan = rollout(found, list(groups.get(CANARY_GROUP) or []), sites)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return {"hosts": plan.hosts, "serial": plan.serial, "batches": plan.batches}


class FilterModule:
    def filters(self):
        return {"rollout_batches": rollout_batches}
