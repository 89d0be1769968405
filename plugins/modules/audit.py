#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: audit
short_description: Judge every declared dataset of a fleet from what its hosts observed
version_added: 0.1.0
description:
  - Runs once on the controller (action plugin). For every enabled dataset each audited host's policy
    declares, from the host facts of M(restorable.backup.audit_facts) (or the evidence bucket), not
    from the policy, judges the newest good point of each copy (repository, replica, WAL archive,
    cartridge, vault) against the dataset's RPO, 3-2-1-1-0 from the copies that exist (immutable
    only where the lock was read back), the last drill that restored the dataset (from the
    controller's drill evidence and every drill host's scheduled-drill ledger) against the drill
    cadence, and its RTO and RPO against their targets.
  - Gives each dataset a status, C(green), C(amber) or C(red), with the reasons in plain words.
    Red means the dataset cannot be restored within its promises (no point, the newest point older
    than the RPO, the last drill or integrity check failed); amber means something needs attention
    (a rule not met, a copy stale or missing, a lock not verified, no recent drill, the host not reached).
  - Unreachable hosts, stopped VMs and cartridges in the vault stay in the audit, marked.
  - Writes C(audit.json) (the evaluated audit document, format 1), C(junit.xml) (one test case per
    dataset and rule, a failure per violation) and C(audit.html) (one self-contained page) into
    O(audit_dir). Fails when any dataset is red, after writing everything.
author:
  - Restorable maintainers (@restorable)
options:
  hosts:
    description: The hosts to audit (default the play's hosts, C(ansible_play_hosts_all), unreachable ones included).
    type: list
    elements: str
  facts_var:
    description: The variable each host registered the result of M(restorable.backup.audit_facts) in.
    type: str
    default: audit_host
  source:
    description:
      - Where the facts come from, C(ssh) (the registered results of O(facts_var)) or C(bucket) (the
        hosts' hash-chained evidence records in the evidence bucket, verified while read).
    type: str
    choices: [ssh, bucket]
    default: ssh
  bucket:
    description:
      - With O(source=bucket), the evidence bucket (C(endpoint), C(bucket), C(prefix), C(region),
        C(access_key_id), C(secret_access_key)).
    type: dict
  audit_dir:
    description: Directory of C(audit.json), C(junit.xml) and C(audit.html) on the controller.
    type: path
    default: audit-report
  drill_evidence_dir:
    description: The controller's drill evidence (its C(ledger.jsonl)), as M(restorable.backup.drill_report) writes it.
    type: path
    default: drill-evidence
  show_summary:
    description: Print one line per dataset (status, host/dataset, tier, score, newest point, first reason) and the totals.
    type: bool
    default: true
  fail_on_red:
    description: Fail the task when any dataset is red (after the report is written).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Judges and returns the document, writes nothing.
  diff_mode:
    support: none
    description: A report is written, nothing on a host changes.
  idempotent:
    support: none
    description: Every run writes a new report.
"""

EXAMPLES = r"""
- name: Collect what the audit judges
  restorable.backup.audit_facts:
    host: "{{ inventory_hostname }}"
    root: "{{ agent_root | default('/') }}"
  register: audit_host
  ignore_unreachable: true

- name: Judge the fleet
  restorable.backup.audit:
    audit_dir: /srv/audit
  run_once: true
"""

RETURN = r"""
summary:
  description: Counts of the audit (C(hosts), C(unreachable), C(datasets), C(green), C(amber), C(red)).
  returned: always
  type: dict
  sample: {"hosts": 3, "unreachable": 1, "datasets": 5, "green": 3, "amber": 1, "red": 1}
red:
  description: Each red dataset as C(host/dataset (first reason)).
  returned: always
  type: list
  elements: str
summary_lines:
  description: One line per dataset (status, host/dataset, tier, score, newest point, first reason) and the totals.
  returned: always
  type: list
  elements: str
json:
  description: Path of C(audit.json).
  returned: unless check mode
  type: str
junit:
  description: Path of C(junit.xml).
  returned: unless check mode
  type: str
html:
  description: Path of C(audit.html).
  returned: unless check mode
  type: str
document:
  description: The evaluated audit document.
  returned: in check mode
  type: dict
"""
