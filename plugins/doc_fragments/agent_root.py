# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The root of every path the collection uses on a host (core/layout.py HostLayout).
    DOCUMENTATION = r"""
options:
  root:
    description:
      - Directory that every path of the collection on the host is below, C(/) on a real host
        (configurations in C(etc/restorable), status in C(var/lib/restorable), the runtime in C(usr/local/lib/restorable)).
      - Several inventory hosts sharing one machine (demo, tests) each have a root of their own; below any
        root but C(/), M(restorable.backup.job) writes units and cron entries without activating them.
    type: path
    default: /
"""
