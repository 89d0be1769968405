# -*- coding: utf-8 -*-
"""A drill host's status: the newest ledger record of each drill, damaged lines skipped."""
from __future__ import annotations

import json

from ansible_collections.restorable.backup.plugins.module_utils.drill.report import latest_drills


def record(dataset, result, finished, failed=()):
    layers = [{"name": name, "status": "failed", "message": "broken"} for name in failed]
    return {"source_host": "web01", "dataset": dataset, "drill": "weekly", "drill_host": "drill01", "result": result,
            "reason": "; ".join(failed), "finished": finished, "recovery_point": {"id": "abc123"},
            "rto": {"seconds": 3.0}, "rpo": {"seconds": 60.0}, "layers": layers}


def test_newest_record_of_each_drill(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    lines = [json.dumps(record("www", "passed", "2026-11-20T06:00:00Z")), "{damaged",
             json.dumps(record("db", "passed", "2026-11-20T06:01:00Z")),
             json.dumps(record("www", "failed", "2026-11-24T06:00:00Z", failed=["content"]))]
    ledger.write_text("\n".join(lines) + "\n")
    latest = {item["dataset"]: item for item in latest_drills(str(ledger))}
    assert set(latest) == {"www", "db"}
    assert latest["www"]["result"] == "failed" and latest["www"]["finished"] == "2026-11-24T06:00:00Z"
    assert latest["www"]["failed_layers"] == ["content"]
    assert latest["db"]["result"] == "passed" and latest["db"]["failed_layers"] == []
    assert latest["db"]["recovery_point"] == "abc123"


def test_no_ledger_no_drills(tmp_path):
    assert latest_drills(str(tmp_path / "missing.jsonl")) == []
