# -*- coding: utf-8 -*-
"""Drills of an agent dataset against real restic repositories, with real faults injected."""
from __future__ import annotations

import datetime
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from drill_helpers import Source, make_source

from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import (
    RecoveryPoint, choose_point, sample_items)
from ansible_collections.restorable.backup.plugins.module_utils.drill import report as drill_report


def layer(record: dict, name: str) -> dict:
    return next(item for item in record["layers"] if item["name"] == name)


def test_healthy_drill_passes_and_cleans_up(source: Source, tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    record = source.drill(sandbox)
    assert record["result"] == "passed", record
    assert {item["name"]: item["status"] for item in record["layers"]} == {
        "sandbox": "ok", "recovery_point": "ok", "restore": "ok", "integrity": "ok", "freshness": "ok",
        "content": "ok", "rto": "ok"}
    assert "canary token matches" in layer(record, "freshness")["message"]
    assert record["bytes"] > 300 * 1024 and record["files"] == 22  # 21 data files and the canary
    assert record["rto"]["met"] is True and record["rpo"]["met"] is True
    assert record["recovery_point"]["id"].startswith(source.status()["snapshot_id"])
    assert record["cleaned"] and not sandbox.exists()
    # The evidence: JUnit parses, one testcase, no failure.
    evidence = tmp_path / "evidence"
    written = drill_report.write_evidence(str(evidence), [record])
    suite = ET.parse(written["junit"]).getroot()
    assert suite.tag == "testsuites"
    cases = suite.findall(".//testcase")
    assert len(cases) == 1 and cases[0].get("name") == "www on src-host"
    assert not suite.findall(".//failure")
    assert "<svg" in Path(written["html"]).read_text()
    assert "| www |" in Path(written["markdown"]).read_text()


def test_corrupted_pack_fails_integrity_and_names_the_pack(source: Source, tmp_path: Path) -> None:
    packs = sorted((source.repository / "data").glob("*/*"), key=lambda p: p.stat().st_size)
    pack = packs[-1]
    pack.chmod(0o644)
    with open(pack, "r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00CORRUPTED\x00")
    record = source.drill(tmp_path / "sandbox", checks=["integrity"])
    assert record["result"] == "failed"
    integrity = layer(record, "integrity")
    assert integrity["status"] == "failed"
    assert pack.name in integrity["message"], integrity
    junit = ET.fromstring(drill_report.junit_xml([record]))
    failures = junit.findall(".//failure")
    assert len(failures) >= 1 and any(pack.name in (f.get("message") or "") for f in failures)


def test_no_snapshot_left_means_no_recovery_point(source: Source, tmp_path: Path) -> None:
    ids = [line.split()[0] for line in source.restic("snapshots", "--compact").stdout.splitlines()
           if len(line.split()) > 1 and len(line.split()[0]) == 8 and line.split()[0] != "ID"]
    assert ids
    source.restic("forget", *ids)
    record = source.drill(tmp_path / "sandbox")
    assert record["result"] == "failed"
    assert layer(record, "recovery_point")["message"] == "no recovery point of dataset www"
    assert layer(record, "freshness")["status"] == "skipped"
    assert not (tmp_path / "sandbox").exists()


def test_old_point_exceeds_rpo_with_its_age(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src")
    source.restic("backup", "--host", "src-host", "--tag", "dataset:www", "--time", "2026-01-01 00:00:00",
                  str(source.data))
    record = source.drill(tmp_path / "sandbox", checks=["integrity", "content"], rpo="3600")
    assert record["result"] == "failed"
    message = layer(record, "recovery_point")["message"]
    assert message.startswith("RPO exceeded: age ") and "> target 1 h" in message, message
    assert record["rpo"]["met"] is False and record["rpo"]["seconds"] > 86400
    # The restore still ran and was verified: the point is old, not broken.
    assert layer(record, "content")["status"] == "ok"


def test_sandbox_inside_a_protected_path_is_refused_before_writing(source: Source, tmp_path: Path) -> None:
    sandbox = source.data / "drill-sandbox"
    before = sorted(os.listdir(source.data))
    record = source.drill(sandbox)
    assert record["result"] == "failed"
    assert layer(record, "sandbox")["message"] == "refusing to restore: sandbox %s is inside protected path %s" % (
        sandbox, source.data)
    assert sorted(os.listdir(source.data)) == before and not sandbox.exists()
    # ... and one that contains a protected path.
    record = source.drill(source.root)
    assert "contains protected path" in layer(record, "sandbox")["message"]


def test_sampled_drill_restores_a_seeded_share(source: Source, tmp_path: Path) -> None:
    first = source.drill(tmp_path / "a", sample={"mode": "files", "files": 5}, keep_restore=True)
    second = source.drill(tmp_path / "b", sample={"mode": "files", "files": 5}, keep_restore=True)
    assert first["result"] == "passed", first
    assert first["sample"]["restored_files"] == 6 and first["sample"]["of_files"] == 21  # 5 and the canary

    def restored(record: dict) -> list:
        base = Path(record["restore_path"])
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
    assert restored(first) == restored(second)
    percent = source.drill(tmp_path / "c", sample={"mode": "percent", "percent": 10})
    assert percent["result"] == "passed" and percent["sample"]["restored_files"] == 3


def test_custom_commands_see_the_sandbox_and_fail_the_drill(source: Source, tmp_path: Path) -> None:
    ok = source.drill(tmp_path / "s", checks=["custom"], commands=[
        {"argv": ["test", "-f", "{sandbox}%s/blob.bin" % source.data], "timeout": "10s"}])
    assert layer(ok, "custom")["status"] == "ok", ok
    bad = source.drill(tmp_path / "s", checks=["custom"], commands=[
        {"argv": ["test", "-f", "{sandbox}/missing"], "timeout": "10s"}])
    assert bad["result"] == "failed" and layer(bad, "custom")["message"] == "test exited 1"


def test_recovery_point_choices_are_reproducible() -> None:
    now = datetime.datetime(2026, 11, 25, tzinfo=datetime.timezone.utc)
    points = [RecoveryPoint("p%02d" % day, now - datetime.timedelta(days=day)) for day in range(40)]
    choice = {"choice": "random", "within_days": 30, "seed": 42}
    picked = {choose_point(points, choice, now).id for _run in range(5)}
    assert len(picked) == 1
    assert int(picked.pop()[1:]) <= 30
    at = choose_point(points, {"choice": "at", "at": "2026-11-20T12:00:00Z"}, now)
    assert at.id == "p05"
    assert choose_point(points, {"choice": "at", "at": "2020-01-01T00:00:00Z"}, now) is None
    assert choose_point(points, {"choice": "latest"}, now).id == "p00"
    assert sample_items(list("abcdefghij"), {"mode": "percent", "percent": 20}, 1) == \
        sample_items(list("abcdefghij"), {"mode": "percent", "percent": 20}, 1)


def test_application_layer_opens_restored_sqlite_databases(tmp_path: Path) -> None:
    import sqlite3

    source = make_source(tmp_path / "src", files=3)
    good, bad = source.data / "good.db", source.data / "bad.db"
    for path in (good, bad):
        with sqlite3.connect(path) as connection:
            connection.execute("create table orders (id integer primary key, item text)")
            connection.executemany("insert into orders (item) values (?)", [("x" * 200,)] * 500)
        connection.close()
    with open(bad, "r+b") as handle:  # keep the header, wreck the pages
        handle.seek(4096)
        handle.write(b"\xff" * 16384)
    source.backup()
    profile = {"type": "sqlite", "sqlite": {"databases": [str(good)]}}
    record = source.drill(tmp_path / "sb", checks=["application"], application=profile)
    assert layer(record, "application")["status"] == "ok", record
    profile["sqlite"]["databases"].append(str(bad))
    record = source.drill(tmp_path / "sb", checks=["application"], application=profile)
    message = layer(record, "application")["message"]
    assert record["result"] == "failed" and message.startswith("%s: " % bad), message
