# -*- coding: utf-8 -*-
"""WAL names and positions, the local store's contract (idempotent retries, no replacement,
verified reads, crash leftovers), the SigV4 signature of the S3 store, and the SFTP store's
parsing of what its client prints."""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal import names, s3, sftp
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.local import LocalStore
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.store import (
    ChecksumMismatch, Conflict, Missing, StoreError, parse_store)

MB16 = 16 << 20
SEG = "000000010000000A000000FF"


def test_positions_follow_the_segment_size():
    assert names.position(SEG, MB16) == 0xA * 256 + 0xFF
    assert names.next_segment(SEG, MB16) == "000000010000000B00000000"
    assert names.next_segment("000000020000000000000FFF", 1 << 20) == "000000020000000100000000"
    assert names.segment_name(3, names.position(SEG, MB16), MB16) == "000000030000000A000000FF"
    assert names.previous_segment("000000010000000000000000", MB16) is None
    assert names.previous_segment("000000010000000100000000", MB16) == "0000000100000000000000FF"


def test_wal_names_are_segments_histories_partials_and_backup_files_only():
    good = [SEG, "00000002.history", SEG + ".partial", SEG + ".00000028.backup"]
    bad = ["../" + SEG, SEG.lower(), SEG + ".sha256", "RECOVERYXLOG", "", SEG + "/x", ".%s.12.tmp" % SEG]
    assert [names.is_wal_name(n) for n in good] == [True] * 4
    assert [names.is_wal_name(n) for n in bad] == [False] * len(bad)
    assert names.is_history("00000002.history") and names.is_backup_history(SEG + ".00000028.backup")


def test_a_history_file_names_each_parent_and_switch_point():
    text = "1\t0/3000158\tno recovery target specified\n\n2\t1/A0000000\tbefore 2026-12-01 10:00:00+00\n"
    assert names.parse_history(text) == [(1, 0x3000158, "no recovery target specified"),
                                         (2, 0x1A0000000, "before 2026-12-01 10:00:00+00")]
    assert names.lsn_text(names.lsn_value("16/B374D848")) == "16/B374D848"


def test_a_segment_size_postgresql_cannot_have_is_refused():
    with pytest.raises(ValueError, match="power of two"):
        names.position(SEG, 3 << 20)


def test_store_settings_are_checked_field_by_field():
    assert parse_store({"type": "local", "path": "/srv"}, "store") == {"type": "local", "path": "/srv"}
    with pytest.raises(ValueError, match=r"^store\.identity_file is required for a sftp store$"):
        parse_store({"type": "sftp", "host": "h", "user": "u", "path": "/p", "known_hosts_file": "/k"}, "store")
    with pytest.raises(ValueError, match=r"^store: unknown option secret_key$"):
        parse_store({"type": "s3", "endpoint": "e", "bucket": "b", "region": "r", "env_file": "/e", "secret_key": "x"},
                    "store")
    with pytest.raises(ValueError, match=r"^store\.port: expected an integer$"):
        parse_store({"type": "sftp", "host": "h", "user": "u", "path": "/p", "identity_file": "/i",
                     "known_hosts_file": "/k", "port": "22"}, "store")
    with pytest.raises(ValueError, match=r"^w\.type: expected one of local, sftp, s3, got 'nfs'$"):
        parse_store({"type": "nfs"}, "w")


# -- the local store -------------------------------------------------------------------------------

def segment(tmp_path, name: str = SEG, data: bytes = b"") -> str:
    path = tmp_path / "pg_wal" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data or os.urandom(4096))
    return str(path)


def test_put_stores_the_file_and_its_sha256_beside_it(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    source = segment(tmp_path)
    digest = store.put(SEG, source)
    assert digest == hashlib.sha256(open(source, "rb").read()).hexdigest()
    assert (tmp_path / "store" / (SEG + ".sha256")).read_text() == "%s  %s\n" % (digest, SEG)
    assert sorted(os.listdir(tmp_path / "store")) == [SEG, SEG + ".sha256"], "no temporary file is left"
    assert store.list() == [SEG] and store.check(SEG) == digest


def test_a_retry_with_the_same_content_succeeds_other_content_is_refused(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    source = segment(tmp_path, data=b"a" * 100)
    first = store.put(SEG, source)
    assert store.put(SEG, source) == first
    other = tmp_path / "other"
    other.write_bytes(b"b" * 100)
    with pytest.raises(Conflict, match="already with other content"):
        store.put(SEG, str(other))
    assert open(tmp_path / "store" / SEG, "rb").read() == b"a" * 100


def test_a_segment_stored_without_its_checksum_file_is_completed_by_the_retry(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    source = segment(tmp_path)
    store.put(SEG, source)
    os.unlink(tmp_path / "store" / (SEG + ".sha256"))
    assert store.put(SEG, source) == store.check(SEG)


def test_get_verifies_the_checksum_and_never_leaves_a_damaged_copy(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    store.put(SEG, segment(tmp_path, data=b"x" * 5000))
    destination = tmp_path / "pg_wal" / "RECOVERYXLOG"
    store.get(SEG, str(destination))
    assert destination.read_bytes() == b"x" * 5000
    destination.unlink()
    with open(tmp_path / "store" / SEG, "r+b") as handle:
        handle.seek(100)
        handle.write(b"y")
    with pytest.raises(ChecksumMismatch, match="does not match its checksum"):
        store.get(SEG, str(destination))
    assert not destination.exists() and os.listdir(tmp_path / "pg_wal") == [SEG]
    with pytest.raises(ChecksumMismatch):
        store.check(SEG)


def test_a_missing_file_is_missing_not_an_error(tmp_path):
    store = LocalStore(str(tmp_path / "nothing-yet"))
    assert store.list() == []
    with pytest.raises(Missing):
        store.get("00000002.history", str(tmp_path / "h"))
    with pytest.raises(Missing):
        store.read(SEG)


def test_list_is_sorted_and_starts_after_a_name_delete_removes_both_files(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    all_names = ["000000010000000000000003", "000000010000000000000001", "00000002.history",
                 "000000010000000000000002.00000028.backup", "000000020000000000000003"]
    for name in all_names:
        store.put(name, segment(tmp_path, name))
    (tmp_path / "store" / ".leftover.tmp").write_text("x")
    assert store.list() == sorted(all_names)
    assert store.list("000000010000000000000002") == ["000000010000000000000002.00000028.backup",
                                                      "000000010000000000000003", "00000002.history",
                                                      "000000020000000000000003"]
    store.delete(["000000010000000000000001", "000000010000000000000009"])
    assert "000000010000000000000001" not in store.list()
    assert not (tmp_path / "store" / "000000010000000000000001.sha256").exists()


def test_no_name_can_leave_the_store_directory(tmp_path):
    store = LocalStore(str(tmp_path / "store"))
    with pytest.raises(StoreError, match="is not a WAL file name"):
        store.put("../escape", segment(tmp_path))


# -- S3 --------------------------------------------------------------------------------------------

def test_objects_live_below_the_prefix_path_style_unless_on_aws():
    store = s3.S3Store("http://127.0.0.1:9000", "wal", "/fleet/db01/wal/pgmain/", "us-east-1", "/env")
    assert store.key(SEG) == "fleet/db01/wal/pgmain/" + SEG
    assert store.client.path(store.key(SEG)).startswith("/wal/fleet/")
    aws = s3.S3Store("https://s3.eu-central-1.amazonaws.com", "wal", "", "eu-central-1", "/env")
    assert aws.client.host == "wal.s3.eu-central-1.amazonaws.com" and aws.client.path(aws.key(SEG)) == "/" + SEG


# -- SFTP ------------------------------------------------------------------------------------------

def test_sftp_batch_paths_are_quoted_and_refused_when_they_cannot_be():
    assert sftp.quoted("/srv/wal store") == '"/srv/wal store"'
    with pytest.raises(StoreError, match="cannot carry"):
        sftp.quoted('/srv/"x"')
    assert sftp.parents("/srv/repo/wal") == ["/srv", "/srv/repo", "/srv/repo/wal"]


def test_the_time_of_an_sftp_long_listing_is_read_to_the_minute():
    now = time.mktime((2026, 12, 3, 15, 0, 0, 0, 0, -1))
    line = "-rw-r-----    ? postgres postgres 16777216 Dec  3 14:48 /srv/wal/%s" % SEG
    assert sftp.long_listing_time(line, now) == time.mktime((2026, 12, 3, 14, 48, 0, 0, 0, -1))
    old = "-rw-r-----    ? postgres postgres 16777216 Jan  5  2025 /srv/wal/%s" % SEG
    assert sftp.long_listing_time(old, now) == time.mktime((2025, 1, 5, 0, 0, 0, 0, 0, -1))
