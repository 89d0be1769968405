#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate
short_description: Validate the backup policy of every host on the controller
version_added: 0.1.0
description:
  - Reads the C(restorable_*) variables of every host of the play (or of O(hosts)), checks them
    against the policy schema and the semantic rules (references, RPO versus schedule, windows,
    retention versus drill look-back, tape chains, sandbox placement, plain-text secrets,
    3-2-1-1-0), and fails with one line per problem naming host, field path and file.
  - Runs on the controller only; no host is contacted. Run it once per play (C(run_once)).
author:
  - Restorable maintainers (@restorable)
options:
  hosts:
    description:
      - Inventory hosts to validate. Defaults to every host of the play.
    type: list
    elements: str
requirements:
  - jsonschema >= 4.18 and fastjsonschema on the controller
  - PyYAML on the controller
notes:
  - Secrets must be given with Ansible Vault or a lookup; plain text gives a warning, or an error
    when C(restorable_compliance.plaintext_secrets) is C(error). Secret values never appear in messages.
extends_documentation_fragment:
  - restorable.backup.read_only
"""

EXAMPLES = r"""
- name: Validate the policy of the whole inventory
  restorable.backup.validate:
  run_once: true

- name: Validate two hosts only
  restorable.backup.validate:
    hosts: [web01, db01]
  run_once: true
"""

RETURN = r"""
hosts_checked:
  description: Number of hosts whose policy was checked.
  returned: always
  type: int
  sample: 42
problems:
  description: "One line per error: host, field path, message, and the file and line of the value."
  returned: always
  type: list
  elements: str
  sample: ["web01: restorable_datasets.www.retention.daily: -1 is less than 0 (inventories/prod/host_vars/web01.yml:7)"]
warnings:
  description: One line per warning (plain-text secrets, for example).
  returned: always
  type: list
  elements: str
compliance:
  description: >-
    3-2-1-1-0 score per host and dataset, with the rules met and missing, and in C(gaps) each missing rule in plain words.
  returned: unless rule_3_2_1_1_0 is ignore
  type: dict
  sample: {"web01": {"www": {"score": "4/5", "met": ["3 copies"], "missing": ["1 off-site"], "gaps": ["no copy is off-site"]}}}
"""
