# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: drill_summary
type: notification
short_description: A one-screen table of the restore drills at the end of the playbook
version_added: 0.1.0
description:
  - Collects the record of every M(restorable.backup.drill) task and prints, once the playbook
    ends, one line per dataset drill with its host, drill host, result, RTO against its target and
    RPO against its target, then one line per failed layer.
  - Enable it with C(callbacks_enabled = restorable.backup.drill_summary) in C(ansible.cfg) or
    C(ANSIBLE_CALLBACKS_ENABLED=restorable.backup.drill_summary).
author:
  - Restorable maintainers (@restorable)
requirements:
  - enabled in callbacks_enabled
"""

from ansible.plugins.callback import CallbackBase

from ansible_collections.restorable.backup.plugins.module_utils.drill.report import summary_lines

DRILL_ACTIONS = frozenset(("restorable.backup.drill", "drill"))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "restorable.backup.drill_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.records = []

    def _collect(self, result):
        if result._task.action not in DRILL_ACTIONS:
            return
        outcome = result._result
        for item in outcome.get("results") or [outcome]:
            record = item.get("record") if isinstance(item, dict) else None
            if isinstance(record, dict) and record.get("dataset"):
                self.records.append(record)

    def v2_runner_on_ok(self, result):
        self._collect(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._collect(result)

    def v2_playbook_on_stats(self, stats):
        if not self.records:
            return
        failed = sum(1 for r in self.records if r.get("result") == "failed")
        self._display.banner("RESTORE DRILLS: %d dataset drill(s), %d failed" % (len(self.records), failed))
        lines = summary_lines(self.records)
        table = len(self.records) + 2  # header, rule, one row per drill; failed layers follow
        for index, line in enumerate(lines):
            self._display.display(line, color="red" if index >= table else None)
