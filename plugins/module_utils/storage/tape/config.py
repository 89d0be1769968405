# -*- coding: utf-8 -*-
# Private to restorable.backup: a tape library's configuration file (written by apply, read by
# every run that touches the library). Errors name the file and the field, because the operator
# fixes them in the inventory, not in this JSON.
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .media import TapeError

FORMAT = 1
DRIVERS = ("directory", "s3")
BARCODE_WIDTH = 6  # prefix + counter, before the media suffix (DA0001 + L8)
_PREFIX_RE = re.compile(r"^[A-Z0-9]{1,4}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LTO_RE = re.compile(r"^LTO-?(\d{1,2})$")


class LibraryConfigError(TapeError):
    """The library configuration file is missing, not JSON or has a wrong field."""

    def __init__(self, path: str, field_name: str, problem: str) -> None:
        self.path = path
        self.field = field_name
        where = "%s: %s" % (path, field_name) if field_name else path
        super().__init__("tape library configuration %s %s" % (where, problem))


@dataclass(frozen=True)
class PoolConfig:
    name: str
    retention_days: int
    barcode_prefix: str
    worm: bool = False
    vault: bool = False


@dataclass(frozen=True)
class LibraryConfig:
    path: str  # the configuration file itself, for messages
    name: str
    driver: str
    state_dir: str
    slots: int
    drives: int
    media_type: str
    capacity_bytes: int
    pools: dict[str, PoolConfig]
    media_path: str = ""  # directory driver: where the cartridges live
    vault_destination: str = "vault"
    s3: dict[str, Any] = field(default_factory=dict)

    @property
    def media_suffix(self) -> str:
        return media_suffix(self.media_type)

    def pool(self, name: str) -> PoolConfig:
        try:
            return self.pools[name]
        except KeyError:
            raise TapeError("library %s has no pool %r (pools: %s)"
                            % (self.name, name, ", ".join(sorted(self.pools)))) from None


def media_suffix(media_type: str) -> str:
    """The two barcode characters naming the media, as LTO labels do (LTO-8 -> L8)."""
    match = _LTO_RE.match(media_type.upper())
    if match:
        return "L" + match.group(1)[-1]
    letters = re.sub(r"[^A-Z0-9]", "", media_type.upper())
    return (letters[:1] + letters[-1:]) if len(letters) >= 2 else (letters + "X")[:2]


def load_config(path: str) -> LibraryConfig:
    """The LibraryConfig in a JSON file; LibraryConfigError naming the file and field."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise LibraryConfigError(path, "", "does not exist") from None
    except (OSError, ValueError) as exc:
        raise LibraryConfigError(path, "", "cannot be read as JSON: %s" % exc) from None
    return parse_config(document, path)


def parse_config(document: Any, path: str = "<config>") -> LibraryConfig:
    if not isinstance(document, dict):
        raise LibraryConfigError(path, "", "must be a JSON object")
    fmt = document.get("format", FORMAT)
    if fmt != FORMAT:
        raise LibraryConfigError(path, "format", "is %r, this version reads format %d" % (fmt, FORMAT))
    name = _string(document, "name", path)
    if not _NAME_RE.match(name):
        raise LibraryConfigError(path, "name", "must be 1-64 letters, digits, '_', '.' or '-'")
    driver = _string(document, "driver", path)
    if driver not in DRIVERS:
        raise LibraryConfigError(path, "driver", "is %r; one of %s" % (driver, ", ".join(DRIVERS)))
    media_path = document.get("path") or ""
    if driver == "directory" and not (isinstance(media_path, str) and media_path.startswith("/")):
        raise LibraryConfigError(path, "path", "must be an absolute directory for the directory driver")
    state_dir = document.get("state_dir") or media_path
    if not (isinstance(state_dir, str) and state_dir.startswith("/")):
        raise LibraryConfigError(path, "state_dir", "must be an absolute directory")
    media = document.get("media")
    if not isinstance(media, dict):
        raise LibraryConfigError(path, "media", "must be an object with type and capacity_bytes")
    media_type = _string(media, "type", path, "media.")
    capacity = _capacity(media, path)
    vault = document.get("vault") or {}
    if not isinstance(vault, dict):
        raise LibraryConfigError(path, "vault", "must be an object with destination")
    destination = vault.get("destination", "vault")
    if not (isinstance(destination, str) and _NAME_RE.match(destination)):
        raise LibraryConfigError(path, "vault.destination", "must be 1-64 letters, digits, '_', '.' or '-'")
    s3 = document.get("s3") or {}
    if not isinstance(s3, dict):
        raise LibraryConfigError(path, "s3", "must be an object")
    return LibraryConfig(path=path, name=name, driver=driver, state_dir=state_dir,
                         slots=_count(document, "slots", path, 10000), drives=_count(document, "drives", path, 64),
                         media_type=media_type, capacity_bytes=capacity, pools=_pools(document, path),
                         media_path=media_path, vault_destination=destination, s3=s3)


def _pools(document: dict, path: str) -> dict[str, PoolConfig]:
    pools = document.get("pools")
    if not isinstance(pools, dict) or not pools:
        raise LibraryConfigError(path, "pools", "must be an object with at least one pool")
    parsed = {}
    for name, pool in sorted(pools.items()):
        where = "pools.%s" % name
        if not _NAME_RE.match(name) or not isinstance(pool, dict):
            raise LibraryConfigError(path, where, "must be an object named with letters, digits, '_', '.' or '-'")
        days = pool.get("retention_days")
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise LibraryConfigError(path, where + ".retention_days", "must be a whole number of days")
        prefix = pool.get("barcode_prefix") or re.sub(r"[^A-Z0-9]", "", name.upper())[:2] or "P"
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise LibraryConfigError(path, where + ".barcode_prefix", "must be 1-4 capital letters or digits")
        for flag in ("worm", "vault"):
            if not isinstance(pool.get(flag, False), bool):
                raise LibraryConfigError(path, "%s.%s" % (where, flag), "must be true or false")
        parsed[name] = PoolConfig(name, days, prefix, bool(pool.get("worm")), bool(pool.get("vault")))
    return parsed


def _capacity(media: dict, path: str) -> int:
    """capacity_bytes, or capacity_mb / capacity_gb as tape vendors count (10^6, 10^9)."""
    for key, unit in (("capacity_bytes", 1), ("capacity_mb", 10 ** 6), ("capacity_gb", 10 ** 9)):
        if key in media:
            value = media[key]
            if not isinstance(value, int) or isinstance(value, bool) or value * unit < 1024 * 1024:
                raise LibraryConfigError(path, "media." + key, "must be an integer of at least 1 MiB")
            return value * unit
    raise LibraryConfigError(path, "media.capacity_bytes", "is missing")


def _string(document: dict, key: str, path: str, scope: str = "") -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise LibraryConfigError(path, scope + key, "must be a non-empty string")
    return value


def _count(document: dict, key: str, path: str, maximum: int) -> int:
    value = document.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        raise LibraryConfigError(path, key, "must be an integer from 1 to %d" % maximum)
    return value
