# -*- coding: utf-8 -*-
"""The directory tape library on a real btrfs (loop device), as root: spanning, exhausted pools,
WORM enforced by the kernel, retention with kept chains, catalog rebuild, vault and recall, damage,
and cartridges read back with nothing but GNU tar and cat."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import subprocess

import pytest
from tape_helpers import (MB, attributes, catalog_document, export_point, flip_byte, read_all,  # noqa: F401
                          stream_meta)

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import (PoolExhausted,
                                                                                             open_library)
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.media import CartridgeDamaged, TapeError

WORM_POOL = {"archive": {"retention_days": 30, "barcode_prefix": "AR", "worm": True, "vault": True}}


def send_stream(tape_fs, megabytes: int) -> tuple[os.PathLike, os.PathLike]:
    """A read-only snapshot of a subvolume with random files and its `btrfs send` stream in a file."""
    volume = tape_fs.subvolume("vol")
    for number in range(megabytes):
        (volume / ("file%02d.bin" % number)).write_bytes(os.urandom(MB))
    snapshot = tape_fs.root / (volume.name + "-snap")
    subprocess.run(["btrfs", "subvolume", "snapshot", "-r", str(volume), str(snapshot)], check=True,
                   capture_output=True)
    stream = tape_fs.root / (volume.name + ".send")
    subprocess.run(["btrfs", "send", "-q", "-f", str(stream), str(snapshot)], check=True, capture_output=True)
    return snapshot, stream


def receive(library, stream_id: str, target) -> dict:
    """read_stream piped into a real `btrfs receive`."""
    receiver = subprocess.Popen(["btrfs", "receive", "-q", str(target)], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        result = library.read_stream(stream_id, receiver.stdin)
    finally:
        receiver.stdin.close()
    assert receiver.wait(120) == 0, receiver.stderr.read()
    return result


def same_files(left, right) -> bool:
    names = sorted(os.listdir(left))
    return names == sorted(os.listdir(right)) and all(
        (left / name).read_bytes() == (right / name).read_bytes() for name in names)


def test_a_send_stream_spans_three_small_cartridges_and_reads_back_byte_identical(tape_fs, tape_library):
    snapshot, stream = send_stream(tape_fs, 5)
    library = tape_library("span", capacity_bytes=2 * MB)
    record = export_point(library, "pgarr", "20261203T181500.123456Z", stream)
    assert [p["barcode"] for p in record["parts"]] == ["DA0001L8", "DA0002L8", "DA0003L8"]
    assert record["bytes"] == stream.stat().st_size
    assert record["sha256"] == hashlib.sha256(stream.read_bytes()).hexdigest()
    for barcode in ("DA0001L8", "DA0002L8", "DA0003L8"):
        assert os.path.getsize(library.store.cartridge_path(barcode)) <= 2 * MB
    assert read_all(library, record["id"]) == stream.read_bytes()
    restored = tape_fs.fresh("restored")
    result = receive(library, record["id"], restored)
    assert result["cartridges"] == ["DA0001L8", "DA0002L8", "DA0003L8"]
    assert same_files(snapshot, restored / snapshot.name)
    inventory = library.inventory()
    assert [d["barcode"] for d in inventory["drives"]] == [None, None]
    assert [s["barcode"] for s in inventory["slots"][:3]] == ["DA0001L8", "DA0002L8", "DA0003L8"]


def test_a_pool_without_free_cartridges_fails_clearly_and_the_next_write_after_freeing_a_slot_works(tape_library):
    library = tape_library("exhaust", slots=2, capacity_bytes=2 * MB)
    export_point(library, "g", "P1", os.urandom(3 * MB))
    with pytest.raises(PoolExhausted) as caught:
        export_point(library, "g", "P2", os.urandom(3 * MB))
    message = str(caught.value)
    assert "pool daily of library exhaust has no appendable or scratch cartridge and no empty slot" in message
    assert "2 slots occupied" in message
    assert [p["point"] for p in library.points("g")] == ["P1"] and "g.P2.0" not in library.catalog.streams
    assert library.vault() == ["DA0001L8", "DA0002L8"]  # frees both slots
    record = export_point(library, "g", "P2", os.urandom(3 * MB))
    assert [p["barcode"] for p in record["parts"]] == ["DA0003L8", "DA0004L8"]
    assert [p["point"] for p in library.points("g")] == ["P1", "P2"]
    assert len(read_all(library, record["id"])) == 3 * MB


def _refused(action) -> int:
    try:
        action()
    except OSError as exc:
        return exc.errno
    return 0


def test_a_worm_cartridge_cannot_be_overwritten_or_deleted_by_the_library_or_by_root(tape_library, tape_clock):
    library = tape_library("worm", capacity_bytes=2 * MB, pools=WORM_POOL)
    data = os.urandom(300000)
    record = export_point(library, "g", "P1", data, pool="archive")
    barcode = record["parts"][0]["barcode"]
    path = library.store.cartridge_path(barcode)
    protection = library.store.protection(barcode)
    assert protection["append_only"] and not protection["immutable"] and "a" in attributes(path)
    assert protection["until"] >= "2027-01-02"
    # raw system calls as root
    assert _refused(lambda: os.unlink(path)) == errno.EPERM
    assert _refused(lambda: open(path, "r+b")) == errno.EPERM
    assert _refused(lambda: open(path, "wb")) == errno.EPERM
    assert _refused(lambda: os.truncate(path, 0)) == errno.EPERM
    assert _refused(lambda: os.rename(path, path + ".moved")) == errno.EPERM
    # the library
    with pytest.raises(TapeError, match="write-once until"):
        library.store.erase(barcode)
    with pytest.raises(TapeError, match="already in library"):
        library.write_stream("archive", stream_meta("g", "P1"), io.BytesIO(b"other data"))
    tape_clock.advance(days=20)
    assert library.recycle()["recycled"] == [] and "kept until" in library.recycle()["kept"][barcode]
    # filled: immutable, nothing can be appended either
    export_point(library, "g", "P2", os.urandom(2 * MB), pool="archive")
    assert library.catalog.cartridges[barcode]["state"] == "full"
    assert library.store.protection(barcode)["immutable"] and "i" in attributes(path)
    assert _refused(lambda: open(path, "ab")) == errno.EPERM
    assert _refused(lambda: os.unlink(path)) == errno.EPERM
    with pytest.raises(PermissionError):
        library.store.open_append(barcode)
    assert read_all(library, record["id"]) == data
    # after the retention: recycled, attributes cleared, a new label of generation 2
    tape_clock.advance(days=31)
    assert barcode in library.recycle()["recycled"]
    assert "a" not in attributes(path) and "i" not in attributes(path)
    assert library.catalog.cartridges[barcode]["generation"] == 2 and library.points("g") == []


def test_a_worm_pool_on_a_filesystem_without_the_attributes_fails_naming_the_path(
        library_config_file, ramfs, tape_clock):
    library = open_library(str(library_config_file("noattr", path=ramfs / "vtl", pools=WORM_POOL)), now=tape_clock)
    library.ensure()
    with pytest.raises(TapeError) as caught:
        export_point(library, "g", "P1", b"data", pool="archive")
    assert str(ramfs) in str(caught.value) and "write-once attributes" in str(caught.value)
    assert library.catalog.streams == {}


def test_an_expired_chain_is_recycled_while_the_base_a_kept_point_needs_stays(tape_library, tape_clock):
    library = tape_library("retention", capacity_bytes=2 * MB,
                           pools={"daily": {"retention_days": 7, "barcode_prefix": "DA"}})
    one_cartridge = 1800 * 1000
    export_point(library, "g", "P1", os.urandom(one_cartridge))
    export_point(library, "g", "P2", os.urandom(one_cartridge), base="P1")
    base = os.urandom(one_cartridge)
    export_point(library, "g", "Q1", base)
    tape_clock.advance(days=8)
    export_point(library, "g", "Q2", os.urandom(1000), base="Q1")
    result = library.recycle({"g": {"Q2"}})
    assert result["recycled"] == ["DA0001L8", "DA0002L8"]  # the expired chain P1, P2
    assert "needed by the chain of kept point Q2 of group g" in result["kept"]["DA0003L8"]  # expired base Q1
    assert [r["point"] for r in library.chain("g", "Q2")] == ["Q1", "Q2"]
    assert read_all(library, "g.Q1.0") == base
    assert library.points("g")[0]["point"] == "Q1"
    scratch = {c["barcode"]: (c["state"], c["generation"]) for c in library.inventory()["cartridges"]}
    assert scratch["DA0001L8"] == ("scratch", 2) and scratch["DA0002L8"] == ("scratch", 2)
    assert export_point(library, "g", "R1", os.urandom(1000))["parts"][0]["barcode"] in ("DA0004L8", "DA0001L8")


def test_the_catalog_deleted_is_rebuilt_identical_from_the_cartridges(tape_library, tape_clock):
    library = tape_library("rebuild", capacity_bytes=2 * MB,
                           pools={"daily": {"retention_days": 7, "barcode_prefix": "DA", "vault": True},
                                  "archive": {"retention_days": 30, "barcode_prefix": "AR", "worm": True}})
    export_point(library, "g", "P1", os.urandom(3 * MB))
    export_point(library, "g", "P2", os.urandom(200000), base="P1")
    export_point(library, "h", "H1", os.urandom(2500 * 1000), pool="archive")
    assert library.vault() == ["DA0001L8"]
    tape_clock.advance(days=8)
    export_point(library, "g", "P3", os.urandom(1000))
    before = catalog_document(library)
    assert before["counters"] == {"AR": 2, "DA": 2}
    os.unlink(library.catalog.path)
    report = library.rebuild_catalog()
    assert report["unreadable"] == {} and report["incomplete_streams"] == []
    after = catalog_document(library)
    assert after == before
    assert {p: r["streams"] for p, r in after["points"]["g"].items()} == {
        "P1": ["g.P1.0"], "P2": ["g.P2.0"], "P3": ["g.P3.0"]}
    assert after["cartridges"]["DA0001L8"]["location"] == {"kind": "vault", "vault": "ironmountain-fra"}
    # the rebuilt catalog keeps issuing new barcodes
    record = export_point(library, "h", "H2", os.urandom(2 * MB), pool="archive")
    assert record["parts"][-1]["barcode"] == "AR0003L8"


def test_a_vaulted_cartridge_is_refused_until_recalled(tape_library):
    library = tape_library("vault", capacity_bytes=2 * MB, pools=WORM_POOL)
    data = os.urandom(3 * MB)
    record = export_point(library, "g", "P1", data, pool="archive")
    path = library.store.cartridge_path("AR0001L8")
    assert "i" in attributes(path)  # full: immutable, and still moved by renaming its directory
    assert library.vault() == ["AR0001L8"]
    vaulted = os.path.join(library.store.path, "vault", "ironmountain-fra", "AR0001L8", "cartridge")
    assert os.path.isfile(vaulted) and "i" in attributes(vaulted)
    assert library.inventory()["vault"] == {"ironmountain-fra": ["AR0001L8"]}
    with pytest.raises(TapeError, match="AR0001L8 .*is in the vault ironmountain-fra: recall it first"):
        library.read_stream(record["id"], io.BytesIO())
    needed = [c["barcode"] for c in library.cartridges_for(library.chain("g", "P1"))
              if c["location"]["kind"] == "vault"]
    assert library.recall(needed) == ["AR0001L8"]
    assert library.catalog.cartridges["AR0001L8"]["location"]["kind"] == "slot"
    assert read_all(library, record["id"]) == data


def test_a_flipped_byte_in_a_cartridge_is_damage_naming_its_barcode(tape_library):
    library = tape_library("damage", capacity_bytes=2 * MB)
    record = export_point(library, "g", "P1", os.urandom(5 * MB))
    assert library.verify_stream(record["id"])["bytes"] == 5 * MB
    flip_byte(library.store.cartridge_path("DA0002L8"), 1024 * 1024)
    with pytest.raises(CartridgeDamaged) as caught:
        library.verify_stream(record["id"])
    assert caught.value.barcode == "DA0002L8" and "cartridge DA0002L8 is damaged" in str(caught.value)
    assert "sha256" in str(caught.value)
    flip_byte(library.store.cartridge_path("DA0001L8"), 600)  # in the label
    with pytest.raises(CartridgeDamaged) as caught:
        library.verify_stream(record["id"])
    assert caught.value.barcode == "DA0001L8"


def test_gnu_tar_and_cat_reproduce_the_stream_without_the_collection(tape_fs, tape_library):
    snapshot, stream = send_stream(tape_fs, 4)
    library = tape_library("plain", capacity_bytes=2 * MB)
    record = export_point(library, "pgarr", "20261203T181500.123456Z", stream)
    assert len(record["parts"]) >= 2
    extracted = tape_fs.fresh("extracted")
    for cartridge in library.cartridges_for(library.chain("pgarr", "20261203T181500.123456Z")):
        tar = subprocess.run(["tar", "-xf", library.store.cartridge_path(cartridge["barcode"]), "-C", str(extracted)],
                             capture_output=True, text=True, check=False)
        assert tar.returncode == 0 and tar.stderr == "", tar.stderr
    chunks = sorted(str(p) for p in (extracted / "streams" / record["id"]).glob("*/*"))
    rebuilt = subprocess.run(["cat"] + chunks, capture_output=True, check=True).stdout
    assert rebuilt == stream.read_bytes()
    received = tape_fs.fresh("by-hand")
    subprocess.run("cat %s | btrfs receive -q %s" % (" ".join(chunks), received), shell=True, check=True)
    assert same_files(snapshot, received / snapshot.name)
    assert (extracted / "points" / "pgarr" / "20261203T181500.123456Z.json").is_file()
