# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
name: demo_summary
type: notification
short_description: The demo's closing summary, from the audit and restic's repository statistics
version_added: 0.1.0
description:
  - "Once the playbook ends, whatever its outcome (a red dataset fails the audit's play), says on
    one screen what the demo protects: per dataset its host, tier, audit status and 3-2-1-1-0
    score, each copy with the age of its newest point, and the last drill with its result, age
    and RTO against the target; then per restic repository its points, what they hold restored in
    full, what the repository stores and the ratio of the two (deduplication and compression)."
  - "Reads the C(audit.json) that the M(restorable.backup.audit) task wrote, and the output of the
    task registered as C(demo_stats) on each host (playbooks/demo.yml): one line C(REPOSITORY MODE JSON)
    per repository and MODE (C(raw-data), C(restore-size)), JSON the output of C(restic stats --json --mode MODE)."
  - Enable it with C(ANSIBLE_CALLBACKS_ENABLED=restorable.backup.demo_summary), as C(make demo) does.
author:
  - Restorable maintainers (@restorable)
requirements:
  - enabled in callbacks_enabled
"""

import json
import os

from ansible.plugins.callback import CallbackBase

from ansible_collections.restorable.backup.plugins.plugin_utils.demo_summary import DemoSummary, DemoSummaryError, stats_of_hosts

AUDIT_ACTIONS = frozenset(("restorable.backup.audit", "audit"))
STATS_REGISTER = "demo_stats"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "restorable.backup.demo_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.audit_dir = None
        self.stats_outputs = []

    def _collect(self, result):
        outcome = result._result
        if result._task.action in AUDIT_ACTIONS and outcome.get("audit_dir"):
            self.audit_dir = outcome["audit_dir"]
        elif result._task.register == STATS_REGISTER:
            self.stats_outputs.append((result._host.get_name(), outcome.get("stdout") or ""))

    def v2_runner_on_ok(self, result):
        self._collect(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._collect(result)

    def v2_playbook_on_stats(self, stats):
        self._display.banner("DEMO SUMMARY")
        for line in self._lines():
            self._display.display(line)

    def _lines(self):
        if self.audit_dir is None:
            return ["no audit: the playbook stopped before restorable.backup.audit wrote one"]
        path = os.path.join(self.audit_dir, "audit.json")
        try:
            with open(path, encoding="utf-8") as handle:
                audit = json.load(handle)
            repositories, problems = stats_of_hosts(self.stats_outputs)
            page = "file://" + os.path.join(self.audit_dir, "audit.html")  # a link the terminal opens
            return DemoSummary(audit, repositories, page, problems).lines()
        except (OSError, json.JSONDecodeError, DemoSummaryError) as exc:
            return ["no summary: %s: %s" % (path, exc)]
