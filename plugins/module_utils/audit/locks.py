# -*- coding: utf-8 -*-
# Private to restorable.backup: immutability read back from the storage itself, not from the
# policy: an S3 bucket's Object Lock configuration and the retention of the objects a job wrote;
# the WORM protection of tape cartridges (immutable file attributes, or S3 object retention).
from __future__ import annotations

import datetime
from typing import Any

from ..common.durations import parse_time
from ..core.jobspec import JobConfig
from ..storage.s3api import S3Client, S3Error
from ..storage.tape.library import open_library
from ..storage.tape.media import TapeError
from .jobs import S3Location, s3_client

SAMPLED_OBJECTS = 5  # snapshot objects whose retention is read back (one HEAD each)


def lock_entry(kind: str, verified: bool, mode: str | None, days: int | None, detail: str) -> dict[str, Any]:
    return {"kind": kind, "verified": verified, "mode": mode, "days": days, "detail": detail}


def s3_object_lock(config: JobConfig, now: datetime.datetime) -> dict[str, Any]:
    """The bucket's Object Lock configuration and the retention of the newest snapshot objects."""
    try:
        client, location = s3_client(config)
    except S3Error as exc:
        return lock_entry("s3_object_lock", False, None, None, "cannot read the lock: %s" % exc)
    try:
        return _read_s3_lock(client, location, now)
    except S3Error as exc:
        return lock_entry("s3_object_lock", False, None, None, "cannot read the lock of bucket %s: %s" % (location.bucket, exc))
    finally:
        client.close()


def _read_s3_lock(client: S3Client, location: S3Location, now: datetime.datetime) -> dict[str, Any]:
    bucket = location.bucket
    lock = client.object_lock_configuration()
    mode = (lock.get("mode") or "").upper() or None
    days = int(lock["days"]) if (lock.get("days") or "").isdigit() else (int(lock["years"]) * 365 if (lock.get("years") or "").isdigit() else None)
    if lock.get("enabled") != "Enabled":
        return lock_entry("s3_object_lock", False, None, None, "bucket %s has no Object Lock" % bucket)
    if not mode:
        return lock_entry("s3_object_lock", False, None, None,
                          "bucket %s has Object Lock enabled but no default retention rule" % bucket)
    objects = [e["key"] for e in client.list(location.key("snapshots/"))][-SAMPLED_OBJECTS:]
    if not objects:
        return lock_entry("s3_object_lock", False, mode, days, "bucket %s: no snapshot written yet to read a retention from" % bucket)
    unlocked = []
    for key in objects:
        head = client.head(key)
        until = parse_time(head.headers.get("x-amz-object-lock-retain-until-date"))
        if head.status != 200 or not head.headers.get("x-amz-object-lock-mode") or until is None or until <= now:
            unlocked.append(key.rsplit("/", 1)[-1][:8])
    if unlocked:
        return lock_entry("s3_object_lock", False, mode, days, "bucket %s: %d of %d snapshot object(s) carry no retention (%s)" % (
            bucket, len(unlocked), len(objects), ", ".join(unlocked)))
    return lock_entry("s3_object_lock", True, mode, days, "bucket %s: %s retention of %s day(s); %d snapshot object(s) read back are retained" % (
        bucket, mode, days if days is not None else "?", len(objects)))


def tape_library(config_path: str, now: datetime.datetime) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the library's cartridges, its WORM lock entry or None when no pool is WORM)."""
    try:
        library = open_library(config_path)
        inventory = library.inventory()
        cartridges = []
        unprotected = []
        for cart in inventory["cartridges"]:
            protection = library.store.protection(cart["barcode"]) if cart.get("worm") and cart.get("used_bytes") else {}
            until = protection.get("until")
            cartridges.append({"barcode": cart["barcode"], "pool": cart.get("pool"), "location": _location(cart.get("location") or {}),
                               "worm": bool(cart.get("worm")), "retain_until": until, "last_written": cart.get("last_written"),
                               "used_bytes": cart.get("used_bytes")})
            if protection and not _protected(protection, now):
                unprotected.append(cart["barcode"])
    except (TapeError, OSError, ValueError) as exc:
        return {"error": "cannot read library %s: %s" % (config_path, exc), "cartridges": []}, \
            lock_entry("worm_cartridge", False, None, None, "cannot read the library: %s" % exc)
    worm = [c for c in cartridges if c["worm"] and c["used_bytes"]]
    if not any(pool.worm for pool in library.config.pools.values()):
        return {"cartridges": cartridges}, None
    if unprotected:
        lock = lock_entry("worm_cartridge", False, None, None, "%d written WORM cartridge(s) not protected: %s" % (
            len(unprotected), ", ".join(unprotected)))
    elif not worm:
        lock = lock_entry("worm_cartridge", False, None, None, "no WORM cartridge written yet")
    else:
        lock = lock_entry("worm_cartridge", True, "WORM", None, "%d written WORM cartridge(s) protected until their retention ends" % len(worm))
    return {"cartridges": cartridges}, lock


def _location(where: dict[str, Any]) -> str:
    if where.get("kind") == "vault":
        return "vault %s" % where.get("vault")
    if where.get("kind") in ("slot", "drive"):
        return "%s %s" % (where["kind"], where.get(where["kind"]))
    return str(where.get("kind") or "unknown")


def _protected(protection: dict[str, Any], now: datetime.datetime) -> bool:
    """Directory driver: the file is immutable or append-only; S3 driver: the version is retained."""
    if "immutable" in protection:
        return bool(protection["immutable"] or protection.get("append_only"))
    until = parse_time(protection.get("until"))
    return bool(protection.get("mode")) and until is not None and until > now
