# -*- coding: utf-8 -*-
"""The drill reports speak in units: 0.5 s against 15 min, 249 B, 830 B/s, dates on the axis."""
from __future__ import annotations

import datetime
import re
import xml.etree.ElementTree as ET

from ansible_collections.restorable.backup.plugins.module_utils.drill.report import (
    html_report, markdown_report, summary_lines, trend_svg, write_evidence)

SVG = "{http://www.w3.org/2000/svg}"
UTC = datetime.timezone.utc
RTOS = (0.42, 0.55, 0.48, 0.61, 0.5)


def record(night: int, rto: float, result: str = "passed") -> dict:
    started = datetime.datetime(2026, 11, 26, 2, 0, tzinfo=UTC) + datetime.timedelta(days=night)
    layers = [{"name": "restore", "status": "ok", "message": "restored 12 files", "seconds": 0.3},
              {"name": "content", "status": "failed" if result == "failed" else "ok", "message": "3 of 12 files differ", "seconds": 0.01}]
    return {"format": 1, "drill": "nightly", "dataset": "www", "source_host": "web01", "drill_host": "drill01",
            "run_id": "www-%d" % night, "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": started.strftime("%Y-%m-%dT%H:%M:05Z"), "result": result, "reason": "",
            "recovery_point": {"id": "abc%d" % night, "short_id": "abc%d" % night}, "files": 12, "bytes": 249,
            "throughput_bytes_per_second": 830.0, "rto": {"seconds": rto, "target_seconds": 900, "met": True},
            "rpo": {"seconds": 2400.0, "target_seconds": 3600, "met": True}, "layers": layers}


def test_reports_have_units_and_trends(tmp_path):
    for night, rto in enumerate(RTOS):
        now = datetime.datetime(2026, 11, 26, 2, 5, tzinfo=UTC) + datetime.timedelta(days=night)
        written = write_evidence(str(tmp_path), [record(night, rto, "failed" if night == 3 else "passed")], now)
    page = open(written["html"], encoding="utf-8").read()
    for needle in ("0.5 s / 15 min ok", "40 min / 1 h ok", "249 B in 12 files", "830 B/s", "2026-11-30 02:00 UTC",
                   "target 15 min (above)", "Restored size", ">failed<", "0.3 s"):
        assert needle in page, needle
    assert "<script" not in page and "<link" not in page
    rto = next(ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", page, flags=re.S) if "<title>RTO" in svg)
    assert len({c.get("cy") for c in rto.iter(SVG + "circle")}) == len(RTOS)
    markdown = open(written["markdown"], encoding="utf-8").read()
    assert "| 2026-11-30 02:00 UTC | passed | 0.5 s / 15 min ok | 40 min / 1 h ok | 249 B in 12 files | 830 B/s |" in markdown
    assert "| restore | ok | 0.3 s | restored 12 files |" in markdown and "| 2026-11-29 02:00 UTC | failed |" in markdown
    assert "Over the last 5 runs: RTO 0.42 s to 0.61 s (target 15 min); RPO 40 min to 40 min (target 1 h)." in markdown
    assert written["summary"][2].split() == ["www", "web01", "drill01", "passed", "0.5", "s", "/", "15", "min", "ok",
                                             "40", "min", "/", "1", "h", "ok"]


def test_a_failed_record_without_measures_renders():
    failed = {"drill": "nightly", "dataset": "db", "source_host": "db01", "drill_host": "?", "result": "failed",
              "reason": "unreachable", "started": None, "finished": None, "rto": {}, "rpo": {},
              "layers": [{"name": "drill", "status": "failed", "message": "unreachable", "seconds": 0}]}
    page = html_report([failed], [failed], "2026-12-03T10:00:00Z")
    assert "1 failed" in page and "- / -" in page and "no data yet" in page
    assert "| nightly | db | db01 | ? | failed | - / - | - / - | - | - |" in markdown_report([failed], [failed], "x")
    assert summary_lines([failed])[-1] == "db on db01: drill: unreachable"


def test_trend_svg_scales_bytes():
    svg = trend_svg("Restored size", [("2026-11-26T02:00:00Z", 3 << 30), ("2026-11-27T02:00:00Z", (3 << 30) + (40 << 20))], None, "bytes")
    assert "3 GiB" in svg and "4 GiB" in svg
