# -*- coding: utf-8 -*-
# Private to restorable.backup: where a tape library keeps its cartridges' bytes. The library
# (pools, barcodes, spanning, catalog, retention) is one implementation; a driver says only how
# bytes are written, read, moved, locked and erased on its storage.
"""A MediaStore holds cartridges by barcode, each at a location of the library.

Locations are dicts: ``{"kind": "slot", "slot": n}``, ``{"kind": "drive", "drive": n}``,
``{"kind": "ie"}`` (the import/export slot) and ``{"kind": "vault", "vault": destination}``.
Cartridges are written sequentially, like tape: ``open_append`` returns a writer positioned at the
end of the data (a new cartridge starts empty). ``appendable`` says whether a cartridge that left the
drive can take more data later (a directory can; an S3 object cannot, it is uploaded when unloaded).
"""
from __future__ import annotations

import abc
import datetime
from typing import Any, BinaryIO


class TapeError(Exception):
    """A library or media operation failed; the message names the cartridge or pool."""


class CartridgeDamaged(TapeError):
    """A cartridge's label, members or checksums do not match what the catalog expects."""

    def __init__(self, barcode: str, reason: str) -> None:
        self.barcode = barcode
        super().__init__("cartridge %s is damaged: %s" % (barcode, reason))


class MediaStore(abc.ABC):
    """The bytes of a library's cartridges, by barcode."""

    kind: str = ""
    appendable: bool = True

    @abc.abstractmethod
    def ensure(self, check_mode: bool = False) -> list[str]:
        """Create what the store needs (directories, bucket checks); what changed, in words."""

    @abc.abstractmethod
    def list(self) -> dict[str, dict[str, Any]]:
        """Every cartridge the store holds: barcode -> its location."""

    @abc.abstractmethod
    def create(self, barcode: str, location: dict[str, Any]) -> None:
        """An empty cartridge at a location (TapeError if the barcode exists)."""

    @abc.abstractmethod
    def open_append(self, barcode: str) -> BinaryIO:
        """A writer at the end of the cartridge's data; closing it makes the data durable."""

    @abc.abstractmethod
    def open_read(self, barcode: str, offset: int = 0) -> BinaryIO:
        """A sequential reader from offset."""

    @abc.abstractmethod
    def size(self, barcode: str) -> int:
        """Bytes written on the cartridge."""

    @abc.abstractmethod
    def move(self, barcode: str, location: dict[str, Any]) -> None:
        """Put the cartridge at another location (into a drive, back to a slot, to the vault and back)."""

    @abc.abstractmethod
    def protect(self, barcode: str, until: datetime.datetime, closed: bool) -> None:
        """WORM: nothing written can be overwritten or deleted before `until`; `closed`: nothing can be
        appended either (the cartridge is full or leaves the library)."""

    @abc.abstractmethod
    def protection(self, barcode: str) -> dict[str, Any]:
        """The lock as the storage reports it, read back (for drills and the audit)."""

    @abc.abstractmethod
    def erase(self, barcode: str) -> None:
        """Empty the cartridge for reuse; TapeError while its protection holds."""
