# -*- coding: utf-8 -*-
"""The audit's WORM read-back on a real directory tape library (ext4 or btrfs file attributes set
by the library, read back by the host collector; root for the attributes): written WORM
cartridges are verified protected, one whose append-only attribute is cleared behind the
library's back is named, and cartridges moved to the vault are listed there."""
from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tape"))

from tape_helpers import MB, export_point, library_config, write_config  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.restorable.backup.plugins.module_utils.audit.locks import tape_library  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library  # noqa: E402

WORM_POOL = {"archive": {"retention_days": 30, "barcode_prefix": "AR", "worm": True, "vault": True}}


@pytest.fixture
def worm_library(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("WORM attributes need root (CAP_LINUX_IMMUTABLE)")
    media = tmp_path / "vtl"
    config = write_config(tmp_path / "vtl01.json", library_config("vtl01", media, capacity_bytes=2 * MB, pools=WORM_POOL))
    library = open_library(str(config))
    library.ensure()
    yield library, config, media
    library.close()
    # The cartridges stay write-once until their retention: clear the attributes so the test's directory goes.
    subprocess.run(["chattr", "-R", "-i", "-a", str(media)], check=False, capture_output=True)


def test_worm_cartridges_are_read_back_and_a_cleared_attribute_is_found(worm_library) -> None:
    library, config, _media = worm_library
    export_point(library, "g", "P1", os.urandom(2 * MB + 300000), pool="archive")  # fills one cartridge, starts a second
    now = datetime.datetime.now(datetime.timezone.utc)
    tape, lock = tape_library(str(config), now)
    written = [c for c in tape["cartridges"] if c["used_bytes"]]
    assert len(written) == 2 and all(c["worm"] and c["retain_until"] for c in written)
    assert lock["kind"] == "worm_cartridge" and lock["verified"] is True, lock

    filling = next(c["barcode"] for c in written if c["location"].startswith("slot") and
                   "i" not in subprocess.run(["lsattr", library.store.cartridge_path(c["barcode"])],
                                             capture_output=True, text=True, check=True).stdout.split()[0])
    subprocess.run(["chattr", "-a", library.store.cartridge_path(filling)], check=True)
    _tape, lock = tape_library(str(config), now)
    assert lock["verified"] is False and filling in lock["detail"], lock


def test_vaulted_cartridges_are_listed_in_the_vault(worm_library) -> None:
    library, config, _media = worm_library
    export_point(library, "g", "P1", os.urandom(2 * MB + 300000), pool="archive")
    moved = library.vault()
    assert moved
    tape, lock = tape_library(str(config), datetime.datetime.now(datetime.timezone.utc))
    where = {c["barcode"]: c["location"] for c in tape["cartridges"]}
    assert all(where[barcode] == "vault ironmountain-fra" for barcode in moved)
    assert lock["verified"] is True
