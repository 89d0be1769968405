# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: site_plan
short_description: The start slots of each site of the inventory, in words
version_added: 0.1.0
description:
  - From every inventory host's validated C(restorable_*) variables, one block of lines per site
    profile (C(restorable_sites)) that hosts name in C(restorable_site) - its window, bandwidth cap
    and, with a C(concurrency), its start slots with their hosts and the time each host's
    scheduled backups start (in the window's time zone).
  - Hosts of a site are sorted by inventory name over the whole inventory and take slots of
    C(concurrency) hosts in that order, so every run and every controller staggers alike, whatever
    C(--limit) says.
author:
  - Restorable maintainers (@restorable)
extends_documentation_fragment:
  - restorable.backup.fleet_hostvars
"""

EXAMPLES = r"""
- name: Show each site's start slots
  ansible.builtin.debug:
    msg: "{{ hostvars | restorable.backup.site_plan }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: "Lines, for example C(site lyon: 6 hosts, ..., concurrency 2: 3 slots) then C(  slot 1: lyon-01, lyon-02 at 20:00)."
  type: list
  elements: str
"""

from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import planner_from_hostvars
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.plan import site_lines


def site_plan(hostvars):
    return site_lines(planner_from_hostvars(hostvars).fleet)


class FilterModule:
    def filters(self):
        return {"site_plan": site_plan}
