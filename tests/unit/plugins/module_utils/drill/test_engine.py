# -*- coding: utf-8 -*-
"""The drill engine with a fake tier driver: point choice, sampling, sandbox safety, layers,
RTO/RPO verdicts, clean-up on failure, and the evidence written from its records."""
from __future__ import annotations

import datetime
import json
import os
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import (
    FAILED, OK, SKIPPED, DrillEngine, DrillError, DrillSpec, Layer, RecoveryPoint, RestoreDriver, RestoreStats,
    SandboxRefused, check_sandbox, choose_point, parse_time, sample_items)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.agent.restore import AgentRestoreDriver
from ansible_collections.restorable.backup.plugins.module_utils.storage.restic import damaged_packs
from ansible_collections.restorable.backup.plugins.module_utils.drill import report as drill_report

NOW = datetime.datetime(2026, 11, 25, 6, 0, tzinfo=datetime.timezone.utc)


def hours_ago(count: float) -> datetime.datetime:
    return NOW - datetime.timedelta(hours=count)


class FakeDriver(RestoreDriver):
    tier = "fake"

    def __init__(self, points, fail_restore=False, content=OK, seen=None):
        self._points = points
        self.fail_restore = fail_restore
        self.content = content
        self.seen = seen if seen is not None else {}

    def points(self):
        return list(self._points)

    def restore(self, point, target, sample):
        self.seen["target"] = target
        self.seen["existed"] = os.path.isdir(target)
        with open(os.path.join(target, "file.txt"), "w", encoding="utf-8") as handle:
            handle.write("x" * 100)
        if self.fail_restore:
            raise DrillError("restore broke")
        return RestoreStats()

    def verify_layers(self, point, target, checks):
        return [Layer("content", self.content, "fake content")] if "content" in checks else []


def spec(tmp_path, **fields):
    values = dict(drill="d", dataset="www", tier="fake", source_host="web", drill_host="drill",
                  sandbox=str(tmp_path / "sandbox"), protected_paths=[str(tmp_path / "data")],
                  checks=["content"], rto_seconds=60.0, rpo_seconds=3600.0)
    values.update(fields)
    return DrillSpec(**values)


def statuses(record):
    return {layer["name"]: layer["status"] for layer in record["layers"]}


def test_parse_time_reads_restic_nanoseconds_and_offsets():
    assert parse_time("2026-11-25T00:33:12.93585559Z") == datetime.datetime(
        2026, 11, 25, 0, 33, 12, 935855, tzinfo=datetime.timezone.utc)
    assert parse_time("2026-11-25T02:00:00+02:00") == datetime.datetime(2026, 11, 25, tzinfo=datetime.timezone.utc)
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_choices():
    points = [RecoveryPoint("p%02d" % day, NOW - datetime.timedelta(days=day)) for day in range(40)]
    random_choice = {"choice": "random", "within_days": 30, "seed": 7}
    first = choose_point(points, random_choice, NOW)
    assert all(choose_point(list(reversed(points)), random_choice, NOW).id == first.id for count in range(5))
    assert first.time >= NOW - datetime.timedelta(days=30)
    assert choose_point(points, {"choice": "at", "at": "2026-11-20T07:00:00+01:00"}, NOW).id == "p05"
    assert choose_point(points, {"choice": "latest"}, NOW).id == "p00"
    assert choose_point([], {"choice": "latest"}, NOW) is None
    with pytest.raises(DrillError):
        choose_point(points, {"choice": "random"}, NOW)


def test_samples_are_seeded_and_bounded():
    items = ["f%03d" % i for i in range(200)]
    assert sample_items(items, {"mode": "all"}, 1) == sorted(items)
    assert len(sample_items(items, {"mode": "files", "files": 10}, 1)) == 10
    assert sample_items(items, {"mode": "files", "files": 10}, 1) == sample_items(list(reversed(items)), {"mode": "files", "files": 10}, 1)
    assert sample_items(items, {"mode": "files", "files": 10}, 1) != sample_items(items, {"mode": "files", "files": 10}, 2)
    assert len(sample_items(items, {"mode": "percent", "percent": 5}, "x")) == 10
    assert len(sample_items(items[:3], {"mode": "percent", "percent": 1}, "x")) == 1
    assert sample_items(items[:3], {"mode": "files", "files": 50}, 1) == items[:3]


@pytest.mark.parametrize("sandbox,protected,words", [
    ("/srv/www/drill", ["/srv/www"], "is inside protected path /srv/www"),
    ("/srv", ["/srv/www"], "contains protected path /srv/www"),
    ("/srv/www", ["/srv/www/"], "is inside protected path"),
    ("/", [], "refusing to restore into /"),
    ("relative/dir", [], "must be an absolute path"),
])
def test_unsafe_sandboxes_are_refused(sandbox, protected, words):
    with pytest.raises(SandboxRefused) as info:
        check_sandbox(sandbox, protected)
    assert words in str(info.value)


def test_sandbox_beside_protected_paths_is_fine():
    check_sandbox("/var/tmp/drill", ["/var/tmp/drill-data", "/srv/www", "/var/tmpx"])


def test_sandbox_reached_through_a_symlink_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "data")
    with pytest.raises(SandboxRefused):
        check_sandbox(str(tmp_path / "link" / "sandbox"), [str(tmp_path / "data")])


def test_healthy_drill_passes_measures_and_cleans_up(tmp_path):
    seen = {}
    record = DrillEngine(spec(tmp_path), FakeDriver([RecoveryPoint("a" * 64, hours_ago(0.5), "aaaaaaaa")], seen=seen),
                         now=lambda: NOW).run()
    assert record["result"] == "passed", record
    assert statuses(record) == {"sandbox": OK, "recovery_point": OK, "restore": OK, "content": OK, "rto": OK}
    assert record["rpo"] == {"seconds": 1800.0, "target_seconds": 3600.0, "met": True}
    assert record["rto"]["met"] is True and record["bytes"] == 100 and record["files"] == 1
    assert seen["existed"] and seen["target"].startswith(str(tmp_path / "sandbox") + "/www-20261125T060000Z-")
    assert not os.path.exists(tmp_path / "sandbox") and record["cleaned"]


def test_failed_restore_still_cleans_up_and_skips_the_rest(tmp_path):
    (tmp_path / "sandbox").mkdir()
    record = DrillEngine(spec(tmp_path), FakeDriver([RecoveryPoint("b" * 64, hours_ago(1))], fail_restore=True),
                         now=lambda: NOW).run()
    assert record["result"] == "failed" and record["reason"] == "restore: restore broke"
    assert statuses(record)["content"] == SKIPPED
    assert os.listdir(tmp_path / "sandbox") == []  # the sandbox stays, the run's directory is gone


def test_no_point_and_stale_point(tmp_path):
    record = DrillEngine(spec(tmp_path), FakeDriver([]), now=lambda: NOW).run()
    assert [l["message"] for l in record["layers"] if l["name"] == "recovery_point"] == ["no recovery point of dataset www"]
    stale = DrillEngine(spec(tmp_path), FakeDriver([RecoveryPoint("c" * 64, hours_ago(30), "cccccccc")]),
                        now=lambda: NOW).run()
    message = [l["message"] for l in stale["layers"] if l["name"] == "recovery_point"][0]
    assert message.startswith("RPO exceeded: age 30 h > target 1 h")
    assert stale["rpo"]["met"] is False and statuses(stale)["content"] == OK


def test_refused_sandbox_writes_nothing(tmp_path):
    (tmp_path / "data").mkdir()
    driver = FakeDriver([RecoveryPoint("d" * 64, hours_ago(1))])
    record = DrillEngine(spec(tmp_path, sandbox=str(tmp_path / "data" / "sb")), driver, now=lambda: NOW).run()
    assert record["result"] == "failed" and statuses(record) == {"sandbox": FAILED}
    assert os.listdir(tmp_path / "data") == [] and "target" not in driver.seen


def test_rto_exceeded(tmp_path):
    ticks = iter(range(0, 10000, 100))  # every reading of the clock is 100 s later
    record = DrillEngine(spec(tmp_path), FakeDriver([RecoveryPoint("e" * 64, hours_ago(1))]), now=lambda: NOW,
                         monotonic=lambda: float(next(ticks))).run()
    assert record["rto"]["met"] is False
    assert [l["message"] for l in record["layers"] if l["name"] == "rto"][0].startswith("RTO exceeded: restore took")


def test_damaged_pack_names_are_found():
    output = ("Pack ID does not match, want c6821a38db1da30ab76dd45140ee7cd78903dc6422459ee067956bd31057d2fb, got c25f...\n"
              "pack 0a1b2c3d: not referenced in any index\n")
    assert damaged_packs(output) == ["c6821a38db1da30ab76dd45140ee7cd78903dc6422459ee067956bd31057d2fb", "0a1b2c3d"]


def test_evidence_from_engine_records(tmp_path):
    good = DrillEngine(spec(tmp_path), FakeDriver([RecoveryPoint("f" * 64, hours_ago(1))]), now=lambda: NOW).run()
    bad = DrillEngine(spec(tmp_path, dataset="db"),
                      FakeDriver([RecoveryPoint("g" * 64, hours_ago(1))], content=FAILED), now=lambda: NOW).run()
    evidence = str(tmp_path / "evidence")
    drill_report.write_evidence(evidence, [good, bad])
    written = drill_report.write_evidence(evidence, [good, bad])
    assert written["failed_drills"] == 1 and written["records"] == 2
    assert len(drill_report.read_ledger(written["ledger"])) == 4
    suite = ET.parse(written["junit"]).getroot()
    failures = suite.findall(".//failure")
    assert [f.get("type") for f in failures] == ["content"]
    html = open(written["html"], encoding="utf-8").read()
    assert html.count("<svg") == 6 and "last 2 runs" in html  # RTO, RPO and restored size per dataset
    for line in open(written["ledger"], encoding="utf-8"):
        json.loads(line)
    assert any(line.startswith("db ") and "failed" in line for line in written["summary"])


class FakeRepository:
    def __init__(self, snapshots):
        self.listed = snapshots
        self.asked = None

    def snapshots(self, host=None, tags=()):
        self.asked = (host, list(tags))
        return self.listed


def test_agent_points_are_file_snapshots_of_the_dataset():
    repo = FakeRepository([
        {"id": "1" * 64, "short_id": "11111111", "time": "2026-11-25T01:00:00.5Z", "tags": ["dataset:pg"], "paths": ["/etc"]},
        {"id": "2" * 64, "time": "2026-11-25T01:00:03Z", "tags": ["dataset:pg", "stream:postgres.dump"]},
        {"id": "3" * 64, "time": "not a time", "tags": ["dataset:pg"]},
    ])
    points = AgentRestoreDriver(repo, "pg", "db1").points()
    assert [p.id for p in points] == ["1" * 64] and points[0].short_id == "11111111"
    assert repo.asked == ("db1", ["dataset:pg"])
