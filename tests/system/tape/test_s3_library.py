# -*- coding: utf-8 -*-
# Private to restorable.backup: the `s3` tape media driver against a real S3 API (moto server).
"""Cartridges as objects of an Object Lock bucket on moto, written and read by the driver with the
library's own keys.

What moto server (5.2) enforces, probed with the collection's client before these tests were written:
- enforced: deleting a version under COMPLIANCE retention is refused (AccessDenied), with or without
  x-amz-bypass-governance-retention; a retention that has expired no longer blocks the delete; an
  overwrite or a plain DELETE only adds a version or a delete marker (the locked version stays); GET
  of an object in DEEP_ARCHIVE is refused (InvalidObjectState) until RestoreObject, and a restored
  one reads; CopyObject carrying Object Lock headers wants Content-MD5 (the driver locks the copy
  by a retention PUT instead); If-None-Match: * on PUT.
- NOT enforced: shortening a COMPLIANCE retention or turning it into GOVERNANCE is accepted (real
  S3 refuses both; the driver never shortens, see test_protect_never_shortens_a_lock); RestoreObject
  completes at once (AWS: hours; the driver's "recall in progress" path is therefore not exercised
  here); GetObjectRetention answers with the object itself (the driver reads retention from HEAD,
  as real S3 also reports it); any key pair is accepted (no IAM): "the library's own keys" here
  means its environment file and its own client, not a restricted IAM user.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import time

import pytest
import s3_tape_helpers as helpers

from ansible_collections.restorable.backup.plugins.module_utils.storage.s3api import S3Client, S3Error
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.media import TapeError
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.s3 import (STAGING_DIR, STATE_FILE,
                                                                                        S3MediaStore)

BARCODE = "DA0001L8"
UTC = datetime.timezone.utc


class Clock:
    """now() of the store: the real time, so that Object Lock dates mean what moto compares them with."""

    @staticmethod
    def now() -> datetime.datetime:
        return datetime.datetime.now(UTC)


@pytest.fixture
def tape_s3(moto_server, tmp_path):
    """(bucket, settings, state_dir): an Object Lock bucket and the library's own settings."""
    bucket = helpers.lock_bucket(moto_server)
    env = helpers.env_file(tmp_path / "etc" / "tape-vtl01.env", moto_server)
    return bucket, helpers.s3_settings(moto_server, bucket, env), tmp_path / "state"


def new_store(tape_s3, slots: int = 4) -> S3MediaStore:
    _bucket, settings, state_dir = tape_s3
    store = S3MediaStore(settings, str(state_dir), slots, "ironmountain-fra", Clock.now)
    store.ensure()
    return store


def own_client(tape_s3) -> S3Client:
    """The library's keys through the collection's client: what a compromised library host could do."""
    _bucket, settings, _state = tape_s3
    return S3Client(settings["endpoint"], settings["bucket"], settings["region"], settings["env_file"])


def write(store: S3MediaStore, barcode: str, data: bytes, slot: int = 1) -> None:
    store.create(barcode, {"kind": "slot", "slot": slot})
    store.move(barcode, {"kind": "drive", "drive": 0})
    with store.open_append(barcode) as writer:
        for start in range(0, len(data), 1 << 20):
            writer.write(data[start:start + (1 << 20)])
        assert store.size(barcode) == len(data)  # the staging file, before the upload
    store.move(barcode, {"kind": "slot", "slot": slot})


def same_second(reported: str, asked: datetime.datetime) -> bool:
    """A retain-until date S3 reports is the one asked for, rounded up to the second."""
    lock = datetime.datetime.fromisoformat(reported.replace("Z", "+00:00"))
    return datetime.timedelta(0) <= lock - asked < datetime.timedelta(seconds=1)


def read(store: S3MediaStore, barcode: str, offset: int = 0) -> bytes:
    with store.open_read(barcode, offset) as reader:
        return reader.read()


def test_a_cartridge_is_uploaded_once_when_it_leaves_the_drive_and_read_back(tape_s3, moto_server):
    bucket, settings, state_dir = tape_s3
    store = new_store(tape_s3)
    data = os.urandom(3 * (1 << 20) + 12345)
    write(store, BARCODE, data)
    assert read(store, BARCODE) == data and read(store, BARCODE, 1000000) == data[1000000:]
    assert store.size(BARCODE) == len(data) and read(store, BARCODE, len(data)) == b""
    assert store.list() == {BARCODE: {"kind": "slot", "slot": 1}}
    assert [v["Size"] for v in helpers.versions(moto_server, bucket, "vtl01/tapes/" + BARCODE)] == [len(data)]
    with pytest.raises(TapeError, match="DA0001L8 is closed: it was uploaded"):
        store.open_append(BARCODE)
    with pytest.raises(TapeError, match="already exists"):
        store.create(BARCODE, {"kind": "slot", "slot": 2})
    assert not os.listdir(state_dir / STAGING_DIR)  # staging files go once uploaded
    # Nothing the library keeps or says holds the secret key.
    for path in helpers.files_below(state_dir):
        assert moto_server.secret_key not in path.read_text(errors="replace")


def test_an_overwrite_through_the_api_does_not_change_what_is_read(tape_s3, moto_server):
    bucket, _settings, _state = tape_s3
    store = new_store(tape_s3)
    write(store, BARCODE, b"label and members" * 1000)
    client = own_client(tape_s3)
    key = store.key(BARCODE)
    assert client.put(key, b"forged").status == 200
    assert client.delete(key).status == 204  # only a delete marker
    assert read(store, BARCODE) == b"label and members" * 1000
    assert len(helpers.versions(moto_server, bucket, key)) == 2


def test_a_worm_cartridge_cannot_be_deleted_with_the_librarys_own_keys(tape_s3):
    store = new_store(tape_s3)
    until = Clock.now() + datetime.timedelta(days=35)
    store.create(BARCODE, {"kind": "drive", "drive": 0})
    with store.open_append(BARCODE) as writer:
        store.protect(BARCODE, until, closed=False)  # while in the drive: locked right after the upload
        writer.write(b"x" * 4096)
    protection = store.protection(BARCODE)
    assert protection["mode"] == "COMPLIANCE" and protection["storage_class"] == "STANDARD"
    assert same_second(protection["until"], until)
    client = own_client(tape_s3)
    with pytest.raises(S3Error) as refused:
        client.delete(store.key(BARCODE), protection["version"])
    assert refused.value.code == "AccessDenied"
    with pytest.raises(TapeError, match=r"DA0001L8 cannot be erased: S3 refused to delete version .*AccessDenied"):
        store.erase(BARCODE)
    assert client.put(store.key(BARCODE), b"y" * 4096).status == 200
    assert read(store, BARCODE) == b"x" * 4096


def test_protect_never_shortens_a_lock(tape_s3):
    store = new_store(tape_s3)
    write(store, BARCODE, b"z" * 1000)
    later = Clock.now() + datetime.timedelta(days=30)
    store.protect(BARCODE, later, closed=True)
    store.protect(BARCODE, later - datetime.timedelta(days=20), closed=True)
    assert same_second(store.protection(BARCODE)["until"], later)


def test_an_expired_lock_lets_erase_remove_every_version_and_the_cartridge_is_written_again(tape_s3, moto_server):
    bucket, _settings, _state = tape_s3
    store = new_store(tape_s3)
    write(store, BARCODE, b"old" * 1000)
    store.protect(BARCODE, Clock.now() + datetime.timedelta(seconds=2), closed=True)
    own_client(tape_s3).put(store.key(BARCODE), b"another version")
    time.sleep(3.5)
    store.erase(BARCODE)
    assert helpers.versions(moto_server, bucket, store.key(BARCODE)) == []
    assert store.size(BARCODE) == 0 and read(store, BARCODE) == b""
    with store.open_append(BARCODE) as writer:
        writer.write(b"new" * 10)
    assert read(store, BARCODE) == b"new" * 10 and store.protection(BARCODE)["mode"] is None


def test_a_vaulted_cartridge_is_offline_until_recalled_and_keeps_its_lock(tape_s3):
    store = new_store(tape_s3)
    data = os.urandom(200000)
    write(store, BARCODE, data, slot=3)
    until = Clock.now() + datetime.timedelta(days=35)
    store.protect(BARCODE, until, closed=True)
    store.move(BARCODE, {"kind": "vault", "vault": "ironmountain-fra"})
    assert store.list() == {BARCODE: {"kind": "vault", "vault": "ironmountain-fra"}}
    vaulted = store.protection(BARCODE)
    assert vaulted["storage_class"] == "DEEP_ARCHIVE" and vaulted["mode"] == "COMPLIANCE"
    with pytest.raises(TapeError, match="DA0001L8 is in the vault .*DEEP_ARCHIVE.*recall it first"):
        read(store, BARCODE)
    store.move(BARCODE, {"kind": "slot", "slot": 2})
    recalled = store.protection(BARCODE)
    assert recalled["storage_class"] == "STANDARD" and recalled["mode"] == "COMPLIANCE"
    assert same_second(recalled["until"], until) and recalled["version"] != vaulted["version"]
    assert store.list() == {BARCODE: {"kind": "slot", "slot": 2}} and read(store, BARCODE) == data


def test_the_vault_is_the_storage_class_the_bucket_reports(tape_s3, moto_server):
    bucket, _settings, _state = tape_s3
    store = new_store(tape_s3)
    write(store, BARCODE, b"a" * 100)
    # A lifecycle rule (or an operator) moved the very version the library reads.
    version = store.protection(BARCODE)["version"]
    moto_server.client().copy_object(Bucket=bucket, Key=store.key(BARCODE), StorageClass="DEEP_ARCHIVE",
                                     CopySource={"Bucket": bucket, "Key": store.key(BARCODE), "VersionId": version})
    assert store.list()[BARCODE] == {"kind": "slot", "slot": 1}  # another version: not the one read
    state = json.loads((tape_s3[2] / STATE_FILE).read_text())
    state["cartridges"][BARCODE]["version"] = helpers.versions(moto_server, bucket, store.key(BARCODE))[0]["VersionId"]
    (tape_s3[2] / STATE_FILE).write_text(json.dumps(state))
    assert store.list()[BARCODE] == {"kind": "vault", "vault": "ironmountain-fra"}


def test_a_lost_state_directory_adopts_the_buckets_cartridges(tape_s3, tmp_path):
    store = new_store(tape_s3)
    write(store, "DA0001L8", b"one" * 100, slot=1)
    write(store, "DA0002L8", b"two" * 100, slot=2)
    store.move("DA0002L8", {"kind": "vault", "vault": "ironmountain-fra"})
    _bucket, settings, _state = tape_s3
    fresh = S3MediaStore(settings, str(tmp_path / "new-state"), 4, "ironmountain-fra", Clock.now)
    fresh.ensure()
    assert fresh.list() == {"DA0001L8": {"kind": "slot", "slot": 1},
                            "DA0002L8": {"kind": "vault", "vault": "ironmountain-fra"}}
    assert read(fresh, "DA0001L8") == b"one" * 100


def test_settings_and_keys_are_checked_without_showing_the_secret(tape_s3, moto_server, tmp_path):
    _bucket, settings, state_dir = tape_s3
    with pytest.raises(TapeError, match=r"needs s3\.bucket"):
        S3MediaStore(dict(settings, bucket=""), str(state_dir), 4, "v", Clock.now)
    loose = tmp_path / "loose.env"
    loose.write_text("AWS_ACCESS_KEY_ID=x\nAWS_SECRET_ACCESS_KEY=%s\n" % moto_server.secret_key)
    os.chmod(loose, 0o644)
    store = S3MediaStore(dict(settings, env_file=str(loose)), str(state_dir), 4, "v", Clock.now)
    with pytest.raises(TapeError) as failed:
        store.ensure()
    assert str(loose) in str(failed.value) and moto_server.secret_key not in str(failed.value)


# -- the library over the s3 driver ----------------------------------------------------------------

POINT = "20261203T181500.123456Z"


def library_config(tape_s3, path) -> str:
    """A library configuration as apply writes it (spec: Library configuration), 1 MiB cartridges."""
    _bucket, settings, state_dir = tape_s3
    document = {"format": 1, "name": "vtl01", "driver": "s3", "state_dir": str(state_dir), "slots": 6, "drives": 1,
                "media": {"type": "LTO-8", "capacity_bytes": 1 << 20},
                "pools": {"daily": {"retention_days": 35, "barcode_prefix": "DA", "worm": True, "vault": True}},
                "vault": {"destination": "ironmountain-fra"}, "s3": settings}
    path.write_text(json.dumps(document))
    return str(path)


def test_an_s3_library_spans_commits_reads_vaults_recalls_and_rebuilds_its_catalog(tape_s3, moto_server, tmp_path):
    bucket, _settings, state_dir = tape_s3
    config = library_config(tape_s3, tmp_path / "vtl01.json")
    data = os.urandom(2500000)
    meta = {"group": "pgarr", "point": POINT, "volume": "/srv/pg", "volume_index": 0, "kind": "full", "base": None,
            "chain": POINT, "position": 1}
    with open_library(config) as library:
        library.ensure()
        stream = library.write_stream("daily", meta, io.BytesIO(data))
        library.commit_point({"group": "pgarr", "point": POINT, "time": "2026-12-03T18:15:00Z", "kind": "full",
                              "chain": POINT, "position": 1, "base": None, "pool": "daily", "streams": [stream["id"]],
                              "manifest": {"volumes": ["/srv/pg"]}})
        barcodes = [part["barcode"] for part in stream["parts"]]
        assert barcodes == ["DA0001L8", "DA0002L8", "DA0003L8"] and stream["bytes"] == len(data)
        sink = io.BytesIO()
        library.read_stream(stream["id"], sink)
        assert sink.getvalue() == data
        for barcode in barcodes:  # each cartridge one object version, locked in compliance mode
            assert library.store.protection(barcode)["mode"] == "COMPLIANCE"
            assert len(helpers.versions(moto_server, bucket, library.store.key(barcode))) == 1

        assert sorted(library.vault()) == barcodes
        assert {library.store.protection(b)["storage_class"] for b in barcodes} == {"DEEP_ARCHIVE"}
        with pytest.raises(TapeError, match="in the vault"):
            library.read_stream(stream["id"], io.BytesIO())
        assert sorted(library.recall(barcodes)) == barcodes
        sink = io.BytesIO()
        library.read_stream(stream["id"], sink)
        assert sink.getvalue() == data

    # The host lost its state directory: catalog and driver state come back from the bucket alone.
    shutil.rmtree(state_dir)
    with open_library(config) as library:
        library.ensure()
        report = library.rebuild_catalog()
        assert sorted(report["cartridges"]) == barcodes and not report["unreadable"]
        assert [point["point"] for point in library.points("pgarr")] == [POINT]
        sink = io.BytesIO()
        library.read_stream(stream["id"], sink)
        assert sink.getvalue() == data


def test_a_bucket_must_keep_versions_and_worm_needs_object_lock(tape_s3, moto_server):
    _bucket, settings, state_dir = tape_s3
    plain = helpers.lock_bucket(moto_server, "plain")  # a name of its own; recreated below without Object Lock
    admin = moto_server.client()
    admin.delete_bucket(Bucket=plain)
    admin.create_bucket(Bucket=plain)
    store = S3MediaStore(dict(settings, bucket=plain), str(state_dir), 4, "v", Clock.now)
    with pytest.raises(TapeError, match="has no versioning: the s3 tape driver reads the versions it uploaded"):
        store.ensure()
    admin.put_bucket_versioning(Bucket=plain, VersioningConfiguration={"Status": "Enabled"})
    store.ensure()
    write(store, BARCODE, b"not worm" * 10)
    with pytest.raises(TapeError, match="Object Lock until .* refused: .*WORM pools need a bucket created with Object"):
        store.protect(BARCODE, Clock.now() + datetime.timedelta(days=1), closed=True)
    assert read(store, BARCODE) == b"not worm" * 10
