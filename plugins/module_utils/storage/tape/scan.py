# -*- coding: utf-8 -*-
# Private to restorable.backup: reading a whole cartridge's members back (label, part indexes,
# point records) to rebuild a lost catalog. Chunk data is skipped, not read, where the store can seek.
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .cartridge import LABEL_NAME, CartridgeReader, padding, read_label
from .media import CartridgeDamaged, MediaStore


@dataclass
class CartridgeScan:
    barcode: str
    label: dict[str, Any] | None = None
    label_bytes: int = 0
    indexes: list[dict[str, Any]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # where each index's part starts
    index_digests: list[str] = field(default_factory=list)  # sha256 of each index member's data
    points: list[dict[str, Any]] = field(default_factory=list)
    used: int = 0  # end of the last whole member
    cut: str = ""  # why the scan stopped before the end (a member cut by a failed write)


def scan_cartridge(store: MediaStore, barcode: str) -> CartridgeScan:
    """Every member of a cartridge; a damaged label raises CartridgeDamaged, a cut tail is noted."""
    scan = CartridgeScan(barcode)
    if store.size(barcode) == 0:
        return scan
    with store.open_read(barcode, 0) as handle:
        reader = CartridgeReader(handle, barcode)
        scan.label = read_label(reader)
        if scan.label.get("barcode") != barcode:
            raise CartridgeDamaged(barcode, "its label says barcode %r" % scan.label.get("barcode"))
        scan.label_bytes = scan.used = reader.position
        starts: dict[tuple[str, int], int] = {}
        try:
            _members(reader, scan, starts)
        except CartridgeDamaged as exc:
            scan.cut = str(exc)
    return scan


def _members(reader: CartridgeReader, scan: CartridgeScan, starts: dict[tuple[str, int], int]) -> None:
    while True:
        member = reader.next_member()
        if member is None:
            return
        kind, rest = (member.name.split("/", 1) + [""])[:2]
        if kind == "streams" and member.name.endswith(".json"):
            index, digest = reader.read_json_digest(member)
            key = (index.get("stream"), index.get("part"))
            scan.indexes.append(index)
            scan.index_digests.append(digest)
            scan.offsets.append(starts.pop(key, member.offset))
        elif kind == "streams":
            stream_id, part, chunk = rest.rsplit("/", 2)
            if int(chunk) == 1:  # a part written again after a failed write starts over
                starts[(stream_id, int(part))] = member.offset
            reader.skip(member.size + padding(member.size))
        elif kind == "points":
            scan.points.append(reader.read_json(member))
        elif member.name == LABEL_NAME:
            raise CartridgeDamaged(scan.barcode, "a second label at offset %d" % member.offset)
        else:
            reader.skip(member.size + padding(member.size))
        scan.used = reader.position
