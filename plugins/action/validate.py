# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side validation of the backup policy of every host in the play."""
from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import InventoryPolicy
from ansible_collections.restorable.backup.plugins.plugin_utils.policy import schema as policy_schema

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False  # validation never touches a host
    _VALID_ARGS = frozenset(("hosts",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        if not policy_schema.HAS_DEPENDENCIES:
            return dict(result, failed=True, msg="restorable.backup.validate needs the Python packages jsonschema, fastjsonschema "
                        "and PyYAML on the controller (pip install -r requirements.txt): %s" % policy_schema.IMPORT_ERROR)
        from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator
        from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS

        hosts = self._task.args.get("hosts") or task_vars.get("ansible_play_hosts_all") or []
        policy = InventoryPolicy(task_vars["hostvars"], (AnsibleError,)).load(list(hosts))
        # With the tier registry: what this version will not apply is said, and scores nothing.
        validator = FleetValidator(origin=policy.origin, secret_source=policy.secret_source, tiers=TIERS)
        report = validator.validate(policy.documents, inventory_hosts=frozenset(task_vars["groups"]["all"]))
        report.problems[:0] = policy.problems
        for line in report.lines():
            display.display(line, stderr=True)
        for host, scores in sorted(report.compliance.items()):
            for dataset, score in sorted(scores.items()):
                gaps = ": %s" % "; ".join(score["gaps"]) if score["gaps"] else ""
                display.display("%s: 3-2-1-1-0 %s: %s%s" % (host, dataset, score["score"], gaps))
        result.update(
            changed=False,
            hosts_checked=report.hosts_checked,
            problems=[p.line() for p in report.errors],
            warnings=[p.line() for p in report.warnings],
            compliance=report.compliance,
        )
        if report.errors:
            result["failed"] = True
            result["msg"] = "policy validation found %d problem(s), listed above and in 'problems'; nothing was applied" % len(report.errors)
        else:
            result["msg"] = "policy of %d host(s) is valid" % report.hosts_checked
        return result
