# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The input of the filters that plan from the whole fleet's variables.
    DOCUMENTATION = r"""
options:
  _input:
    description: The variables of every host, C(hostvars).
    type: dict
    required: true
"""
