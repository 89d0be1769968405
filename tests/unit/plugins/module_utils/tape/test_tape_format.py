# -*- coding: utf-8 -*-
"""The cartridge format without a library: members, chunk sizes, index, label checks, damage."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape import cartridge as fmt
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.catalog import (barcode_counter,
                                                                                             next_barcode)
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.config import (LibraryConfigError,
                                                                                            media_suffix,
                                                                                            parse_config)
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.media import CartridgeDamaged

META = {"group": "g", "point": "P1", "volume_index": 0, "kind": "full"}


def cartridge_with(data: bytes, free: int = 10 ** 9, stream_id: str = "g.P1.0") -> tuple[bytes, fmt.PartOutcome]:
    out = io.BytesIO()
    out.write(fmt.json_member(fmt.LABEL_NAME, fmt.label_document("DA0001L8", "daily", "vtl", "LTO-8", free, "t", 1,
                                                                 False), 0))
    source = fmt.ChunkSource(io.BytesIO(data))
    try:
        outcome = fmt.write_part(out, source, stream_id, 1, free - out.tell(), META, "2026-12-03T00:00:00.000000Z", 0)
    finally:
        source.close()
    return out.getvalue(), outcome


def read_back(blob: bytes, part: dict, barcode: str = "DA0001L8", generation: int = 1) -> bytes:
    reader = fmt.CartridgeReader(io.BytesIO(blob), barcode)
    fmt.check_label(fmt.read_label(reader), barcode, generation)
    sink = io.BytesIO()
    stream = fmt.StreamReader(lambda view: sink.write(bytes(view)))
    try:
        stream.read_part(reader, "g.P1.0", 1, part)
    finally:
        stream.close()
    return sink.getvalue()


def test_members_in_order_with_8_mib_chunks_and_an_index_readable_by_tarfile():
    data = os.urandom(fmt.CHUNK_BYTES * 2 + 1000)
    blob, outcome = cartridge_with(data)
    names = [(m.name, m.size) for m in tarfile.open(fileobj=io.BytesIO(blob), mode="r:")]
    assert names[0][0] == "LABEL.json"
    assert names[1:4] == [("streams/g.P1.0/0001/000001", fmt.CHUNK_BYTES), ("streams/g.P1.0/0001/000002", fmt.CHUNK_BYTES),
                          ("streams/g.P1.0/0001/000003", 1000)]
    assert names[4][0] == "streams/g.P1.0/0001.json"
    index = outcome.index
    assert index["last"] and index["bytes"] == index["stream_bytes"] == len(data)
    assert index["sha256"] == index["stream_sha256"] == hashlib.sha256(data).hexdigest()
    assert [c["bytes"] for c in index["chunks"]] == [fmt.CHUNK_BYTES, fmt.CHUNK_BYTES, 1000]
    assert index["chunks"][2]["sha256"] == hashlib.sha256(data[-1000:]).hexdigest()
    assert index["meta"] == META
    assert len(blob) % 512 == 0 and blob[-1024:] != b"\0" * 1024  # no end-of-archive marker
    assert read_back(blob, {"sha256": index["sha256"]}) == data


def test_an_empty_stream_is_one_index_member():
    blob, outcome = cartridge_with(b"")
    assert outcome.index["chunks"] == [] and outcome.index["last"] and outcome.index["stream_bytes"] == 0
    assert read_back(blob, {}) == b""


def test_a_part_ends_where_the_cartridge_is_full_keeping_room_for_index_and_point():
    data = os.urandom(3 * 1024 * 1024)
    free = 2 * 1024 * 1024
    blob, outcome = cartridge_with(data, free=free)
    assert outcome.ended_for_room and not outcome.index["last"] and "stream_sha256" not in outcome.index
    assert len(blob) <= free - fmt.POINT_RESERVE
    assert outcome.index["sha256"] == hashlib.sha256(data[:outcome.index["bytes"]]).hexdigest()
    assert fmt.is_full(free - len(blob), True)


def test_long_stream_ids_use_pax_headers_and_read_back():
    stream_id = "g" * 90 + ".20261203T181500.123456Z.0"
    out = io.BytesIO()
    source = fmt.ChunkSource(io.BytesIO(b"abc"))
    fmt.write_part(out, source, stream_id, 1, 10 ** 9, {}, "2026-12-03T00:00:00.000000Z", 0)
    source.close()
    reader = fmt.CartridgeReader(io.BytesIO(out.getvalue()), "B")
    member = reader.next_member()
    assert member.name == fmt.chunk_name(stream_id, 1, 1) and member.size == 3


@pytest.mark.parametrize("where", ["chunk", "index", "label"])
def test_a_flipped_byte_is_damage_naming_the_barcode(where):
    data = os.urandom(100000)
    blob = bytearray(cartridge_with(data)[0])
    offsets = {"label": 512 + 20, "chunk": 1024 + 512 + 5000, "index": len(blob) - 400}
    blob[offsets[where]] ^= 0x01
    with pytest.raises(CartridgeDamaged) as caught:
        read_back(bytes(blob), {})
    assert caught.value.barcode == "DA0001L8" and "DA0001L8" in str(caught.value)


def test_the_catalogs_index_digest_catches_any_byte_of_the_index():
    blob, outcome = cartridge_with(os.urandom(100000))
    expected = {"index_sha256": outcome.index_sha256}
    assert read_back(blob, expected)
    at = blob.rindex(b'"written":"2026') + len('"written":"2026')  # a field no chunk check covers
    damaged = bytearray(blob)
    damaged[at] = ord("7")
    with pytest.raises(CartridgeDamaged, match="index of stream g.P1.0 part 1 has sha256"):
        read_back(bytes(damaged), expected)


def test_truncation_and_wrong_label_are_damage():
    blob, _outcome = cartridge_with(os.urandom(100000))
    with pytest.raises(CartridgeDamaged, match="truncated"):
        read_back(blob[:50000], {})
    with pytest.raises(CartridgeDamaged, match="without its index"):
        read_back(blob[:1024 + 512 + 100352], {})
    with pytest.raises(CartridgeDamaged, match="label says barcode"):
        read_back(blob, {}, barcode="DA0002L8")
    with pytest.raises(CartridgeDamaged, match="generation"):
        read_back(blob, {}, generation=2)
    with pytest.raises(CartridgeDamaged, match="does not match the recorded"):
        read_back(blob, {"sha256": "0" * 64})


def test_barcodes_prefix_counter_and_media_suffix():
    assert media_suffix("LTO-8") == "L8" and media_suffix("LTO-9") == "L9" and media_suffix("LTO9") == "L9"
    assert next_barcode({}, "DA", "L8", 6) == ("DA0001L8", 1)
    assert next_barcode({"DA": 41}, "DA", "L8", 6) == ("DA0042L8", 42)
    assert next_barcode({}, "WORM", "L8", 6) == ("WORM01L8", 1)
    assert barcode_counter("DA0042L8", "DA", 6) == 42 and barcode_counter("DB0042L8", "DA", 6) is None
    with pytest.raises(Exception, match="issued all 99"):
        next_barcode({"WORM": 99}, "WORM", "L8", 6)


def test_config_errors_name_the_file_and_the_field():
    good = {"format": 1, "name": "vtl01", "driver": "directory", "path": "/srv/vtl", "slots": 4, "drives": 1,
            "media": {"type": "LTO-8", "capacity_bytes": 4000000}, "pools": {"daily": {"retention_days": 35}}}
    config = parse_config(good, "/etc/restorable/tape/vtl01.json")
    assert config.state_dir == "/srv/vtl" and config.pools["daily"].barcode_prefix == "DA"
    assert config.media_suffix == "L8" and config.vault_destination == "vault"
    for field, value, words in (("slots", 0, "slots must be an integer"), ("driver", "tape", "driver is 'tape'"),
                                ("media", {"type": "LTO-8"}, "media.capacity_bytes"),
                                ("pools", {"daily": {"retention_days": "x"}}, "pools.daily.retention_days"),
                                ("pools", {"daily": {"retention_days": 1, "barcode_prefix": "da"}},
                                 "pools.daily.barcode_prefix")):
        with pytest.raises(LibraryConfigError) as caught:
            parse_config(dict(good, **{field: value}), "/etc/restorable/tape/vtl01.json")
        assert "/etc/restorable/tape/vtl01.json" in str(caught.value) and words in str(caught.value)
    assert json.dumps(good)  # the example stays plain JSON
