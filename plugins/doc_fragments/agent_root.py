# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The root of a host's agent tier, for modules that read what restorable.backup.job wrote there.
    DOCUMENTATION = r"""
options:
  root:
    description: Directory the host's C(etc/restorable) is below (see M(restorable.backup.job)).
    type: path
    default: /
"""
