#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: array_restore
short_description: Restore a point of an array dataset from its tape library into a sandbox
version_added: 0.1.0
description:
  - Restores one recovery point of an array dataset (a consistency-group snapshot of several volumes)
    from the tape library it was exported to, on the host that runs the library.
  - The library's catalog gives the point's chain (the full, then each incremental up to the point); the
    cartridges it needs are loaded in order and every stream is piped into C(btrfs receive), base first.
    Each cartridge's label and every chunk's checksum are checked while reading; a damaged cartridge
    fails the restore naming its barcode.
  - Each volume's copy becomes a writable subvolume C(SANDBOX/VOLUME_NAME); the sandbox must be on btrfs
    and must not be, contain or lie inside a volume, a snapshot directory or one of O(protected_paths).
    A PostgreSQL point's tablespaces on other volumes of the group are pointed at their restored copies.
  - Cartridges in the vault are recalled first with O(recall); without it the restore fails naming them.
  - Starting the application on the restored volumes is the drill's business (M(restorable.backup.drill)
    with O(restorable.backup.drill#module:tier=array)). See docs/array-tier.md.
author:
  - Restorable maintainers (@restorable)
options:
  library_config:
    description: The library's configuration file on this host (C(/etc/restorable/tape/NAME.json) for root C(/)).
    type: path
    required: true
  group:
    description: The group the points belong to (the array dataset's name).
    type: str
    required: true
  volumes:
    description: The dataset's volumes; never written, and the sandbox may not overlap them.
    type: list
    elements: path
    default: []
  point:
    description: The point's id (for example C(20261203T181500.123456Z)), or C(latest) for the newest point on tape.
    type: str
    default: latest
  sandbox:
    description: Directory on btrfs the volumes are restored into.
    type: path
    required: true
  recall:
    description: Recall the vaulted cartridges the point's chain needs before reading them.
    type: bool
    default: false
  protected_paths:
    description: More paths the sandbox must not overlap.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
    description: Finds the point's chain and cartridges in the catalog and checks the sandbox; reads and writes no cartridge.
  diff_mode:
    support: none
    description: A restored subvolume has no useful diff.
  idempotent:
    support: none
    description: Every run restores anew; an existing copy of a volume in the sandbox fails the restore.
"""

EXAMPLES = r"""
- name: Restore the newest point of pgarr from tape, recalling vaulted cartridges
  restorable.backup.array_restore:
    library_config: /etc/restorable/tape/vtl01.json
    group: pgarr
    volumes: [/srv/pg, /srv/pgwal]
    sandbox: /srv/restore
    recall: true
  register: restored

- name: Where each volume came back
  ansible.builtin.debug:
    msg: "{{ restored.restore.copies }} from cartridges {{ restored.restore.cartridges }}"

- name: Restore the third point of a chain
  restorable.backup.array_restore:
    library_config: /etc/restorable/tape/vtl01.json
    group: pgarr
    point: "20261203T183000.000000Z"
    sandbox: /srv/restore-3
"""

RETURN = r"""
restore:
  description:
    - The restore, C(group), C(point), C(chain) (point ids, base first), C(copies) (volume to restored path),
      C(recalled) and C(cartridges) (barcodes, in reading order), C(bytes) and C(streams) (per stream read).
    - In check mode C(chain), C(cartridges) and C(vaulted) (barcodes that would need a recall) only.
  returned: always
  type: dict
  sample: {"group": "pgarr", "point": "20261203T181500.123456Z", "chain": ["20261203T180000.000001Z", "20261203T181500.123456Z"],
           "copies": {"/srv/pg": "/srv/restore/pg"}, "cartridges": ["DA0001L8"], "recalled": []}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import DrillError, check_sandbox
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import TapeLibrary, open_library
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.media import TapeError
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.restore import (RestoreError, protected_paths,
                                                                                            restore_point, vaulted)


def plan_restore(library: TapeLibrary, group: str, point: str, sandbox: str, protected: list[str]) -> dict:
    """What a restore would read: the chain and its cartridges; the sandbox checked."""
    points = library.points(group)
    if not points:
        raise RestoreError("the library has no point of group %s" % group)
    point = points[-1]["point"] if point == "latest" else point
    chain = library.chain(group, point)
    check_sandbox(sandbox, protected + protected_paths(chain[-1]))
    return {"group": group, "point": point, "chain": [record["point"] for record in chain],
            "cartridges": [cart["barcode"] for cart in library.cartridges_for(chain)], "vaulted": vaulted(library, chain)}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            library_config=dict(type="path", required=True),
            group=dict(type="str", required=True),
            volumes=dict(type="list", elements="path", default=[]),
            point=dict(type="str", default="latest"),
            sandbox=dict(type="path", required=True),
            recall=dict(type="bool", default=False),
            protected_paths=dict(type="list", elements="path", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    protected = [os.path.normpath(path) for path in params["volumes"] + params["protected_paths"]]
    try:
        library = open_library(params["library_config"])
        try:
            if module.check_mode:
                result = plan_restore(library, params["group"], params["point"], params["sandbox"], protected)
            else:
                result = restore_point(library, params["group"], params["point"], params["sandbox"], params["recall"], protected)
        finally:
            library.close()
    except (RestoreError, DrillError, TapeError, OSError) as exc:
        module.fail_json(msg="restore of %s point %s from %s: %s" % (params["group"], params["point"], params["library_config"], exc))
    module.exit_json(changed=not module.check_mode, restore=result)


if __name__ == "__main__":
    main()
