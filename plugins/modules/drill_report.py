#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: drill_report
short_description: Keep restore drill records as evidence on the controller
version_added: 0.1.0
description:
  - Appends the drill records of M(restorable.backup.drill) to a ledger (JSON lines, one record a
    line, never rewritten) in O(evidence_dir) and writes, for this run, C(junit.xml) (one testcase
    per dataset drill, one failure per failed layer), C(report.html) (self-contained, a table per
    dataset and RTO and RPO trends over the ledger as inline SVG) and C(report.md).
  - Runs on the controller (action plugin); fails when any record failed, after writing everything.
author:
  - Restorable maintainers (@restorable)
options:
  records:
    description: Drill records (the C(record) each M(restorable.backup.drill) run returned).
    type: list
    elements: dict
    default: []
  results_var:
    description:
      - Name of the variable each inventory host registered its loop of M(restorable.backup.drill)
        tasks in; their records are added to O(records).
      - A drill task that failed without a record (bad arguments, unreachable drill host) is
        recorded as a failed drill.
    type: str
  evidence_dir:
    description: Directory of the ledger and reports, on the controller; relative to the current directory.
    type: path
    default: drill-evidence
  fail_on_failed:
    description: Fail the task when any record failed (after the evidence is written).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Writes nothing in check mode.
  diff_mode:
    support: none
    description: The ledger only grows.
  idempotent:
    support: none
    description: Every run appends its records.
"""

EXAMPLES = r"""
- name: Keep the evidence
  restorable.backup.drill_report:
    results_var: drill_runs
    evidence_dir: /srv/drill-evidence
"""

RETURN = r"""
ledger:
  description: Path of the ledger.
  returned: success
  type: str
junit:
  description: Path of the JUnit XML file.
  returned: success
  type: str
html:
  description: Path of the HTML report.
  returned: success
  type: str
markdown:
  description: Path of the Markdown report.
  returned: success
  type: str
failed_drills:
  description: Number of failed dataset drills.
  returned: success
  type: int
records:
  description: Number of dataset drills recorded.
  returned: success
  type: int
summary:
  description: One line per dataset drill (dataset, host, result, RTO and RPO against their targets), then each failed layer.
  returned: success
  type: list
  elements: str
"""
