# -*- coding: utf-8 -*-
# Private to restorable.backup: the library's catalog (which cartridges, where, what is on them)
# kept as one JSON document in the state directory, written atomically. Everything in it can be
# rebuilt from the cartridges themselves (library.rebuild_catalog), so it is a cache that must
# never be the only copy of anything.
from __future__ import annotations

import os
import re
from typing import Any

from ...common.fileio import atomic_write_json, read_json
from .media import TapeError

CATALOG_FORMAT = 1
CATALOG_FILE = "catalog.json"
STATES = ("scratch", "filling", "full")


def empty_catalog(library: str) -> dict[str, Any]:
    return {"format": CATALOG_FORMAT, "library": library, "counters": {}, "cartridges": {}, "streams": {},
            "points": {}}


class Catalog:
    """The catalog document and the few questions every operation asks of it."""

    def __init__(self, state_dir: str, library: str) -> None:
        self.path = os.path.join(state_dir, CATALOG_FILE)
        self.library = library
        self.doc = empty_catalog(library)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def load(self) -> None:
        document = read_json(self.path)
        if document is None:
            self.doc = empty_catalog(self.library)
            return
        if not isinstance(document, dict) or document.get("format") != CATALOG_FORMAT:
            raise TapeError("%s is not a tape catalog of format %d; rebuild it from the cartridges"
                            % (self.path, CATALOG_FORMAT))
        self.doc = document

    def save(self) -> None:
        atomic_write_json(self.path, self.doc, mode=0o600)

    @property
    def cartridges(self) -> dict[str, dict[str, Any]]:
        return self.doc["cartridges"]

    @property
    def streams(self) -> dict[str, dict[str, Any]]:
        return self.doc["streams"]

    @property
    def points(self) -> dict[str, dict[str, dict[str, Any]]]:
        return self.doc["points"]

    @property
    def counters(self) -> dict[str, int]:
        return self.doc["counters"]

    def cartridge(self, barcode: str) -> dict[str, Any]:
        try:
            return self.cartridges[barcode]
        except KeyError:
            raise TapeError("cartridge %s is not in the catalog of library %s" % (barcode, self.library)) from None

    def stream(self, stream_id: str) -> dict[str, Any]:
        try:
            return self.streams[stream_id]
        except KeyError:
            raise TapeError("stream %s is not in the catalog of library %s" % (stream_id, self.library)) from None

    def streams_on(self, barcode: str) -> list[dict[str, Any]]:
        return [stream for stream in self.streams.values()
                if any(part["barcode"] == barcode for part in stream["parts"])]

    def occupied_slots(self) -> set[int]:
        return {cart["slot"] for cart in self.cartridges.values() if cart.get("slot")}


def next_barcode(counters: dict[str, int], prefix: str, suffix: str, width: int) -> tuple[str, int]:
    """The next barcode of a prefix (never one issued before) and its counter."""
    digits = width - len(prefix)
    counter = counters.get(prefix, 0) + 1
    if counter >= 10 ** digits:
        raise TapeError("barcode prefix %s has issued all %d barcodes" % (prefix, 10 ** digits - 1))
    return "%s%0*d%s" % (prefix, digits, counter, suffix), counter


def barcode_counter(barcode: str, prefix: str, width: int) -> int | None:
    """The counter inside a barcode of this prefix (None when it is not one of the prefix's)."""
    match = re.match(r"^%s(\d{%d})[A-Z0-9]{2}$" % (re.escape(prefix), width - len(prefix)), barcode)
    return int(match.group(1)) if match else None
