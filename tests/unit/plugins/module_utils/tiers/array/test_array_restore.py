# -*- coding: utf-8 -*-
"""Pieces of a restore from tape that need no btrfs: which stream is which volume, what a point
protects, vaulted cartridges, and PostgreSQL tablespaces pointed at the restored copies."""
from __future__ import annotations

import os

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import run_drill
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.restore import (
    RestoreError, protected_paths, recall_for, relocate_postgresql, streams_by_volume)

POINT = "20261203T181500.123456Z"
RECORD = {"point": POINT, "streams": ["pg.%s.1" % POINT, "pg.%s.0" % POINT],
          "manifest": {"volumes": [{"volume": "/srv/pg", "snapshot": "/srv/.restorable-snapshots/pg/" + POINT},
                                   {"volume": "/srv/pgts", "snapshot": "/srv/.restorable-snapshots/pgts/" + POINT}]}}


def test_streams_come_in_volume_order_and_a_missing_one_is_named():
    assert streams_by_volume(RECORD, 2) == ["pg.%s.0" % POINT, "pg.%s.1" % POINT]
    with pytest.raises(RestoreError, match="has no stream of volume\\(s\\) 2 on tape"):
        streams_by_volume(RECORD, 3)


def test_a_point_protects_its_volumes_and_their_snapshot_directories():
    assert protected_paths(RECORD) == ["/srv/pg", "/srv/.restorable-snapshots/pg", "/srv/pgts",
                                       "/srv/.restorable-snapshots/pgts"]
    with pytest.raises(RestoreError, match="carries no manifest"):
        protected_paths({"point": POINT})


class Library:
    def __init__(self, locations):
        self.locations = locations
        self.recalled = []

    def cartridges_for(self, records):
        return [{"barcode": code, "location": {"kind": kind}} for code, kind in self.locations.items()]

    def recall(self, barcodes):
        self.recalled += barcodes
        return barcodes


def test_vaulted_cartridges_are_recalled_only_when_allowed():
    library = Library({"DA0001L8": "vault", "DA0002L8": "slot", "DA0003L8": "vault"})
    with pytest.raises(RestoreError, match="cartridge\\(s\\) DA0001L8, DA0003L8 of point %s are in the vault" % POINT):
        recall_for(library, [RECORD], recall=False)
    assert recall_for(library, [RECORD], recall=True) == ["DA0001L8", "DA0003L8"]
    assert recall_for(Library({"DA0002L8": "slot"}), [RECORD], recall=False) == []


def data_directory(root, tablespace: str, wal: str | None = None):
    data = root / "pg" / "data"
    (data / "pg_tblspc").mkdir(parents=True)
    (data / "global").mkdir()
    (data / "global" / "pg_control").write_bytes(b"\0" * 16)
    (data / "PG_VERSION").write_text("15\n")
    (data / "tablespace_map").write_text("16384 %s\n" % tablespace)
    os.symlink(tablespace, data / "pg_tblspc" / "16384")
    if wal:
        os.symlink(wal, data / "pg_wal")
    return data


def test_links_to_other_volumes_of_the_group_point_at_the_restored_copies(tmp_path):
    data = data_directory(tmp_path, "/srv/pgts/ts", wal="/srv/pgwal/wal")
    copies = {"/srv/pg": str(tmp_path / "pg"), "/srv/pgts": str(tmp_path / "pgts"), "/srv/pgwal": str(tmp_path / "w")}
    assert relocate_postgresql(copies) == {"tablespaces": {"16384": str(tmp_path / "pgts" / "ts")},
                                           "pg_wal": str(tmp_path / "w" / "wal")}
    assert (data / "tablespace_map").read_text() == "16384 %s\n" % (tmp_path / "pgts" / "ts")
    assert os.readlink(data / "pg_tblspc" / "16384") == str(tmp_path / "pgts" / "ts")
    assert os.readlink(data / "pg_wal") == str(tmp_path / "w" / "wal")


@pytest.mark.parametrize("tablespace, wal, what", [
    ("/elsewhere/ts", None, "tablespace 16384 of .* lies at /elsewhere/ts, outside the group's volumes"),
    ("/srv/pg/ts", "/var/lib/wal", "pg_wal of .* lies at /var/lib/wal, outside the group's volumes"),
    ("/srv/pg/ts", "../../../../etc", "pg_wal of .* leads to ../../../../etc, outside the restored copies"),
])
def test_a_link_outside_the_group_is_refused(tmp_path, tablespace, wal, what):
    data_directory(tmp_path, tablespace, wal)
    with pytest.raises(RestoreError, match=what):
        relocate_postgresql({"/srv/pg": str(tmp_path / "pg")})


def drill_params(tmp_path, **more) -> dict:
    return dict({"tier": "array", "dataset": "pgarr", "drill": "weekly", "sandbox": str(tmp_path / "sandbox"),
                 "volumes": ["/srv/pg"], "library_config": str(tmp_path / "absent.json")}, **more)


def test_a_drill_without_a_library_fails_saying_why(tmp_path):
    record = run_drill(drill_params(tmp_path, library_config=None))
    assert record["result"] == "failed" and record["reason"] == "dataset pgarr exports to no tape library: nothing on tape to drill"
    record = run_drill(drill_params(tmp_path))
    assert record["result"] == "failed" and "absent.json does not exist" in record["reason"]


def test_a_drill_refuses_a_sandbox_over_a_volume_or_its_snapshots(tmp_path):
    for sandbox in ("/srv/pg/restore", "/srv/.restorable-snapshots/pg/x", "/srv"):
        record = run_drill(drill_params(tmp_path, sandbox=sandbox), check_only=True)
        assert record["result"] == "failed" and "refusing to restore" in record["reason"], sandbox
    assert run_drill(drill_params(tmp_path, sandbox="/srv/drill"), check_only=True)["result"] == "skipped"
