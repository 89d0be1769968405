# -*- coding: utf-8 -*-
"""Replica key pairs in the controller's credential store: safe file names, one ed25519 pair per
replicated dataset, made once, check mode, a lost public half derived again, nothing removed."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ansible_collections.restorable.backup.plugins.plugin_utils import replica_keys
from ansible_collections.restorable.backup.plugins.plugin_utils.replica_keys import (
    ReplicaKeyFailed, ReplicaKeys, key_path, read_replica_key, replicated_datasets, safe_name)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def files(root) -> list:
    """Every path below root with its mode, size and modification time: equal lists, nothing written."""
    return sorted((str(p), p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime_ns) for p in Path(root).rglob("*"))


# -- names ----------------------------------------------------------------------------------------


def test_plain_names_stay_readable():
    assert safe_name("web01") == "web01" and safe_name("pg_main-2") == "pg_main-2"


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../../etc", "Web01", "web 01", "web%01", "wéb", "x" * 400, "-"])
def test_any_name_is_one_file_name_of_its_own(name):
    safe = safe_name(name)
    assert "/" not in safe and safe not in (".", "..") and not safe.startswith(".") and 0 < len(safe) <= 128
    assert set(safe) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-%ABCDEF")


def test_names_differing_in_case_or_escapes_stay_apart_also_on_case_insensitive_stores():
    names = ["web01", "Web01", "WEB01", "web%57", "web.01", "web%2E01", "x" * 400, "x" * 401, "x" * 127 + "y"]
    assert len({safe_name(n).casefold() for n in names}) == len(names)


def test_keys_live_below_the_store_replica_directory(tmp_path):
    path = key_path(str(tmp_path), "../../evil", "data")
    assert os.path.dirname(os.path.dirname(path)) == str(tmp_path / "replica")
    assert key_path("~/store", "web01", "data") == os.path.expanduser("~/store/replica/web01/data")


# -- pairs ----------------------------------------------------------------------------------------


def test_pairs_are_made_once_private_and_named(tmp_path):
    store = str(tmp_path / "store")
    made = ReplicaKeys(store).ensure([("web01", "data"), ("Web 01", "data")])
    assert made.created == ["web01/data", "Web 01/data"] and made.changed
    key = read_replica_key(store, "web01", "data")
    assert key["private"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert key["public"].startswith("ssh-ed25519 ") and key["public"].endswith(" restorable-replica:web01/data")
    assert "\n" not in key["public"]
    path = key_path(store, "Web 01", "data")
    assert mode(path) == 0o600
    assert [mode(p) for p in (os.path.dirname(path), os.path.dirname(os.path.dirname(path)), store)] == [0o700] * 3
    assert read_replica_key(store, "Web 01", "data")["public"].endswith(" restorable-replica:Web 01/data")
    before = files(tmp_path)
    again = ReplicaKeys(store).ensure([("web01", "data"), ("Web 01", "data")])
    assert again.created == [] and again.present == ["web01/data", "Web 01/data"] and not again.changed
    assert files(tmp_path) == before
    assert not [name for name in os.listdir(os.path.dirname(path)) if name.startswith(".")]


def test_check_mode_writes_nothing(tmp_path):
    made = ReplicaKeys(str(tmp_path / "store"), check_mode=True).ensure([("web01", "data")])
    assert made.created == ["web01/data"] and list(tmp_path.iterdir()) == []


def test_a_lost_public_half_is_derived_from_the_private_key(tmp_path):
    store = str(tmp_path)
    ReplicaKeys(store).ensure([("web01", "data")])
    public = read_replica_key(store, "web01", "data")["public"]
    os.unlink(key_path(store, "web01", "data") + ".pub")
    assert read_replica_key(store, "web01", "data") is None
    checked = ReplicaKeys(store, check_mode=True).ensure([("web01", "data")])
    assert checked.repaired == ["web01/data"] and read_replica_key(store, "web01", "data") is None
    assert ReplicaKeys(store).ensure([("web01", "data")]).repaired == ["web01/data"]
    assert read_replica_key(store, "web01", "data")["public"] == public


def test_pairs_of_other_datasets_are_never_removed(tmp_path):
    store = str(tmp_path)
    ReplicaKeys(store).ensure([("web01", "old")])
    ReplicaKeys(store).ensure([("web01", "new")])
    assert read_replica_key(store, "web01", "old") is not None


def test_no_ssh_keygen_is_a_clear_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(replica_keys.shutil, "which", lambda name: None)
    with pytest.raises(ReplicaKeyFailed, match="ssh-keygen is not installed on the controller"):
        ReplicaKeys(str(tmp_path)).ensure([("web01", "data")])


def test_reading_a_missing_pair_gives_none(tmp_path):
    assert read_replica_key(str(tmp_path), "web01", "data") is None


# -- which datasets -------------------------------------------------------------------------------


def cdp(**fields) -> dict:
    dataset = {"tier": "cdp", "source": {"type": "btrfs", "subvolume": "/srv/data"}, "interval_minutes": 5, "replica": "rep"}
    return dict(dataset, **fields)


def test_enabled_btrfs_cdp_datasets_with_a_replica_by_store():
    documents = {
        "web02": {"restorable_datasets": {"data": cdp()}},
        "web01": {"restorable_datasets": {
            "data": cdp(), "off": cdp(enabled=False), "local": cdp(replica=None),
            "pg": cdp(source={"type": "postgresql", "data_directory": "/var/lib/pg"}, replica=None, wal_archive="w"),
            "files": {"tier": "agent", "paths": ["/etc"]}}},
        "db01": {"restorable_controller": {"credential_store": "/srv/store"}, "restorable_datasets": {"b": cdp(), "a": cdp()}},
        "bare": {},
    }
    assert replicated_datasets(documents) == {
        "/srv/store": [("db01", "a"), ("db01", "b")],
        replica_keys.DEFAULT_STORE: [("web01", "data"), ("web02", "data")],
    }
