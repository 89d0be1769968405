# -*- coding: utf-8 -*-
"""tape_library, tape_media and array_restore as Ansible calls them, on real directory libraries in a
temporary directory: arguments, results, check mode, diff, idempotence, failures, secrets kept out."""
from __future__ import annotations

import io
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library
from ansible_collections.restorable.backup.plugins.modules import array_restore, drill, tape_library, tape_media

MB = 10 ** 6


def run(capsys, module, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def library_entry(tmp_path, name: str = "vtl01", **changes) -> dict:
    config = {"format": 1, "name": name, "driver": "directory", "path": str(tmp_path / "vtl"), "state_dir": str(tmp_path / "vtl"),
              "slots": 4, "drives": 1, "media": {"type": "LTO-8", "capacity_bytes": 4 * MB},
              "pools": {"daily": {"retention_days": 14, "barcode_prefix": "DA", "worm": False, "vault": True}},
              "vault": {"destination": "offsite"}}
    config.update(changes)
    return {"name": name, "config_path": str(tmp_path / "etc/tape" / (name + ".json")), "config": config, "files": []}


def test_tape_library_check_mode_writes_nothing(tmp_path, capsys):
    result = run(capsys, tape_library, {"libraries": [library_entry(tmp_path)]}, check_mode=True)
    assert result["changed"] and result["actions"][0] == "vtl01: placed %s" % (tmp_path / "etc/tape/vtl01.json")
    assert any("catalog" in action for action in result["actions"])
    assert list(tmp_path.iterdir()) == []


def test_tape_library_converges_once_with_a_diff(tmp_path, capsys):
    entry = library_entry(tmp_path)
    first = run(capsys, tape_library, {"libraries": [entry]}, diff=True)
    assert first["changed"] and first["libraries"][0]["changed"]
    with open(entry["config_path"], encoding="utf-8") as handle:
        assert json.load(handle) == entry["config"]
    assert first["diff"][0]["after_header"] == entry["config_path"] and first["diff"][0]["before"] == ""
    library = open_library(entry["config_path"])
    assert [slot["barcode"] for slot in library.inventory()["slots"]] == [None] * 4
    second = run(capsys, tape_library, {"libraries": [entry]}, diff=True)
    assert not second["changed"] and second["actions"] == [] and second["diff"] == []


def test_a_changed_configuration_is_rewritten(tmp_path, capsys):
    run(capsys, tape_library, {"libraries": [library_entry(tmp_path)]})
    result = run(capsys, tape_library, {"libraries": [library_entry(tmp_path, slots=8)]}, diff=True)
    assert result["actions"] == ["vtl01: placed %s" % (tmp_path / "etc/tape/vtl01.json"),
                                 "vtl01: created 4 location directories below %s" % (tmp_path / "vtl")]  # slots 5 to 8
    assert '"slots": 4' in result["diff"][0]["before"] and '"slots": 8' in result["diff"][0]["after"]


def test_s3_credentials_are_private_and_never_shown(tmp_path, capsys):
    env_file = str(tmp_path / "secrets/tape-cloud.env")
    entry = library_entry(tmp_path, "cloud", driver="s3", path=None, state_dir=str(tmp_path / "state/cloud"),
                          s3={"endpoint": "http://127.0.0.1:9", "bucket": "b", "region": "us-east-1", "prefix": "cloud/db01",
                              "env_file": env_file, "archive_storage_class": "DEEP_ARCHIVE"})
    entry["config"].pop("path")
    entry["files"] = [{"path": env_file, "content": "AWS_ACCESS_KEY_ID=AKIA\nAWS_SECRET_ACCESS_KEY=very-secret-key\n"}]
    result = run(capsys, tape_library, {"libraries": [entry]}, check_mode=True, diff=True)
    assert "very-secret-key" not in json.dumps(result)
    assert result["actions"][-1] == "cloud: would set up the s3 library cloud once its credentials are placed"
    assert [d["after"] for d in result["diff"] if d["after_header"] == env_file] == ["(secret content hidden)\n"]
    assert not os.path.exists(env_file)


def test_a_wrong_configuration_fails_before_anything_is_written(tmp_path, capsys):
    entries = [library_entry(tmp_path, "good"), library_entry(tmp_path, "bad", slots=0)]
    result = run(capsys, tape_library, {"libraries": entries})
    assert result["failed"] and result["msg"].startswith("library bad: tape library configuration")
    assert "slots" in result["msg"] and not (tmp_path / "etc").exists()


def test_absent_removes_the_configuration_and_keeps_the_cartridges(tmp_path, capsys):
    entry = library_entry(tmp_path)
    run(capsys, tape_library, {"libraries": [entry]})
    result = run(capsys, tape_library, {"libraries": [{"name": "vtl01", "config_path": entry["config_path"]}], "state": "absent"})
    assert result["changed"] and not os.path.exists(entry["config_path"])
    assert (tmp_path / "vtl").is_dir()
    again = run(capsys, tape_library, {"libraries": [{"name": "vtl01", "config_path": entry["config_path"]}], "state": "absent"})
    assert not again["changed"]


# --- tape_media and array_restore on a library holding one exported point ------------------------------

POINT = "20261203T181500.123456Z"


@pytest.fixture
def library_config(tmp_path, capsys) -> str:
    entry = library_entry(tmp_path)
    run(capsys, tape_library, {"libraries": [entry]})
    library = open_library(entry["config_path"])
    manifest = {"volumes": [{"volume": "/srv/pg", "snapshot": "/srv/.snapshots/pg/%s" % POINT}]}
    meta = {"group": "pgarr", "point": POINT, "volume": "/srv/pg", "volume_index": 0, "kind": "full", "base": None,
            "chain": POINT, "position": 1}
    stream = library.write_stream("daily", meta, io.BytesIO(os.urandom(5 * MB)))  # spans two 4 MB cartridges
    library.commit_point({"group": "pgarr", "point": POINT, "time": "2026-12-03T18:15:00Z", "kind": "full", "chain": POINT,
                          "position": 1, "base": None, "pool": "daily", "streams": [stream["id"]], "manifest": manifest})
    library.close()
    return entry["config_path"]


def test_inventory_never_changes(library_config, capsys):
    result = run(capsys, tape_media, {"library_config": library_config})
    assert not result["changed"] and result["result"] == {}
    barcodes = [c["barcode"] for c in result["inventory"]["cartridges"]]
    assert len(barcodes) == 2 and all(b.startswith("DA") for b in barcodes)


def test_vault_in_check_mode_then_for_real_then_nothing_left(library_config, capsys):
    predicted = run(capsys, tape_media, {"library_config": library_config, "operation": "vault"}, check_mode=True)
    assert predicted["changed"] and predicted["result"]["moved"]
    assert not [c for c in predicted["inventory"]["cartridges"] if c["location"]["kind"] == "vault"]
    moved = run(capsys, tape_media, {"library_config": library_config, "operation": "vault"})
    assert moved["result"]["moved"] == predicted["result"]["moved"]
    assert sorted(moved["inventory"]["vault"]["offsite"]) == sorted(moved["result"]["moved"])
    assert not run(capsys, tape_media, {"library_config": library_config, "operation": "vault"})["changed"]
    recall = {"library_config": library_config, "operation": "recall", "barcodes": moved["result"]["moved"]}
    assert run(capsys, tape_media, recall, check_mode=True)["result"]["moved"] == moved["result"]["moved"]
    back = run(capsys, tape_media, recall)
    assert back["changed"] and not back["inventory"]["vault"].get("offsite")
    assert not run(capsys, tape_media, recall)["changed"]


def test_recall_needs_barcodes(library_config, capsys):
    result = run(capsys, tape_media, {"library_config": library_config, "operation": "recall"})
    assert result["failed"] and "barcodes" in result["msg"]


def test_recycle_keeps_what_has_not_expired(library_config, capsys):
    for check_mode in (True, False):
        result = run(capsys, tape_media, {"library_config": library_config, "operation": "recycle",
                                          "keep_points": {"pgarr": [POINT]}}, check_mode=check_mode)
        assert not result["changed"] and result["result"]["recycled"] == []
        assert all("kept until" in reason for reason in result["result"]["kept"].values())


def test_rebuild_catalog(library_config, capsys):
    assert run(capsys, tape_media, {"library_config": library_config, "operation": "rebuild_catalog"}, check_mode=True)["changed"]
    result = run(capsys, tape_media, {"library_config": library_config, "operation": "rebuild_catalog"})
    assert len(result["result"]["cartridges"]) == 2
    assert open_library(library_config).points("pgarr")[0]["point"] == POINT


def test_a_missing_library_fails_naming_it(tmp_path, capsys):
    result = run(capsys, tape_media, {"library_config": str(tmp_path / "nope.json")})
    assert result["failed"] and str(tmp_path / "nope.json") in result["msg"]


def test_array_restore_check_mode_finds_the_chain_and_its_cartridges(library_config, tmp_path, capsys):
    args = {"library_config": library_config, "group": "pgarr", "volumes": ["/srv/pg"], "sandbox": str(tmp_path / "restore")}
    result = run(capsys, array_restore, args, check_mode=True)
    assert not result["changed"]
    restore = result["restore"]
    assert (restore["point"], restore["chain"], restore["vaulted"]) == (POINT, [POINT], [])
    assert len(restore["cartridges"]) == 2 and not (tmp_path / "restore").exists()


def test_array_restore_refuses_a_sandbox_over_a_volume(library_config, capsys):
    args = {"library_config": library_config, "group": "pgarr", "volumes": ["/srv/pg"], "sandbox": "/srv/pg/restore"}
    result = run(capsys, array_restore, args, check_mode=True)
    assert result["failed"] and "/srv/pg" in result["msg"]


def test_array_restore_of_an_unknown_group_fails(library_config, tmp_path, capsys):
    args = {"library_config": library_config, "group": "other", "sandbox": str(tmp_path / "restore")}
    result = run(capsys, array_restore, args, check_mode=True)
    assert result["failed"] and "no point of group other" in result["msg"]


# --- the drill module's array parameters ------------------------------------------------------------------

def drill_args(library_config: str, sandbox: str, **changes) -> dict:
    args = {"drill": "weekly", "dataset": "pgarr", "tier": "array", "source_host": "db01", "library_config": library_config,
            "volumes": ["/srv/pg"], "expect_volumes": 1, "sandbox": sandbox, "checks": ["integrity", "content"]}
    return dict(args, **changes)


def test_drill_of_an_array_dataset_needs_its_library_and_volumes(tmp_path, capsys):
    args = drill_args("/etc/restorable/tape/vtl01.json", str(tmp_path / "sandbox"))
    del args["library_config"], args["volumes"]
    result = run(capsys, drill, args, check_mode=True)
    assert result["failed"] and "library_config" in result["msg"] and "volumes" in result["msg"]


def test_drill_of_an_array_dataset_in_check_mode_checks_the_sandbox_only(library_config, tmp_path, capsys):
    result = run(capsys, drill, drill_args(library_config, str(tmp_path / "sandbox")), check_mode=True)
    assert not result.get("failed") and result["record"]["tier"] == "array"
    assert result["record"]["result"] == "skipped" and not (tmp_path / "sandbox").exists()
    refused = run(capsys, drill, drill_args(library_config, "/srv/pg/sandbox"), check_mode=True)
    assert refused["failed"] and "/srv/pg" in refused["msg"]
