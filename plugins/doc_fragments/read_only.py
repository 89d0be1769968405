# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Attributes of a module that only reads (a policy, a host's status) and changes nothing.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    support: full
    description: Reads only and changes nothing, so check mode behaves like a normal run.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Always returns C(changed=false).
"""
