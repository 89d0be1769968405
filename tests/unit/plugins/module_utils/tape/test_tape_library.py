# -*- coding: utf-8 -*-
"""The library on the directory driver in a temporary directory (no root: WORM is in the system tests)."""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import os

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.cartridge import POINT_RESERVE
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import (PoolExhausted,
                                                                                             open_library,
                                                                                             recycle_decision)
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.media import CartridgeDamaged, TapeError

MB = 1000 * 1000
START = datetime.datetime(2026, 12, 3, 18, 0, tzinfo=datetime.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> datetime.datetime:
        self.moment += datetime.timedelta(microseconds=1)  # distinct stamps, as real time has
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += datetime.timedelta(**delta)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_library(tmp_path, clock):
    def make(slots: int = 6, capacity: int = 3 * MB, pools: dict | None = None, **extra):
        root = tmp_path / "vtl"
        config = {"format": 1, "name": "vtl01", "driver": "directory", "path": str(root), "state_dir": str(root),
                  "slots": slots, "drives": 2, "media": {"type": "LTO-8", "capacity_bytes": capacity},
                  "pools": pools or {"daily": {"retention_days": 7, "barcode_prefix": "DA", "vault": True}}}
        config.update(extra)
        path = tmp_path / "vtl01.json"
        path.write_text(json.dumps(config))
        library = open_library(str(path), now=clock)
        library.ensure()
        return library
    return make


def export(library, point: str, data: bytes, base: str | None = None, pool: str = "daily", group: str = "g",
           time: str | None = None) -> dict:
    meta = {"group": group, "point": point, "volume": "/srv/v", "volume_index": 0,
            "kind": "incremental" if base else "full", "base": base, "chain": "c", "position": 1}
    record = library.write_stream(pool, meta, io.BytesIO(data))
    library.commit_point({"group": group, "point": point, "time": time or point, "kind": meta["kind"], "chain": "c",
                          "position": 1, "base": base, "pool": pool, "streams": [record["id"]],
                          "manifest": {"label": "x"}})
    return record


def read(library, stream_id: str) -> bytes:
    sink = io.BytesIO()
    library.read_stream(stream_id, sink)
    return sink.getvalue()


def test_spanning_arithmetic_parts_fit_their_cartridges_and_read_back(make_library):
    library = make_library(capacity=2 * MB)
    data = os.urandom(5 * MB)
    record = export(library, "P1", data)
    assert [p["barcode"] for p in record["parts"]] == ["DA0001L8", "DA0002L8", "DA0003L8"]
    assert [p["part"] for p in record["parts"]] == [1, 2, 3]
    assert sum(p["bytes"] for p in record["parts"]) == record["bytes"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    offset = 0
    for part in record["parts"]:
        assert part["sha256"] == hashlib.sha256(data[offset:offset + part["bytes"]]).hexdigest()
        offset += part["bytes"]
    carts = {c["barcode"]: c for c in library.inventory()["cartridges"]}
    for barcode in ("DA0001L8", "DA0002L8"):
        assert carts[barcode]["state"] == "full" and carts[barcode]["free_bytes"] >= POINT_RESERVE
        assert carts[barcode]["used_bytes"] == os.path.getsize(library.store.cartridge_path(barcode))
    assert carts["DA0003L8"]["state"] == "filling"
    assert library.points("g")[0]["cartridge"] == "DA0003L8"
    result = library.read_stream(record["id"], io.BytesIO())
    assert result["cartridges"] == ["DA0001L8", "DA0002L8", "DA0003L8"] and result["bytes"] == len(data)
    assert read(library, record["id"]) == data
    assert all(d["barcode"] is None for d in library.inventory()["drives"])  # unloaded after every use


def test_allocation_appends_then_takes_scratch_then_labels_a_new_cartridge(make_library, clock):
    library = make_library(capacity=3 * MB, pools={"daily": {"retention_days": 1, "barcode_prefix": "DA"},
                                                   "weekly": {"retention_days": 1, "barcode_prefix": "WE"}})
    first = export(library, "P1", os.urandom(100000))
    second = export(library, "P2", os.urandom(100000))
    assert first["parts"][0]["barcode"] == second["parts"][0]["barcode"] == "DA0001L8"
    weekly = export(library, "W1", os.urandom(1000), pool="weekly")
    assert weekly["parts"][0]["barcode"] == "WE0001L8"
    clock.advance(days=2)
    assert library.recycle()["recycled"] == ["DA0001L8", "WE0001L8"]
    cart = {c["barcode"]: c for c in library.inventory()["cartridges"]}["DA0001L8"]
    assert cart["state"] == "scratch" and cart["generation"] == 2
    third = export(library, "P3", os.urandom(1000))
    assert third["parts"][0]["barcode"] == "DA0001L8"  # the scratch cartridge, not a new barcode
    assert read(library, third["id"])
    assert library.points("g")[0]["point"] == "P3"


def test_pool_exhausted_is_clear_and_the_next_write_after_freeing_a_slot_works(make_library):
    library = make_library(slots=2, capacity=2 * MB)
    export(library, "P1", os.urandom(3 * MB))
    with pytest.raises(PoolExhausted) as caught:
        export(library, "P2", os.urandom(3 * MB))
    assert "pool daily of library vtl01" in str(caught.value) and "no empty slot" in str(caught.value)
    assert isinstance(caught.value, TapeError)
    assert "g.P2.0" not in library.catalog.streams and [p["point"] for p in library.points("g")] == ["P1"]
    assert library.vault() == ["DA0001L8", "DA0002L8"]  # P2's first part filled DA0002 before it failed
    record = export(library, "P2", os.urandom(3 * MB))
    assert [p["barcode"] for p in record["parts"]] == ["DA0003L8", "DA0004L8"]
    assert read(library, record["id"])


def test_barcodes_are_never_reused(make_library, clock):
    library = make_library(slots=2, capacity=2 * MB)
    export(library, "P1", os.urandom(3 * MB))
    assert library.vault() == ["DA0001L8"]
    record = export(library, "P2", os.urandom(2 * MB))  # fills DA0002, continues on a new one in slot 1
    assert [p["barcode"] for p in record["parts"]] == ["DA0002L8", "DA0003L8"]
    assert library.inventory()["slots"] == [{"slot": 1, "barcode": "DA0003L8"}, {"slot": 2, "barcode": "DA0002L8"}]
    assert library.catalog.counters == {"DA": 3}
    library.vault()
    os.unlink(library.catalog.path)
    library.rebuild_catalog()
    assert library.catalog.counters == {"DA": 3}
    assert [p["barcode"] for p in export(library, "P3", os.urandom(1500 * 1000))["parts"]] == ["DA0003L8", "DA0004L8"]


def test_vaulted_cartridges_are_refused_until_recalled(make_library):
    library = make_library(capacity=2 * MB)
    record = export(library, "P1", os.urandom(3 * MB))
    assert library.vault() == ["DA0001L8"]
    assert os.path.isfile(os.path.join(library.store.path, "vault", "vault", "DA0001L8", "cartridge"))
    with pytest.raises(TapeError, match="DA0001L8.*in the vault vault: recall it first"):
        library.read_stream(record["id"], io.BytesIO())
    needed = library.cartridges_for(library.chain("g", "P1"))
    assert [(c["barcode"], c["location"]["kind"]) for c in needed] == [("DA0001L8", "vault"), ("DA0002L8", "slot")]
    assert library.recall(["DA0001L8", "DA0002L8"]) == ["DA0001L8"]
    assert library.verify_stream(record["id"])["bytes"] == 3 * MB
    assert library.inventory()["vault"] == {}


def test_chain_base_first_and_incomplete_chains_named(make_library):
    library = make_library()
    export(library, "P1", b"full")
    export(library, "P2", b"incr1", base="P1")
    export(library, "P3", b"incr2", base="P2")
    assert [r["point"] for r in library.chain("g", "P3")] == ["P1", "P2", "P3"]
    del library.catalog.points["g"]["P2"]
    library.catalog.save()
    with pytest.raises(TapeError, match="chain of point P3 of group g is incomplete: its base P2"):
        library.chain("g", "P3")
    with pytest.raises(TapeError, match="point P9 of group g is not in the catalog"):
        library.chain("g", "P9")


def test_recycle_decision_needs_expiry_and_no_kept_chain():
    from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.config import PoolConfig
    pool = PoolConfig("daily", 7, "DA")
    cart = {"barcode": "DA0001L8", "pool": "daily", "state": "full", "last_written": "2026-12-01T00:00:00.000000Z",
            "location": {"kind": "slot", "slot": 1}}
    now = datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc)
    assert recycle_decision(cart, pool, now, {})[0] is False
    later = now + datetime.timedelta(days=2)
    assert recycle_decision(cart, pool, later, {}) == (True, "expired 2026-12-08T00:00:00.000000Z")
    assert recycle_decision(cart, pool, later, {"DA0001L8": "the chain of kept point P3"}) == (
        False, "expired but needed by the chain of kept point P3")
    assert recycle_decision(dict(cart, location={"kind": "vault", "vault": "v"}), pool, later, {})[0] is False
    assert recycle_decision(dict(cart, state="scratch"), pool, later, {})[0] is False


def test_recycle_keeps_the_base_a_kept_point_needs(make_library, clock):
    library = make_library(capacity=2 * MB, pools={"daily": {"retention_days": 7, "barcode_prefix": "DA"}})
    one_cartridge = 1800 * 1000  # fills a 2 MB cartridge without spanning
    export(library, "P1", os.urandom(one_cartridge))
    export(library, "P2", os.urandom(one_cartridge), base="P1")
    export(library, "Q1", os.urandom(one_cartridge))
    assert {c["barcode"]: c["state"] for c in library.inventory()["cartridges"]} == {
        "DA0001L8": "full", "DA0002L8": "full", "DA0003L8": "full"}
    clock.advance(days=8)
    export(library, "Q2", os.urandom(one_cartridge), base="Q1")  # DA0004, fresh
    result = library.recycle({"g": {"Q2"}})
    assert result["recycled"] == ["DA0001L8", "DA0002L8"]
    assert "needed by the chain of kept point Q2" in result["kept"]["DA0003L8"]
    assert "kept until" in result["kept"]["DA0004L8"]
    assert [p["point"] for p in library.points("g")] == ["Q1", "Q2"]
    clock.advance(days=8)
    result = library.recycle({"g": {"Q2"}})
    assert result["recycled"] == [] and sorted(result["kept"]) == ["DA0003L8", "DA0004L8"]
    assert library.recycle({"g": set()})["recycled"] == ["DA0003L8", "DA0004L8"]
    assert library.points("g") == []


def test_catalog_rebuilt_identical_from_the_cartridges(make_library, clock):
    library = make_library(capacity=2 * MB)
    export(library, "P1", os.urandom(3 * MB))
    export(library, "P2", os.urandom(500000), base="P1")
    library.vault()
    export(library, "P3", os.urandom(1000), base="P2")
    clock.advance(days=30)
    library.recycle()  # a recycled cartridge has generation 2 on its new label
    export(library, "P4", os.urandom(1000))
    before = json.loads(open(library.catalog.path).read())
    os.unlink(library.catalog.path)
    report = library.rebuild_catalog()
    # P1's part 2 was on the recycled DA0002: its part 1 in the vault is no stream any more
    assert report["unreadable"] == {} and report["incomplete_streams"] == ["g.P1.0"]
    after = json.loads(open(library.catalog.path).read())
    assert after == before
    assert any(c["generation"] == 2 for c in after["cartridges"].values())


def test_a_lost_catalog_is_rebuilt_before_the_next_write(make_library):
    library = make_library(capacity=2 * MB)
    first = export(library, "P1", os.urandom(3 * MB))
    os.unlink(library.catalog.path)
    assert library.ensure(check_mode=True) == ["rebuilt catalog %s from 2 cartridges" % library.catalog.path]
    second = export(library, "P2", os.urandom(3 * MB))
    assert [p["barcode"] for p in second["parts"]] == ["DA0002L8", "DA0003L8", "DA0004L8"]  # no barcode reissued
    assert [p["point"] for p in library.points("g")] == ["P1", "P2"] and read(library, first["id"])


def test_an_incomplete_stream_is_ignored_by_the_rebuild(make_library):
    library = make_library(capacity=2 * MB)
    export(library, "P1", os.urandom(100000))

    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 10 * MB  # more than one 8 MiB read: parts are written before it fails

        def readinto(self, view) -> int:
            if self.left <= 0:
                raise OSError("btrfs send died")
            step = min(len(view), 1024 * 1024)
            view[:step] = b"x" * step
            self.left -= step
            return step

    meta = {"group": "g", "point": "P2", "volume_index": 0}
    with pytest.raises(OSError):
        library.write_stream("daily", meta, Failing())
    assert "g.P2.0" not in library.catalog.streams
    streams = dict(library.catalog.streams)
    report = library.rebuild_catalog()
    assert report["incomplete_streams"] == ["g.P2.0"]
    assert library.catalog.streams == streams
    assert read(library, "g.P1.0")


def test_damage_names_the_barcode(make_library):
    library = make_library(capacity=2 * MB)
    record = export(library, "P1", os.urandom(3 * MB))
    path = library.store.cartridge_path("DA0002L8")
    with open(path, "r+b") as handle:
        handle.seek(300000)
        byte = handle.read(1)
        handle.seek(300000)
        handle.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(CartridgeDamaged) as caught:
        library.verify_stream(record["id"])
    assert caught.value.barcode == "DA0002L8" and "sha256" in str(caught.value)
    assert all(d["barcode"] is None for d in library.inventory()["drives"])


def test_check_mode_changes_nothing(tmp_path, clock):
    config = {"format": 1, "name": "vtl01", "driver": "directory", "path": str(tmp_path / "v"), "slots": 2,
              "drives": 1, "media": {"type": "LTO-8", "capacity_bytes": 2 * MB},
              "pools": {"daily": {"retention_days": 1}}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    library = open_library(str(tmp_path / "c.json"), now=clock)
    assert library.ensure(check_mode=True) and not (tmp_path / "v").exists()
    assert library.ensure() and library.ensure() == []


class _UploadFails(io.BytesIO):
    """A writer of a store that makes its data durable when the cartridge leaves the drive, and fails to."""

    def close(self) -> None:
        raise OSError("the upload was refused")


def test_a_point_whose_cartridge_could_not_be_made_durable_is_not_in_the_catalog(make_library, monkeypatch):
    library = make_library()
    monkeypatch.setattr(library.store, "appendable", False)  # durable only when unloaded, as S3 is
    monkeypatch.setattr(library.store, "open_append", lambda barcode: _UploadFails())
    meta = {"group": "g", "point": "p1", "volume": "/srv/v", "volume_index": 0, "kind": "full", "base": None,
            "chain": "c", "position": 1}
    stream = library.write_stream("daily", meta, io.BytesIO(b"x" * 1000))
    with pytest.raises(OSError, match="refused"):
        library.commit_point({"group": "g", "point": "p1", "streams": [stream["id"]], "pool": "daily"})
    assert library.points("g") == []
    assert stream["id"] not in library.catalog.streams  # the retry writes it again, it is not on the media
