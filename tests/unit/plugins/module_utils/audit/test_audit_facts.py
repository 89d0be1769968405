# -*- coding: utf-8 -*-
"""The host side of the fleet audit: the facts document of a host root (job identity, a copy that
no longer exists, the drill ledger's history per key, S3 repository locations)."""
from __future__ import annotations

import datetime
import json
import os

from ansible_collections.restorable.backup.plugins.module_utils.audit.facts import collect_host_facts, ledger_history
from ansible_collections.restorable.backup.plugins.module_utils.audit.jobs import S3Location
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import HostLayout
from ansible_collections.restorable.backup.plugins.module_utils.drill.report import append_ledger

NOW = datetime.datetime(2026, 12, 3, 10, 0, 0, tzinfo=datetime.timezone.utc)


def write_job(root: str, name: str, repository: str, target: str, tags: list[str] | None = None) -> None:
    layout = HostLayout(root)
    os.makedirs(layout.config_dir, exist_ok=True)
    os.makedirs(layout.status_dir, exist_ok=True)
    config = {"format": 1, "dataset": name, "host": "web01", "tags": tags or [],
              "repository": {"url": repository, "password_file": os.path.join(layout.secrets_dir, target + ".password")},
              "paths": ["/srv/www"], "status_dir": layout.status_dir}
    with open(layout.job_config(name), "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    with open(os.path.join(layout.status_dir, name + ".json"), "w", encoding="utf-8") as handle:
        json.dump({"format": 1, "result": "success", "finished": "2026-12-03T09:00:00Z",
                   "last_success": {"finished": "2026-12-03T09:00:00Z"}}, handle)


def test_jobs_carry_their_dataset_target_and_whether_the_copy_exists(tmp_path) -> None:
    root = str(tmp_path / "root")
    present = tmp_path / "repo-disk"
    present.mkdir()
    (present / "config").write_text("restic")
    write_job(root, "www", str(present), "disk")
    write_job(root, "www-usb", str(tmp_path / "gone"), "usb", tags=["dataset:www"])
    facts = collect_host_facts(root, "web01", NOW)
    assert facts["format"] == 1 and facts["host"] == "web01" and facts["collected"] == "2026-12-03T10:00:00Z"
    assert facts["jobs"]["www"]["job"] == {"tier": "agent", "dataset": "www", "target": "disk", "present": True, "detail": ""}
    usb = facts["jobs"]["www-usb"]["job"]
    assert (usb["dataset"], usb["target"], usb["present"]) == ("www", "usb", False)
    assert "does not exist" in usb["detail"]
    assert facts["jobs"]["www"]["result"] == "success"
    assert facts["locks"] == {} and facts["tape"] == {} and facts["vms"] == {} and facts["problems"] == []


def test_a_broken_job_configuration_is_reported_not_fatal(tmp_path) -> None:
    root = str(tmp_path / "root")
    layout = HostLayout(root)
    os.makedirs(layout.config_dir)
    with open(layout.job_config("bad"), "w", encoding="utf-8") as handle:
        handle.write("{not json")
    facts = collect_host_facts(root, "web01", NOW)
    assert facts["jobs"] == {}
    assert len(facts["problems"]) == 1 and "bad.json" in facts["problems"][0]


def test_the_drill_ledger_keeps_the_newest_records_of_each_key(tmp_path) -> None:
    path = str(tmp_path / "ledger.jsonl")
    records = [{"source_host": "web01", "dataset": "www", "drill": "d", "result": "passed", "run_id": str(i)} for i in range(5)]
    records.append({"source_host": "db01", "dataset": "db", "drill": "d", "result": "failed", "run_id": "x"})
    append_ledger(path, records)
    history = ledger_history(path, per_key=2)
    assert [r["run_id"] for r in history] == ["x", "3", "4"]


def test_s3_repository_urls_are_split_into_endpoint_bucket_and_prefix() -> None:
    location = S3Location("s3:http://127.0.0.1:9000/backups/hosts/web01")
    assert (location.endpoint, location.bucket, location.prefix) == ("http://127.0.0.1:9000", "backups", "hosts/web01")
    assert location.key("config") == "hosts/web01/config"
    bare = S3Location("s3:s3.amazonaws.com/backups")
    assert (bare.endpoint, bare.bucket, bare.key("config")) == ("https://s3.amazonaws.com", "backups", "config")


def test_tape_cartridges_in_the_vault_are_listed_with_their_location(tmp_path) -> None:
    import io  # pylint: disable=import-outside-toplevel
    from ansible_collections.restorable.backup.plugins.module_utils.audit.locks import tape_library
    from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library

    root = tmp_path / "vtl"
    config = {"format": 1, "name": "vtl01", "driver": "directory", "path": str(root), "state_dir": str(root),
              "slots": 4, "drives": 1, "media": {"type": "LTO-8", "capacity_bytes": 2 * 1000 * 1000},
              "pools": {"weekly": {"retention_days": 7, "barcode_prefix": "WK", "vault": True}}}
    path = tmp_path / "vtl01.json"
    path.write_text(json.dumps(config))
    library = open_library(str(path))
    library.ensure()
    meta = {"group": "g", "point": "P1", "volume": "/srv/v", "volume_index": 0, "kind": "full", "base": None, "chain": "c", "position": 1}
    record = library.write_stream("weekly", meta, io.BytesIO(os.urandom(3 * 1000 * 1000)))  # spans: the first cartridge fills
    library.commit_point({"group": "g", "point": "P1", "time": "P1", "kind": "full", "chain": "c", "position": 1, "base": None,
                          "pool": "weekly", "streams": [record["id"]], "manifest": {"label": "x"}})
    vaulted = library.vault()
    library.close()
    assert vaulted
    tape, lock = tape_library(str(path), NOW)
    assert lock is None  # no WORM pool: nothing to read back
    where = {c["barcode"]: c["location"] for c in tape["cartridges"]}
    assert all(where[code] == "vault vault" for code in vaulted)
    assert all(c["pool"] == "weekly" and c["worm"] is False for c in tape["cartridges"])
