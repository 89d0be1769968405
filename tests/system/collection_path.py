# -*- coding: utf-8 -*-
"""Makes ansible_collections.restorable.backup import this checkout, once for every test.

One root only: Ansible's collection loader refuses a collection package found in two places.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _collections_root() -> str:
    parents = REPO_ROOT.parents
    if REPO_ROOT.parent.name == "restorable" and parents[1].name == "ansible_collections":
        return str(parents[2])  # a copy laid out as a collection (ansible-test)
    return str(REPO_ROOT / "collections")  # the checkout's link back to itself


COLLECTIONS = _collections_root()
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
