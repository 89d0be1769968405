# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side, per host: what the policy asks for, in words."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import planner_from_hostvars
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import plain
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.compliance import ComplianceScorer
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.plan import plan_lines
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import VARIABLE_PREFIX
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset()

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        # Validation ran first in the same play, so the policy has the shape the plan reads.
        policy = {k: plain(self._templar.template(v)) for k, v in task_vars.items() if k.startswith(VARIABLE_PREFIX)}
        host = task_vars["inventory_hostname"]
        scores = {s.dataset: s.as_dict() for s in ComplianceScorer(host, policy, TIERS).scores()}
        # The site's start slot depends on the hosts of the site across the inventory, read once per play.
        site = policy.get("restorable_site")
        site_hosts = planner_from_hostvars(task_vars["hostvars"]).fleet.sites().get(site) if site and "hostvars" in task_vars else None
        result.update(changed=False, plan=plan_lines(policy, scores, host, TIERS, site_hosts))
        return result
