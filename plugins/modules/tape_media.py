#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: tape_media
short_description: Inventory, vault, recall, recycle cartridges of a virtual tape library, or rebuild its catalog
version_added: 0.1.0
description:
  - Works on one library through its configuration file (written by M(restorable.backup.tape_library)),
    on the host that runs it. One writer at a time; the library's lock is held for each operation.
  - C(inventory) lists slots, drives, the import/export slot, the vault and every cartridge with its
    pool, state, generation and free space; it never changes anything.
  - C(vault) moves the finished cartridges of the pools with C(vault) through the import/export slot to
    the vault (an S3 library copies them to its archive storage class).
  - C(recall) brings the given cartridges back from the vault into free slots (an S3 library restores the
    archived object first); cartridges not in the vault are left as they are.
  - C(recycle) returns to scratch each cartridge whose data all expired under its pool's C(retention_days)
    and that no kept point's chain needs (O(keep_points)); a vaulted cartridge must be recalled first.
    A WORM cartridge is never rewritten before it expired.
  - C(rebuild_catalog) reads every cartridge's label and members and writes the catalog anew (after it was
    lost or damaged); barcode counters never go back, so no barcode is reused.
  - See docs/tape.md.
author:
  - Restorable maintainers (@restorable)
options:
  library_config:
    description: The library's configuration file (C(/etc/restorable/tape/NAME.json) for root C(/)).
    type: path
    required: true
  operation:
    description: What to do.
    type: str
    choices: [inventory, vault, recall, recycle, rebuild_catalog]
    default: inventory
  barcodes:
    description: The cartridges to recall (O(operation=recall)).
    type: list
    elements: str
    default: []
  keep_points:
    description:
      - O(operation=recycle), by group (an array dataset's name), the ids of the points the dataset still keeps;
        the cartridges their chains need are kept, whatever their age.
      - Omitted, cartridges are recycled by age alone.
    type: dict
attributes:
  check_mode:
    support: partial
    description: Says what would move, changes nothing; see details.
    details:
      - C(inventory) runs as usual. C(vault), C(recall) and C(recycle) say which cartridges they would move or
        return to scratch, from the catalog, and move none; in check mode C(recycle) judges by age (and the
        catalog's chains of O(keep_points)) without locking the library.
      - C(rebuild_catalog) reads nothing in check mode and says it would rebuild.
  diff_mode:
    support: none
    description: Cartridges have no useful diff; RV(result) says what moved.
  idempotent:
    support: full
    description: A second C(vault), C(recall) or C(recycle) finds nothing left to do; C(rebuild_catalog) rebuilds the same catalog.
"""

EXAMPLES = r"""
- name: What is in the library
  restorable.backup.tape_media:
    library_config: /etc/restorable/tape/vtl01.json
  register: vtl

- name: Send full cartridges of the vaulted pools to the vault
  restorable.backup.tape_media:
    library_config: /etc/restorable/tape/vtl01.json
    operation: vault

- name: Bring two cartridges back for a restore
  restorable.backup.tape_media:
    library_config: /etc/restorable/tape/vtl01.json
    operation: recall
    barcodes: [DA0003L8, DA0004L8]

- name: Recycle expired cartridges, keeping the chains of the points the dataset keeps
  restorable.backup.tape_media:
    library_config: /etc/restorable/tape/vtl01.json
    operation: recycle
    keep_points:
      pgarr: [20261203T181500.123456Z]

- name: Rebuild a lost catalog from the cartridges
  restorable.backup.tape_media:
    library_config: /etc/restorable/tape/vtl01.json
    operation: rebuild_catalog
"""

RETURN = r"""
result:
  description:
    - What the operation did (or would do, in check mode). C(vault) and C(recall) return C(moved) (barcodes);
      C(recycle) returns C(recycled) (barcodes) and C(kept) (barcode to reason); C(rebuild_catalog) returns the
      library's report (C(cartridges), C(unreadable), C(incomplete_streams)).
  returned: always
  type: dict
  sample: {"moved": ["DA0001L8"]}
inventory:
  description: The library after the operation (slots, drives, ie, vault, cartridges).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import (TapeLibrary, open_library,
                                                                                             recycle_decision)
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.media import TapeError


def vault_candidates(library: TapeLibrary, inventory: dict) -> list[str]:
    """Cartridges vault() would move: finished ones of vaulted pools, in a slot."""
    found = []
    for cart in inventory["cartridges"]:
        pool = library.config.pools.get(cart["pool"])
        finished = cart["state"] == "full" or (cart.get("closed") and cart["used_bytes"])
        if pool and pool.vault and cart["location"]["kind"] == "slot" and finished:
            found.append(cart["barcode"])
    return found


def chain_cartridges(library: TapeLibrary, keep_points: dict) -> dict[str, str]:
    """Cartridge -> the kept point whose chain needs it, from the catalog."""
    needed: dict[str, str] = {}
    for group, points in sorted(keep_points.items()):
        for point in sorted(points):
            try:
                chain = library.chain(group, point)
            except TapeError:
                continue  # not on tape: nothing to keep for it
            for entry in library.cartridges_for(chain):
                needed.setdefault(entry["barcode"], "the chain of kept point %s of group %s" % (point, group))
    return needed


def predicted_recycle(library: TapeLibrary, inventory: dict, keep_points: dict | None) -> dict:
    needed = chain_cartridges(library, keep_points or {})
    now = library.now()
    recycled, kept = [], {}
    for cart in inventory["cartridges"]:
        ok, reason = recycle_decision(cart, library.config.pools.get(cart["pool"]), now, needed)
        if ok:
            recycled.append(cart["barcode"])
        elif cart["state"] != "scratch":
            kept[cart["barcode"]] = reason
    return {"recycled": recycled, "kept": kept}


def run(library: TapeLibrary, params: dict, check_mode: bool) -> tuple[dict, bool]:
    """(the operation's result, whether it changed the library)."""
    operation = params["operation"]
    keep_points = {group: set(points or []) for group, points in (params["keep_points"] or {}).items()} \
        if params["keep_points"] is not None else None
    if operation == "rebuild_catalog":
        if check_mode:
            return {"would": "rebuild the catalog of %s from its cartridges" % library.name}, True
        return library.rebuild_catalog(), True
    if check_mode:
        inventory = library.inventory()
        if operation == "vault":
            moved = vault_candidates(library, inventory)
        elif operation == "recall":
            vaulted = {c["barcode"] for c in inventory["cartridges"] if c["location"]["kind"] == "vault"}
            moved = [barcode for barcode in params["barcodes"] if barcode in vaulted]
        else:
            result = predicted_recycle(library, inventory, keep_points)
            return result, bool(result["recycled"])
        return {"moved": moved}, bool(moved)
    if operation == "vault":
        moved = library.vault()
    elif operation == "recall":
        moved = library.recall(list(params["barcodes"]))
    else:
        result = library.recycle(keep_points)
        return result, bool(result["recycled"])
    return {"moved": moved}, bool(moved)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            library_config=dict(type="path", required=True),
            operation=dict(type="str", choices=["inventory", "vault", "recall", "recycle", "rebuild_catalog"], default="inventory"),
            barcodes=dict(type="list", elements="str", default=[]),
            keep_points=dict(type="dict"),
        ),
        required_if=[("operation", "recall", ["barcodes"])],
        supports_check_mode=True,
    )
    params = module.params
    if params["operation"] == "recall" and not params["barcodes"]:
        module.fail_json(msg="operation recall needs barcodes")
    try:
        library = open_library(params["library_config"])
        try:
            result, changed = ({}, False) if params["operation"] == "inventory" else run(library, params, module.check_mode)
            inventory = library.inventory()
        finally:
            library.close()
    except (TapeError, OSError) as exc:
        module.fail_json(msg="%s of %s: %s" % (params["operation"], params["library_config"], exc))
    module.exit_json(changed=changed, result=result, inventory=inventory)


if __name__ == "__main__":
    main()
