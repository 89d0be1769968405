# -*- coding: utf-8 -*-
# Private to restorable.backup: the virtual tape library. Pools, barcodes, allocation, spanning,
# drives, vault, retention and the catalog live here once; a MediaStore driver only keeps bytes.
# The clock is a parameter (`now`) so that tests move time instead of waiting for retention.
"""TapeLibrary: what the array tier, the modules and the drills call."""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any, BinaryIO, Callable, Iterator

from ...common.fileio import ensure_dir
from ...common.locks import FileLock
from .cartridge import (FULL_MARGIN, LABEL_NAME, CartridgeReader, ChunkSource, StreamReader, check_label, is_full,
                        PartOutcome, json_member, label_document, point_name, read_label, widen_pipe, write_part)
from .catalog import Catalog, barcode_counter, next_barcode
from .config import BARCODE_WIDTH, LibraryConfig, PoolConfig, load_config
from .directory import DirectoryStore
from .media import CartridgeDamaged, MediaStore, TapeError
from .scan import scan_cartridge

Clock = Callable[[], datetime.datetime]


class PoolExhausted(TapeError):
    """No appendable or scratch cartridge in the pool and no empty slot for a new one."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def stream_id_of(meta: dict[str, Any]) -> str:
    """`<group>.<point id>.<volume index>`: one stream per volume of a group snapshot."""
    try:
        return "%s.%s.%d" % (meta["group"], meta["point"], int(meta["volume_index"]))
    except (KeyError, TypeError, ValueError):
        raise TapeError("stream meta needs group, point and volume_index: %r" % (meta,)) from None


def open_library(config_path: str, now: Clock | None = None) -> "TapeLibrary":
    config = load_config(config_path)
    clock = now or utc_now
    return TapeLibrary(config, make_store(config, clock), clock)


def make_store(config: LibraryConfig, now: Clock) -> MediaStore:
    if config.driver == "directory":
        return DirectoryStore(config.media_path, config.slots, config.drives, [config.vault_destination], now)
    from .s3 import S3MediaStore  # pylint: disable=import-outside-toplevel  # S3 code only for S3 libraries
    return S3MediaStore(config.s3, config.state_dir, config.slots, config.vault_destination, now)


def recycle_decision(cartridge: dict[str, Any], pool: PoolConfig | None, now: datetime.datetime,
                     needed: dict[str, str]) -> tuple[bool, str]:
    """Whether a cartridge may return to scratch, and why (not)."""
    barcode = cartridge["barcode"]
    if cartridge["state"] == "scratch":
        return False, "scratch"
    if pool is None:
        return False, "its pool %s is no longer configured" % cartridge["pool"]
    expires = parse_iso(cartridge["last_written"]) + datetime.timedelta(days=pool.retention_days) \
        if cartridge.get("last_written") else now
    if now < expires:
        return False, "holds data of pool %s kept until %s" % (pool.name, iso(expires))
    if barcode in needed:
        return False, "expired but needed by %s" % needed[barcode]
    if cartridge["location"]["kind"] == "vault":
        return False, "expired in the vault: recall it to reuse it"
    return True, "expired %s" % iso(expires)


class TapeLibrary:
    """One library: its configuration, its media store and its catalog."""

    def __init__(self, config: LibraryConfig, store: MediaStore, now: Clock = utc_now) -> None:
        self.config = config
        self.name = config.name
        self.store = store
        self.now = now
        self.catalog = Catalog(config.state_dir, config.name)
        self._lock = FileLock(os.path.join(config.state_dir, "library.lock"))
        self._depth = 0
        self._mounted: list[str] = []  # cartridges this process keeps in a drive between writes
        self._writers: dict[str, BinaryIO] = {}  # open writers of stores that upload on close

    # -- setup and locking -------------------------------------------------------------------
    def ensure(self, check_mode: bool = False) -> list[str]:
        changes = []
        if not os.path.isdir(self.config.state_dir):
            changes.append("created state directory %s" % self.config.state_dir)
            if not check_mode:
                ensure_dir(self.config.state_dir, 0o750)
        changes += self.store.ensure(check_mode)
        if not self.catalog.exists():
            found = self.store.list() if os.path.isdir(self.config.state_dir) else {}
            changes.append("rebuilt catalog %s from %d cartridges" % (self.catalog.path, len(found)) if found
                           else "created catalog %s" % self.catalog.path)
            if not check_mode:
                with self._locked():
                    self.catalog.save()
        return changes

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        fresh = not self._lock.held
        self._lock.acquire()
        self._depth = 1
        try:
            if fresh:
                self.catalog.load()
                if not self.catalog.exists() and self.store.list():
                    self.rebuild_catalog()  # a lost catalog: the cartridges say what it held
                else:
                    self._reconcile()
            yield
        finally:
            self._depth = 0
            # An export (streams, then commit_point) keeps its cartridges loaded and the library
            # locked until the point is committed or the library closed: nobody moves them between.
            if not self._mounted:
                self._lock.release()

    def _reconcile(self) -> None:
        """The store is the truth about where cartridges are; a drive left loaded by a run that
        died is unloaded."""
        actual = self.store.list()
        changed = False
        for barcode, cart in self.catalog.cartridges.items():
            where = actual.get(barcode)
            if where is not None and where != cart["location"]:
                cart["location"] = where
                changed = True
            if cart["location"]["kind"] == "drive" and barcode not in self._mounted:
                self._unload(barcode)
                changed = True
        if changed:
            self.catalog.save()

    @contextlib.contextmanager
    def _aborting(self) -> Iterator[None]:
        """A failed export step unloads its cartridges (and so frees the lock): what it wrote
        stays on them as orphans no catalog entry points to."""
        try:
            yield
        except BaseException:
            try:
                self._unload_all()
            except (OSError, TapeError):
                pass  # the next run's reconcile unloads what is still in a drive
            raise

    def close(self) -> None:
        """Unload what this process left in the drives (after an export that was not committed)."""
        if self._mounted:
            with self._locked():
                self._unload_all()
        self._lock.release()

    def __enter__(self) -> "TapeLibrary":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- drives ------------------------------------------------------------------------------
    def _load(self, barcode: str) -> None:
        cart = self.catalog.cartridge(barcode)
        if cart["location"]["kind"] == "drive":
            if barcode not in self._mounted:
                self._mounted.append(barcode)
            return
        if cart["location"]["kind"] == "vault":
            raise TapeError("cartridge %s is in the vault %s: recall it first"
                            % (barcode, cart["location"]["vault"]))
        busy = {c["location"]["drive"] for c in self.catalog.cartridges.values() if c["location"]["kind"] == "drive"}
        free = [n for n in range(self.config.drives) if n not in busy]
        if not free and self._mounted:
            self._unload(self._mounted[0])
            return self._load(barcode)
        if not free:
            raise TapeError("library %s: all %d drives are loaded" % (self.name, self.config.drives))
        location = {"kind": "drive", "drive": free[0]}
        self.store.move(barcode, location)
        cart["location"] = location
        self._mounted.append(barcode)
        self.catalog.save()

    def _unload(self, barcode: str) -> None:
        cart = self.catalog.cartridge(barcode)
        writer = self._writers.pop(barcode, None)
        if writer is not None:
            try:
                writer.close()
            except BaseException:
                self._forget_uncommitted(barcode)
                raise
        if cart["location"]["kind"] == "drive":
            if not cart.get("slot"):
                cart["slot"] = self._free_slot("cartridge %s leaves a drive" % barcode)
            location = {"kind": "slot", "slot": cart["slot"]}
            self.store.move(barcode, location)
            cart["location"] = location
            if not self.store.appendable and cart["used_bytes"]:
                self._close(cart)  # an uploaded object takes no more data
        if barcode in self._mounted:
            self._mounted.remove(barcode)
        self.catalog.save()

    def _forget_uncommitted(self, barcode: str) -> None:
        """The streams on a cartridge whose data could not be made durable (an upload or fsync that
        failed) leave the catalog unless a committed point holds them: a retry writes them again."""
        committed = {stream_id for points in self.catalog.points.values() for record in points.values()
                     for stream_id in record.get("streams") or []}
        for stream in self.catalog.streams_on(barcode):
            if stream["id"] not in committed:
                del self.catalog.streams[stream["id"]]
        self.catalog.save()

    def _unload_all(self) -> None:
        for barcode in list(self._mounted):
            self._unload(barcode)

    def _free_slot(self, why: str) -> int:
        taken = self.catalog.occupied_slots()
        for slot in range(1, self.config.slots + 1):
            if slot not in taken:
                return slot
        raise PoolExhausted("library %s has no empty slot (%d slots, all occupied): %s"
                            % (self.name, self.config.slots, why))

    def _close(self, cart: dict[str, Any]) -> None:
        cart["closed"] = True
        cart["state"] = "full" if cart["state"] != "scratch" else cart["state"]
        pool = self.config.pools.get(cart["pool"])
        if pool is not None and pool.worm and cart["used_bytes"]:
            self.store.protect(cart["barcode"], self._until(cart, pool), closed=True)

    def _until(self, cart: dict[str, Any], pool: PoolConfig) -> datetime.datetime:
        last = parse_iso(cart["last_written"]) if cart.get("last_written") else self.now()
        return last + datetime.timedelta(days=pool.retention_days)

    # -- allocation --------------------------------------------------------------------------
    def _allocate(self, pool: PoolConfig, exclude: list[str], need: int = 0) -> str:
        carts = [c for c in self.catalog.cartridges.values()
                 if c["pool"] == pool.name and c["barcode"] not in exclude and c["location"]["kind"] in ("slot", "drive")]
        for cart in carts:
            if cart["state"] == "filling" and not cart.get("closed") and cart["barcode"] not in self._mounted \
                    and is_full(cart["capacity_bytes"] - cart["used_bytes"], cart["spanned"]):
                self._close(cart)  # its point was never committed: the reserve is no use any more
        appendable = [c for c in carts if c["state"] == "filling" and not c.get("closed")
                      and c["capacity_bytes"] - c["used_bytes"] >= (need or FULL_MARGIN)
                      and (self.store.appendable or c["barcode"] in self._mounted)]
        if appendable:
            best = max(appendable, key=lambda c: (c["barcode"] in self._mounted, c.get("last_written") or ""))
            return best["barcode"]
        scratch = sorted(c["barcode"] for c in carts if c["state"] == "scratch")
        if scratch:
            return scratch[0]
        return self._new_cartridge(pool)

    def _new_cartridge(self, pool: PoolConfig) -> str:
        in_vault = sum(1 for c in self.catalog.cartridges.values() if c["location"]["kind"] == "vault")
        try:
            slot = self._free_slot("")
        except PoolExhausted:
            raise PoolExhausted(
                "pool %s of library %s has no appendable or scratch cartridge and no empty slot for a new one "
                "(%d slots occupied, %d cartridges in the vault): recycle expired cartridges, vault full ones or "
                "add slots" % (pool.name, self.name, self.config.slots, in_vault)) from None
        barcode, counter = next_barcode(self.catalog.counters, pool.barcode_prefix, self.config.media_suffix,
                                        BARCODE_WIDTH)
        self.catalog.counters[pool.barcode_prefix] = counter
        location = {"kind": "slot", "slot": slot}
        self.store.create(barcode, location)
        self.catalog.cartridges[barcode] = self._cartridge_record(barcode, pool.name, location, 1)
        self.catalog.save()
        return barcode

    def _cartridge_record(self, barcode: str, pool: str, location: dict[str, Any], generation: int) -> dict[str, Any]:
        worm = bool(self.config.pools[pool].worm) if pool in self.config.pools else False
        return {"barcode": barcode, "pool": pool, "media": self.config.media_type,
                "capacity_bytes": self.config.capacity_bytes, "generation": generation, "labelled": None,
                "worm": worm, "used_bytes": 0, "state": "scratch", "closed": False, "spanned": False,
                "location": location, "slot": location.get("slot"), "first_written": None, "last_written": None}

    # -- writing -----------------------------------------------------------------------------
    def write_stream(self, pool: str, meta: dict[str, Any], source: BinaryIO) -> dict[str, Any]:
        pool_config = self.config.pool(pool)
        stream_id = stream_id_of(meta)
        with self._locked(), self._aborting():
            if stream_id in self.catalog.streams:
                raise TapeError("stream %s is already in library %s" % (stream_id, self.name))
            chunks = ChunkSource(source)
            parts: list[dict[str, Any]] = []
            index: dict[str, Any] = {}
            try:
                while not index.get("last"):
                    barcode = self._allocate(pool_config, [p["barcode"] for p in parts])
                    outcome, offset = self._write_part(barcode, pool_config, chunks, stream_id, len(parts) + 1, meta)
                    index = outcome.index
                    parts.append({"barcode": barcode, "part": index["part"], "bytes": index["bytes"],
                                  "sha256": index["sha256"], "offset": offset, "index_sha256": outcome.index_sha256})
            finally:
                chunks.close()
            record = dict(meta, id=stream_id, pool=pool, bytes=index["stream_bytes"], sha256=index["stream_sha256"],
                          parts=parts, written=index["written"])
            self.catalog.streams[stream_id] = record
            self.catalog.save()
            return record

    def _prepare_write(self, barcode: str, pool: PoolConfig) -> dict[str, Any]:
        cart = self.catalog.cartridge(barcode)
        self._load(barcode)
        if pool.worm:
            # Before any byte: a filesystem without the attributes fails here, naming the path.
            self.store.protect(barcode, self.now() + datetime.timedelta(days=pool.retention_days), closed=False)
        return cart

    def _write_part(self, barcode: str, pool: PoolConfig, chunks: ChunkSource, stream_id: str, part: int,
                    meta: dict[str, Any]) -> tuple[PartOutcome, int]:
        cart = self._prepare_write(barcode, pool)
        moment = self.now()
        with self._appending(cart) as out:
            self._label_if_new(cart, out, moment)
            offset = cart["used_bytes"]
            outcome = write_part(out, chunks, stream_id, part, cart["capacity_bytes"] - offset, meta, iso(moment),
                                 moment.timestamp())
            cart["used_bytes"] += outcome.written
        if not outcome.index["last"]:
            cart["spanned"] = True
        self._written(cart, pool, iso(moment), point_follows=True)
        return outcome, offset

    @contextlib.contextmanager
    def _appending(self, cart: dict[str, Any]) -> Iterator[BinaryIO]:
        """The cartridge's writer; after a failure the catalog follows what really reached it
        (a cut member leaves the cartridge closed: nothing may follow it)."""
        barcode = cart["barcode"]
        before = cart["used_bytes"]
        out = self._writers.get(barcode)
        try:
            if out is None:
                out = self.store.open_append(barcode)
            yield out
            if self.store.appendable:
                out.close()  # durable now; a store that uploads on close keeps it open until unload
            else:
                self._writers[barcode] = out
        except BaseException:
            self._writers.pop(barcode, None)
            if out is not None and not out.closed:
                out.close()
            self._settle(cart, before)
            self.catalog.save()
            raise

    def _settle(self, cart: dict[str, Any], before: int) -> None:
        """After a failed write: whole members that reached the cartridge (chunks of a part that
        never got its index) stay as harmless orphans; a member cut in the middle closes it."""
        barcode = cart["barcode"]
        try:
            if self.store.size(barcode) == before:
                return
            scan = scan_cartridge(self.store, barcode)
        except (OSError, TapeError):
            scan = None
        if scan is None or scan.cut:
            cart["used_bytes"] = self.store.size(barcode) if scan is None else scan.used
            self._close(cart)
            return
        cart["used_bytes"] = scan.used
        if scan.label is not None and not cart.get("labelled"):
            cart["labelled"] = scan.label.get("labelled")
        if scan.used > scan.label_bytes:
            cart["state"] = "filling"
            if is_full(cart["capacity_bytes"] - scan.used, cart["spanned"]):
                self._close(cart)

    def _label_if_new(self, cart: dict[str, Any], out: BinaryIO, moment: datetime.datetime) -> None:
        if cart["used_bytes"]:
            return
        cart["labelled"] = iso(moment)
        label = label_document(cart["barcode"], cart["pool"], self.name, cart["media"], cart["capacity_bytes"],
                               cart["labelled"], cart["generation"], cart["worm"])
        member = json_member(LABEL_NAME, label, moment.timestamp())
        out.write(member)
        cart["used_bytes"] = len(member)

    def _written(self, cart: dict[str, Any], pool: PoolConfig, stamp: str, point_follows: bool = False) -> None:
        cart["first_written"] = cart["first_written"] or stamp
        cart["last_written"] = stamp
        # The room kept for the point member stays usable until the point is committed.
        full = cart["spanned"] if point_follows else is_full(cart["capacity_bytes"] - cart["used_bytes"],
                                                             cart["spanned"])
        cart["state"] = "full" if full else "filling"
        if full:
            self._close(cart)
            self._unload(cart["barcode"])
        elif pool.worm:
            self.store.protect(cart["barcode"], self._until(cart, pool), closed=False)
        self.catalog.save()

    def commit_point(self, record: dict[str, Any]) -> None:
        group, point = record["group"], record["point"]
        with self._locked(), self._aborting():
            streams = [self.catalog.stream(stream_id) for stream_id in record["streams"]]
            pool = self.config.pool(record.get("pool") or streams[0]["pool"])
            moment = self.now()
            stored = dict(record, exported=iso(moment), pool=pool.name)
            last = streams[-1]["parts"][-1]["barcode"] if streams else None
            size = len(json_member(point_name(group, point), dict(stored, cartridge="X" * 16), 0))
            barcode = self._point_cartridge(last, pool, size)
            stored["cartridge"] = barcode
            cart = self._prepare_write(barcode, pool)
            with self._appending(cart) as out:
                self._label_if_new(cart, out, moment)
                member = json_member(point_name(group, point), stored, moment.timestamp())
                out.write(member)
                cart["used_bytes"] += len(member)
            # Durable first (the directory store fsynced on close; an S3 cartridge uploads as it leaves
            # the drive), counted second: the catalog never names a point its cartridges do not hold.
            self._unload_all()
            self.catalog.points.setdefault(group, {})[point] = stored
            self._written(cart, pool, iso(moment))

    def _point_cartridge(self, last: str | None, pool: PoolConfig, size: int) -> str:
        """The last cartridge the point's streams used, if it still takes the point member."""
        cart = self.catalog.cartridges.get(last or "")
        if cart is not None and not cart.get("closed") and cart["location"]["kind"] in ("slot", "drive") \
                and cart["capacity_bytes"] - cart["used_bytes"] >= size \
                and (self.store.appendable or last in self._mounted):
            return cart["barcode"]
        return self._allocate(pool, [], need=size)

    # -- catalog questions -------------------------------------------------------------------
    def _read_catalog(self) -> Catalog:
        if not self._depth:
            self.catalog.load()
        return self.catalog

    def points(self, group: str) -> list[dict[str, Any]]:
        records = self._read_catalog().points.get(group, {}).values()
        return sorted(records, key=lambda r: (r.get("time") or "", r["point"]))

    def chain(self, group: str, point: str) -> list[dict[str, Any]]:
        catalog = self._read_catalog()
        records = catalog.points.get(group, {})
        if point not in records:
            raise TapeError("point %s of group %s is not in the catalog of library %s" % (point, group, self.name))
        chain = [records[point]]
        while chain[0].get("base"):
            base = chain[0]["base"]
            if base not in records:
                raise TapeError("the chain of point %s of group %s is incomplete: its base %s is not in library %s"
                                % (point, group, base, self.name))
            if any(r["point"] == base for r in chain) or len(chain) > 100000:
                raise TapeError("the chain of point %s of group %s loops at %s" % (point, group, base))
            chain.insert(0, records[base])
        for record in chain:
            missing = [s for s in record.get("streams", []) if s not in catalog.streams]
            if missing:
                raise TapeError("the chain of point %s of group %s is incomplete: point %s lacks stream(s) %s"
                                % (point, group, record["point"], ", ".join(missing)))
        return chain

    def cartridges_for(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        catalog = self._read_catalog()
        ordered: list[dict[str, Any]] = []
        for record in records:
            for stream_id in record.get("streams", []):
                for part in catalog.stream(stream_id)["parts"]:
                    if all(entry["barcode"] != part["barcode"] for entry in ordered):
                        cart = catalog.cartridge(part["barcode"])
                        ordered.append({"barcode": cart["barcode"], "location": dict(cart["location"]),
                                        "pool": cart["pool"], "state": cart["state"]})
        return ordered

    # -- reading -----------------------------------------------------------------------------
    def read_stream(self, stream_id: str, sink: BinaryIO | None) -> dict[str, Any]:
        with self._locked():
            stream = self.catalog.stream(stream_id)
            for part in stream["parts"]:
                location = self.catalog.cartridge(part["barcode"])["location"]
                if location["kind"] == "vault":
                    raise TapeError("cartridge %s (stream %s part %d) is in the vault %s: recall it first"
                                    % (part["barcode"], stream_id, part["part"], location["vault"]))
            write = None
            if sink is not None:
                widen_pipe(sink)
                write = _writer(sink)
            reader = StreamReader(write)
            used: list[str] = []
            try:
                for part in stream["parts"]:
                    self._read_part(part, stream_id, reader)
                    if part["barcode"] not in used:
                        used.append(part["barcode"])
            finally:
                reader.close()
            if reader.size != stream["bytes"]:
                raise CartridgeDamaged(used[-1], "stream %s read back as %d bytes, the catalog says %d"
                                       % (stream_id, reader.size, stream["bytes"]))
            # Every part matched its recorded sha256, so the stream is the one whose digest was recorded.
            return {"stream": stream_id, "cartridges": used, "bytes": reader.size, "sha256": stream["sha256"]}

    def _read_part(self, part: dict[str, Any], stream_id: str, reader: StreamReader) -> None:
        barcode = part["barcode"]
        cart = self.catalog.cartridge(barcode)
        self._load(barcode)
        try:
            with self.store.open_read(barcode, 0) as handle:
                check_label(read_label(CartridgeReader(handle, barcode)), barcode, cart["generation"], cart)
            with self.store.open_read(barcode, part["offset"]) as handle:
                reader.read_part(CartridgeReader(handle, barcode, part["offset"]), stream_id, part["part"], part)
        finally:
            if cart["location"]["kind"] == "drive" and barcode in self._mounted:
                self._unload(barcode)

    def verify_stream(self, stream_id: str) -> dict[str, Any]:
        return self.read_stream(stream_id, None)

    # -- vault -------------------------------------------------------------------------------
    def vault(self) -> list[str]:
        moved = []
        with self._locked():
            self._unload_all()
            for barcode, cart in sorted(self.catalog.cartridges.items()):
                pool = self.config.pools.get(cart["pool"])
                if pool is None or not pool.vault or cart["location"]["kind"] != "slot":
                    continue
                if cart["state"] != "full" and not (cart.get("closed") and cart["used_bytes"]):
                    continue
                self._close(cart)
                self._move(cart, {"kind": "ie"})
                self._move(cart, {"kind": "vault", "vault": self.config.vault_destination})
                cart["slot"] = None
                moved.append(barcode)
            self.catalog.save()
        return moved

    def recall(self, barcodes: list[str]) -> list[str]:
        recalled = []
        with self._locked():
            for barcode in barcodes:
                cart = self.catalog.cartridge(barcode)
                if cart["location"]["kind"] != "vault":
                    continue
                slot = self._free_slot("cartridge %s is recalled from the vault" % barcode)
                self._move(cart, {"kind": "ie"})
                self._move(cart, {"kind": "slot", "slot": slot})
                cart["slot"] = slot
                recalled.append(barcode)
            self.catalog.save()
        return recalled

    def _move(self, cart: dict[str, Any], location: dict[str, Any]) -> None:
        self.store.move(cart["barcode"], location)
        cart["location"] = location
        self.catalog.save()

    # -- retention ---------------------------------------------------------------------------
    def recycle(self, keep_points: dict[str, set[str]] | None = None) -> dict[str, Any]:
        with self._locked():
            self._unload_all()
            needed = self._needed(keep_points)
            now = self.now()
            recycled, kept = [], {}
            for barcode, cart in sorted(self.catalog.cartridges.items()):
                ok, reason = recycle_decision(cart, self.config.pools.get(cart["pool"]), now, needed)
                if ok:
                    self._erase(cart)
                    recycled.append(barcode)
                elif cart["state"] != "scratch":
                    kept[barcode] = reason
            self.catalog.save()
            return {"recycled": recycled, "kept": kept}

    def _needed(self, keep_points: dict[str, set[str]] | None) -> dict[str, str]:
        """Cartridge -> the kept point whose chain needs it."""
        needed: dict[str, str] = {}
        for group, kept in sorted((keep_points or {}).items()):
            for point in sorted(kept):
                if point not in self.catalog.points.get(group, {}):
                    continue
                for record in self._chain_present(group, point):
                    why = "the chain of kept point %s of group %s" % (point, group)
                    if record.get("cartridge"):
                        needed.setdefault(record["cartridge"], why)
                    for stream_id in record.get("streams", []):
                        for part in self.catalog.streams.get(stream_id, {}).get("parts", []):
                            needed.setdefault(part["barcode"], why)
        return needed

    def _chain_present(self, group: str, point: str) -> list[dict[str, Any]]:
        records = self.catalog.points.get(group, {})
        chain = [records[point]]
        while chain[0].get("base") in records and len(chain) <= len(records):
            chain.insert(0, records[chain[0]["base"]])
        return chain

    def _erase(self, cart: dict[str, Any]) -> None:
        barcode = cart["barcode"]
        self.store.erase(barcode)
        gone = {s["id"] for s in self.catalog.streams_on(barcode)}
        for stream_id in gone:
            del self.catalog.streams[stream_id]
        for group in list(self.catalog.points):
            records = self.catalog.points[group]
            for point in [p for p, r in records.items()
                          if r.get("cartridge") == barcode or gone.intersection(r.get("streams", []))]:
                del records[point]
            if not records:
                del self.catalog.points[group]
        fresh = self._cartridge_record(barcode, cart["pool"], cart["location"], cart["generation"] + 1)
        fresh["slot"] = cart.get("slot")
        cart.clear()
        cart.update(fresh)
        if self.store.appendable:
            # The new label now, as a relabelled tape has it (a closed-on-upload store labels on first use).
            self._load(barcode)
            with self._appending(cart) as out:
                self._label_if_new(cart, out, self.now())
            self._unload(barcode)

    # -- rebuild and inventory ---------------------------------------------------------------
    def rebuild_catalog(self) -> dict[str, Any]:
        with self._locked():
            self._unload_all()
            previous = dict(self.catalog.counters)
            self.catalog.doc = {"format": self.catalog.doc.get("format", 1), "library": self.name, "counters": {},
                                "cartridges": {}, "streams": {}, "points": {}}
            report: dict[str, Any] = {"cartridges": [], "unreadable": {}, "incomplete_streams": []}
            scans = {}
            for barcode, location in sorted(self.store.list().items()):
                try:
                    scans[barcode] = scan_cartridge(self.store, barcode)
                except TapeError as exc:
                    report["unreadable"][barcode] = str(exc)
                    continue
                self.catalog.cartridges[barcode] = self._rebuilt_cartridge(barcode, location, scans[barcode])
                report["cartridges"].append(barcode)
            report["incomplete_streams"] = self._rebuilt_streams(scans)
            self._rebuilt_points(scans)
            self._rebuilt_counters(previous)
            self._home_slots()
            self.catalog.save()
            report.update(streams=len(self.catalog.streams),
                          points=sum(len(p) for p in self.catalog.points.values()))
            return report

    def _rebuilt_cartridge(self, barcode: str, location: dict[str, Any], scan: Any) -> dict[str, Any]:
        label = scan.label or {}
        pool = label.get("pool") or self._pool_of_barcode(barcode)
        cart = self._cartridge_record(barcode, pool, location, label.get("generation", 1))
        stamps = sorted([i["written"] for i in scan.indexes] + [p["exported"] for p in scan.points])
        spanned = any(not i["last"] for i in scan.indexes)
        cart.update(labelled=label.get("labelled"), worm=label.get("worm", cart["worm"]),
                    media=label.get("media", cart["media"]),
                    capacity_bytes=label.get("capacity_bytes", cart["capacity_bytes"]), used_bytes=scan.used,
                    spanned=spanned, first_written=stamps[0] if stamps else None,
                    last_written=stamps[-1] if stamps else None)
        if scan.used > scan.label_bytes or scan.cut:
            full = scan.cut or is_full(cart["capacity_bytes"] - scan.used, spanned)
            cart["state"] = "full" if full else "filling"
            cart["closed"] = bool(full or location["kind"] == "vault" or not self.store.appendable)
        return cart

    def _pool_of_barcode(self, barcode: str) -> str:
        for pool in self.config.pools.values():
            if barcode_counter(barcode, pool.barcode_prefix, BARCODE_WIDTH) is not None:
                return pool.name
        return ""

    def _rebuilt_streams(self, scans: dict[str, Any]) -> list[str]:
        parts: dict[str, dict[int, tuple[str, dict[str, Any], int, str]]] = {}
        for barcode, scan in scans.items():
            for index, offset, digest in zip(scan.indexes, scan.offsets, scan.index_digests):
                parts.setdefault(index["stream"], {})[index["part"]] = (barcode, index, offset, digest)
        incomplete = []
        for stream_id, found in sorted(parts.items()):
            numbers = sorted(found)
            last = found[numbers[-1]][1]
            if numbers != list(range(1, len(numbers) + 1)) or not last.get("last"):
                incomplete.append(stream_id)
                continue
            first_barcode = found[1][0]
            self.catalog.streams[stream_id] = dict(
                last["meta"], id=stream_id, pool=self.catalog.cartridges[first_barcode]["pool"],
                bytes=last["stream_bytes"], sha256=last["stream_sha256"], written=last["written"],
                parts=[{"barcode": found[n][0], "part": n, "bytes": found[n][1]["bytes"],
                        "sha256": found[n][1]["sha256"], "offset": found[n][2], "index_sha256": found[n][3]}
                       for n in numbers])
        return incomplete

    def _rebuilt_points(self, scans: dict[str, Any]) -> None:
        for scan in scans.values():
            for record in scan.points:
                if all(s in self.catalog.streams for s in record.get("streams", [])):
                    self.catalog.points.setdefault(record["group"], {})[record["point"]] = record

    def _rebuilt_counters(self, previous: dict[str, int]) -> None:
        counters = dict(previous)
        for pool in self.config.pools.values():
            for barcode in self.catalog.cartridges:
                counter = barcode_counter(barcode, pool.barcode_prefix, BARCODE_WIDTH)
                if counter is not None:
                    counters[pool.barcode_prefix] = max(counters.get(pool.barcode_prefix, 0), counter)
        self.catalog.doc["counters"] = counters

    def _home_slots(self) -> None:
        """Cartridges found in a drive or the import/export slot go back to an empty slot."""
        for cart in self.catalog.cartridges.values():
            if cart["location"]["kind"] in ("drive", "ie"):
                cart["slot"] = self._free_slot("cartridge %s is put back" % cart["barcode"])
                self._move(cart, {"kind": "slot", "slot": cart["slot"]})

    def inventory(self) -> dict[str, Any]:
        catalog = self._read_catalog()
        carts = catalog.cartridges
        at = {}
        for cart in carts.values():
            where = cart["location"]
            at[(where["kind"], where.get("slot", where.get("drive", where.get("vault"))))] = cart["barcode"]
        vault: dict[str, list[str]] = {}
        for cart in carts.values():
            if cart["location"]["kind"] == "vault":
                vault.setdefault(cart["location"]["vault"], []).append(cart["barcode"])
        document = {
            "library": self.name, "driver": self.config.driver,
            "slots": [{"slot": n, "barcode": at.get(("slot", n))} for n in range(1, self.config.slots + 1)],
            "drives": [{"drive": n, "barcode": at.get(("drive", n))} for n in range(self.config.drives)],
            "ie": at.get(("ie", None)),
            "vault": {dest: sorted(codes) for dest, codes in vault.items()},
            "cartridges": [dict(cart, free_bytes=cart["capacity_bytes"] - cart["used_bytes"])
                           for _code, cart in sorted(carts.items())],
        }
        return document


def _writer(sink: BinaryIO) -> Callable[[memoryview], None]:
    def write(view: memoryview) -> None:
        while len(view):
            written = sink.write(view)
            view = view[written:] if written is not None else view[len(view):]
    return write
