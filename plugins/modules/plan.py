#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: plan
short_description: Describe in words what a host's backup policy asks for
version_added: 0.1.0
description:
  - Reads the host's C(restorable_*) variables on the controller and returns, per dataset, what is
    copied, where to, when, what is kept, the objectives and the 3-2-1-1-0 score; then each drill.
  - Run it after M(restorable.backup.validate) in the same play; it assumes a valid policy.
author:
  - Restorable maintainers (@restorable)
options: {}
extends_documentation_fragment:
  - restorable.backup.read_only
"""

EXAMPLES = r"""
- name: Describe the policy
  restorable.backup.plan:
  register: policy_plan

- name: Show it
  ansible.builtin.debug:
    var: policy_plan.plan
"""

RETURN = r"""
plan:
  description: Lines describing each dataset and drill of the host.
  returned: always
  type: list
  elements: str
  sample: ["dataset www (agent tier): restic backup of /var/www", "  copy to nas (local /srv/restic)"]
"""
