# -*- coding: utf-8 -*-
"""The S3 library with Object Lock end to end, at the tier level: the real ArrayDriver through the
Runner exports a 2-volume group to an S3-backed library (moto server, a bucket with Object Lock) whose
WORM pool vaults: the stream spans small cartridges, each uploaded once as one object version locked
in COMPLIANCE mode and then copied to the archive storage class; a second run exports incrementally
onto new cartridges (S3 objects take no appends). The array drill then refuses the vaulted
cartridges without recall and, with recall, restores the chain and passes. The library's own keys
cannot delete a locked cartridge version, neither through the library nor through its S3 client.

What moto does not enforce (see tests/system/tape/test_s3_library.py): RestoreObject completes at
once (the "recall in progress" path is not taken), any key pair is accepted (no IAM), shortening a
COMPLIANCE lock would be accepted (the driver never asks for it)."""
from __future__ import annotations

import datetime
import json

import pytest
import s3_tape_helpers as helpers
from array_helpers import MB, tree_digest, write_random

from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import run_drill
from ansible_collections.restorable.backup.plugins.module_utils.storage.s3api import S3Client, S3Error
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library, parse_iso
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.media import TapeError
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.s3 import STAGING_DIR, STATE_FILE
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.restore import restore_point

CAPACITY = 1 << 20  # 1 MiB cartridges: a 1.5 MB stream spans two
RETENTION_DAYS = 35
POOLS = {"daily": {"retention_days": RETENTION_DAYS, "barcode_prefix": "SA", "worm": True, "vault": True}}


def layer(record: dict, name: str) -> dict:
    return next(item for item in record["layers"] if item["name"] == name)


def lock_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def admin_versions(moto_server, bucket: str, key: str) -> list[dict]:
    """Every version of a cartridge's object as the administrator reads it: id, storage class, lock."""
    admin = moto_server.client()
    found = []
    for item in helpers.versions(moto_server, bucket, key):
        head = admin.head_object(Bucket=bucket, Key=key, VersionId=item["VersionId"])
        found.append({"version": item["VersionId"], "class": item.get("StorageClass", "STANDARD"),
                      "mode": head.get("ObjectLockMode"), "until": head.get("ObjectLockRetainUntilDate")})
    return found


def cartridges_of(records) -> list[str]:
    found: list[str] = []
    for record in records:
        for export in record.details["export"]:
            found += [barcode for barcode in export["cartridges"] if barcode not in found]
    return found


def test_an_s3_library_with_object_lock_exports_vaults_recalls_for_a_drill_and_refuses_deletes(
        dataset, s3_libraries, sandboxes, moto_server):
    ds = dataset("s3data", "s3logs")
    s3lib = s3_libraries(CAPACITY, pools=POOLS)
    config = ds.config(s3lib.config, chain_length=7)

    write_random(ds.volumes[0] / "blob0", 1500 * 1000)
    (ds.volumes[1] / "app.log").write_text("".join("line %d\n" % i for i in range(2000)))
    first = ds.run(config)
    assert first.ok, first.reason
    write_random(ds.volumes[0] / "blob1", 300 * 1000)
    (ds.volumes[1] / "app.log").write_text("".join("line %d\n" % i for i in range(3000)))
    second = ds.run(config)
    assert second.ok, second.reason
    digests = [tree_digest(ds.snapshot(volume, second.snapshot_id)) for volume in ds.volumes]

    # Exports: a full one spanning cartridges, then an incremental one on cartridges of its own.
    (full,), (incremental,) = first.details["export"], second.details["export"]
    assert (full["kind"], full["position"], incremental["kind"], incremental["base"], incremental["position"]) == \
        ("full", 1, "incremental", first.snapshot_id, 2)
    assert len(full["cartridges"]) >= 2 and incremental["bytes"] < 1 * MB
    assert not set(full["cartridges"]) & set(incremental["cartridges"])  # uploaded objects take no appends
    with open_library(str(s3lib.config)) as library:
        inventory = {cart["barcode"]: cart for cart in library.inventory()["cartridges"]}  # loads the catalog
        spanned = [library.catalog.stream(stream_id) for stream_id in full["streams"]]
        assert max(len(stream["parts"]) for stream in spanned) >= 2  # one volume's stream spans cartridges

    # Every cartridge written went to the vault at the end of its run, and each one is one uploaded
    # version (the one recorded and read), locked in COMPLIANCE mode until last written + retention.
    vaulted = first.details["library"]["vaulted"] + second.details["library"]["vaulted"]
    assert sorted(vaulted) == sorted(inventory) and set(cartridges_of([first, second])) <= set(vaulted)
    assert not list((s3lib.state_dir / STAGING_DIR).iterdir())  # every staging file was uploaded
    recorded = json.loads((s3lib.state_dir / STATE_FILE).read_text())["cartridges"]
    with open_library(str(s3lib.config)) as library:
        for barcode, cart in inventory.items():
            assert cart["location"] == {"kind": "vault", "vault": "ironmountain-fra"} and cart["worm"]
            protection = library.store.protection(barcode)
            assert protection["key"] == "%s/tapes/%s" % (s3lib.settings["prefix"], barcode)
            assert protection["version"] == recorded[barcode]["version"]
            assert (protection["mode"], protection["storage_class"]) == ("COMPLIANCE", "DEEP_ARCHIVE")
            expires = parse_iso(cart["last_written"]) + datetime.timedelta(days=RETENTION_DAYS)
            assert datetime.timedelta(0) <= lock_time(protection["until"]) - expires < datetime.timedelta(seconds=5)
            # The vault copied the version into DEEP_ARCHIVE (the copy locked like it); the uploaded
            # STANDARD version could not be deleted and stays, locked, until its lock expires.
            versions = admin_versions(moto_server, s3lib.bucket, protection["key"])
            assert sorted((v["version"] == protection["version"], v["class"], v["mode"]) for v in versions) == \
                [(False, "STANDARD", "COMPLIANCE"), (True, "DEEP_ARCHIVE", "COMPLIANCE")]

    # The drill without recall fails naming the vaulted cartridges the chain needs; nothing moves.
    needed = cartridges_of([first, second])
    params = ds.drill_params(s3lib.config, sandboxes.new(), checks=["catalog", "media", "freshness", "content"])
    refused = run_drill(params)
    assert refused["result"] == "failed"
    assert "in the vault" in refused["reason"] and "recall" in refused["reason"]
    assert all(barcode in refused["reason"] for barcode in needed), (needed, refused["reason"])
    with open_library(str(s3lib.config)) as library:
        assert all(library.store.protection(b)["storage_class"] == "DEEP_ARCHIVE" for b in needed)

    # With recall: RestoreObject and a copy back to STANDARD, then the chain is restored and checked.
    drill = run_drill(dict(params, recall=True, sandbox=str(sandboxes.new())))
    assert drill["result"] == "passed", drill["reason"]
    assert drill["recovery_point"]["id"] == second.snapshot_id
    for name in ("catalog", "media", "restore", "content"):
        assert layer(drill, name)["status"] == "ok", layer(drill, name)
    assert layer(drill, "catalog")["details"]["chain"] == [first.snapshot_id, second.snapshot_id]
    assert sorted(layer(drill, "media")["details"]["recalled"]) == sorted(needed)
    assert layer(drill, "content")["details"]["identical_to_snapshot"] == sorted(v.name for v in ds.volumes)
    assert all(barcode in layer(drill, "media")["message"] for barcode in needed)

    with open_library(str(s3lib.config)) as library:
        for barcode in needed:
            protection = library.store.protection(barcode)
            assert (protection["mode"], protection["storage_class"]) == ("COMPLIANCE", "STANDARD")
            # Upload, vault copy, recall copy: three versions, every one locked until it expires.
            versions = admin_versions(moto_server, s3lib.bucket, protection["key"])
            assert sorted((v["version"] == protection["version"], v["class"], v["mode"]) for v in versions) == \
                [(False, "DEEP_ARCHIVE", "COMPLIANCE"), (False, "STANDARD", "COMPLIANCE"),
                 (True, "STANDARD", "COMPLIANCE")]

        # The recalled chain restores what the second snapshot held.
        sandbox = sandboxes.new()
        restore_point(library, ds.name, second.snapshot_id, str(sandbox))
        assert [tree_digest(sandbox / volume.name) for volume in ds.volumes] == digests

        # The library's own keys cannot delete a locked cartridge version: not by media erase, not
        # by its S3 client; the recycle keeps every cartridge (nothing expired).
        barcode = needed[0]
        with pytest.raises(TapeError, match=r"%s cannot be erased: S3 refused to delete version .*AccessDenied"
                           % barcode):
            library.store.erase(barcode)
        own = S3Client(s3lib.settings["endpoint"], s3lib.settings["bucket"], s3lib.settings["region"],
                       s3lib.settings["env_file"])
        key = library.store.key(barcode)
        for version in admin_versions(moto_server, s3lib.bucket, key):
            with pytest.raises(S3Error) as denied:
                own.delete(key, version["version"])
            assert denied.value.code == "AccessDenied"
        kept = library.recycle({ds.name: set()})
        assert kept["recycled"] == [] and all("kept until" in kept["kept"][b] for b in needed)
        assert len(admin_versions(moto_server, s3lib.bucket, key)) == 3
        assert library.verify_stream(full["streams"][0])["cartridges"] == \
            [part["barcode"] for part in library.catalog.stream(full["streams"][0])["parts"]]
