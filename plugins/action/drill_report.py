# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: keep the drill records as evidence (ledger, JUnit, HTML, Markdown)."""
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.restorable.backup.plugins.module_utils.drill.report import records_from_results, write_evidence
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import plain

DEFAULT_DIR = "drill-evidence"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("records", "results_var", "evidence_dir", "fail_on_failed"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        records = [plain(r) for r in args.get("records") or [] if isinstance(r, dict) and r]
        if args.get("results_var"):
            records += records_from_results(self._registered(task_vars, str(args["results_var"])))
        directory = os.path.abspath(os.path.expanduser(str(args.get("evidence_dir") or DEFAULT_DIR)))
        if self._task.check_mode:
            result.update(changed=False, skipped=True, msg="check mode: no evidence written", evidence_dir=directory)
            return result
        try:
            written = write_evidence(directory, records)
        except OSError as exc:
            raise AnsibleActionFail("cannot write the drill evidence to %s: %s" % (directory, exc)) from None
        result.update(changed=bool(records), evidence_dir=directory, **written)
        fail = args.get("fail_on_failed", True)
        if written["failed_drills"] and fail not in (False, "false", "False", "no", "0"):
            result["failed"] = True
            result["msg"] = "%d of %d dataset drill(s) failed; report %s" % (
                written["failed_drills"], written["records"], written["html"])
        else:
            result["msg"] = "%d dataset drill(s), none failed; report %s" % (written["records"], written["html"])
        return result

    @staticmethod
    def _registered(task_vars, name):
        """{host: the registered result called name} for every inventory host that has one."""
        hostvars = task_vars["hostvars"]
        found = {}
        for host in task_vars["groups"].get("all", []):
            try:
                value = hostvars[host].get(name)
            except AnsibleError:
                continue
            if isinstance(value, dict):
                found[host] = plain(value)
        return found
