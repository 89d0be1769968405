# -*- coding: utf-8 -*-
# Private to restorable.backup: the `directory` media driver. A cartridge is the file
# <path>/<location>/<BARCODE>/cartridge; moving it renames its directory, which works even while
# the file itself is immutable. WORM uses the append-only and immutable inode attributes, which
# even root cannot bypass without clearing them first (and the library clears them only once the
# retention expired).
from __future__ import annotations

import ctypes
import datetime
import errno
import fcntl
import io
import os
import struct
from typing import Any, BinaryIO, Callable

from ...common.fileio import atomic_write_json, ensure_dir, read_json
from .media import MediaStore, TapeError

FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010
FS_APPEND_FL = 0x00000020
CARTRIDGE_FILE = "cartridge"
SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback, do not wait
WORM_FILE = "worm.json"


class DirectoryStore(MediaStore):
    """Cartridges as files below one directory, one sub-directory per location."""

    kind = "directory"
    appendable = True

    def __init__(self, path: str, slots: int, drives: int, vault_destinations: list[str],
                 now: Callable[[], datetime.datetime]) -> None:
        self.path = path
        self.slots = slots
        self.drives = drives
        self.vault_destinations = vault_destinations
        self._now = now
        self._where: dict[str, str] = {}

    def location_dir(self, location: dict[str, Any]) -> str:
        kind = location.get("kind")
        if kind == "slot":
            return os.path.join(self.path, "slots", "%04d" % int(location["slot"]))
        if kind == "drive":
            return os.path.join(self.path, "drives", str(int(location["drive"])))
        if kind == "ie":
            return os.path.join(self.path, "ie")
        if kind == "vault":
            return os.path.join(self.path, "vault", str(location["vault"]))
        raise TapeError("unknown location %r" % (location,))

    def _layout(self) -> list[str]:
        dirs = [self.location_dir({"kind": "slot", "slot": n}) for n in range(1, self.slots + 1)]
        dirs += [self.location_dir({"kind": "drive", "drive": n}) for n in range(self.drives)]
        dirs.append(self.location_dir({"kind": "ie"}))
        dirs += [self.location_dir({"kind": "vault", "vault": name}) for name in self.vault_destinations]
        return dirs

    def ensure(self, check_mode: bool = False) -> list[str]:
        missing = [path for path in self._layout() if not os.path.isdir(path)]
        if missing and not check_mode:
            for path in missing:
                ensure_dir(path, 0o750)
        return ["created %d location directories below %s" % (len(missing), self.path)] if missing else []

    def list(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        self._where = {}
        for location in self._locations():
            folder = self.location_dir(location)
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                if os.path.isfile(os.path.join(folder, name, CARTRIDGE_FILE)):
                    found[name] = dict(location)
                    self._where[name] = os.path.join(folder, name)
        return found

    def _locations(self) -> list[dict[str, Any]]:
        locations: list[dict[str, Any]] = []
        for kind, sub in (("slot", "slots"), ("drive", "drives")):
            folder = os.path.join(self.path, sub)
            names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
            locations += [{"kind": kind, kind: int(name)} for name in names if name.isdigit()]
        locations.append({"kind": "ie"})
        vault = os.path.join(self.path, "vault")
        names = sorted(os.listdir(vault)) if os.path.isdir(vault) else []
        locations += [{"kind": "vault", "vault": name} for name in names]
        return locations

    def _dir(self, barcode: str) -> str:
        where = self._where.get(barcode)
        if where is None or not os.path.isdir(where):
            self.list()
            where = self._where.get(barcode)
        if where is None:
            raise TapeError("cartridge %s is not in library directory %s" % (barcode, self.path))
        return where

    def cartridge_path(self, barcode: str) -> str:
        return os.path.join(self._dir(barcode), CARTRIDGE_FILE)

    def create(self, barcode: str, location: dict[str, Any]) -> None:
        if barcode in self.list():
            raise TapeError("cartridge %s already exists in %s" % (barcode, self.path))
        folder = os.path.join(self.location_dir(location), barcode)
        os.makedirs(folder, mode=0o750)
        with open(os.path.join(folder, CARTRIDGE_FILE), "xb"):
            pass
        self._where[barcode] = folder

    def open_append(self, barcode: str) -> BinaryIO:
        return _DurableAppend(self.cartridge_path(barcode))

    def open_read(self, barcode: str, offset: int = 0) -> BinaryIO:
        handle = open(self.cartridge_path(barcode), "rb", buffering=0)  # pylint: disable=consider-using-with
        if offset:
            handle.seek(offset)
        return handle  # type: ignore[return-value]

    def size(self, barcode: str) -> int:
        return os.path.getsize(self.cartridge_path(barcode))

    def move(self, barcode: str, location: dict[str, Any]) -> None:
        source = self._dir(barcode)
        target = os.path.join(self.location_dir(location), barcode)
        if source == target:
            return
        ensure_dir(os.path.dirname(target), 0o750)
        try:
            os.rename(source, target)
        except OSError as exc:
            raise TapeError("cannot move cartridge %s to %s: %s" % (barcode, target, exc.strerror)) from None
        self._where[barcode] = target

    def protect(self, barcode: str, until: datetime.datetime, closed: bool) -> None:
        path = self.cartridge_path(barcode)
        sidecar = os.path.join(self._dir(barcode), WORM_FILE)
        # One ioctl sets immutable and clears append-only: the file is never unprotected between.
        if closed:
            _set_flags(path, FS_IMMUTABLE_FL, FS_APPEND_FL)
        else:
            _set_flags(path, FS_APPEND_FL, 0)
        # The retention date, itself immutable, so erase() refuses before it.
        if os.path.exists(sidecar):
            _set_flags(sidecar, 0, FS_IMMUTABLE_FL)
        atomic_write_json(sidecar, {"until": _iso(until)}, mode=0o444)
        _set_flags(sidecar, FS_IMMUTABLE_FL, 0)

    def protection(self, barcode: str) -> dict[str, Any]:
        path = self.cartridge_path(barcode)
        flags = _get_flags(path)
        document = read_json(os.path.join(self._dir(barcode), WORM_FILE)) or {}
        return {"path": path, "append_only": bool(flags & FS_APPEND_FL), "immutable": bool(flags & FS_IMMUTABLE_FL),
                "until": document.get("until")}

    def erase(self, barcode: str) -> None:
        folder = self._dir(barcode)
        path = os.path.join(folder, CARTRIDGE_FILE)
        sidecar = os.path.join(folder, WORM_FILE)
        document = read_json(sidecar)
        if document is not None:
            until = _parse_iso(document.get("until", ""))
            if until is None or self._now() < until:
                raise TapeError("cartridge %s is write-once until %s: it cannot be erased before"
                                % (barcode, document.get("until")))
            _set_flags(sidecar, 0, FS_IMMUTABLE_FL)
            os.unlink(sidecar)
        _set_flags(path, 0, FS_IMMUTABLE_FL | FS_APPEND_FL, missing_ok=True)
        os.truncate(path, 0)


class _DurableAppend(io.FileIO):
    """An unbuffered append handle (large writes go straight to the file) fsynced on close.

    Writeback of each WINDOW starts as soon as it is written (without waiting for it), so the disk
    works while the stream is still coming and the final fsync finds little left to write."""

    WINDOW = 32 * 1024 * 1024

    def __init__(self, path: str) -> None:
        super().__init__(path, "ab")
        self._kicked = self._end = os.fstat(self.fileno()).st_size

    def write(self, data: Any) -> int:
        written = super().write(data) or 0
        self._end += written
        if self._end - self._kicked >= self.WINDOW:
            self._writeback()
        return written

    def _writeback(self) -> None:
        _sync_file_range(self.fileno(), self._kicked, self._end - self._kicked, SYNC_FILE_RANGE_WRITE)
        self._kicked = self._end

    def close(self) -> None:
        if not self.closed:
            try:
                os.fsync(self.fileno())
            finally:
                super().close()


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _libc_sync_file_range()


def _sync_file_range(fd: int, offset: int, size: int, flags: int) -> None:
    """Linux's sync_file_range (Python has no binding); without it the fsync on close does it all."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, size, flags)


def _get_flags(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0)))[0]
    except OSError as exc:
        raise TapeError("cannot read the write-once attributes of %s: %s%s"
                        % (path, exc.strerror, _hint(exc))) from None
    finally:
        os.close(fd)


def _hint(exc: OSError) -> str:
    if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL):
        return " (the filesystem has no append-only/immutable attributes: a WORM pool needs btrfs, ext4 or xfs)"
    if exc.errno == errno.EPERM:
        return " (needs root: CAP_LINUX_IMMUTABLE)"
    return ""


def _set_flags(path: str, add: int, remove: int, missing_ok: bool = False) -> None:
    try:
        flags = _get_flags(path)
    except TapeError:
        if missing_ok:
            return
        raise
    wanted = (flags | add) & ~remove
    if wanted == flags:
        return
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", wanted))
    except OSError as exc:
        if missing_ok and not add:
            return
        raise TapeError("cannot set the write-once attributes of %s: %s%s"
                        % (path, exc.strerror, _hint(exc))) from None
    finally:
        os.close(fd)
    if (_get_flags(path) & (add | remove)) != add:
        raise TapeError("the filesystem of %s did not keep the write-once attributes" % path)


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None
