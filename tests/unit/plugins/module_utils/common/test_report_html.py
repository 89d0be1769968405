# -*- coding: utf-8 -*-
"""Human units and the time chart shared by the drill report and the audit page."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.common.report_html import (
    Scale, badge, human_bytes, human_count, human_duration, human_rate, page, parse_time, short_time, time_chart)

SVG = "{http://www.w3.org/2000/svg}"
WEEK = ["2026-11-%02dT02:00:00Z" % day for day in range(24, 31)]


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0, "0 s"), (0.05, "0.05 s"), (0.42, "0.42 s"), (0.5, "0.5 s"), (4.23, "4.2 s"), (42, "42 s"),
    (59.6, "60 s"), (60, "1 min"), (90, "1 min 30 s"), (900, "15 min"), (3600, "1 h"), (11400, "3 h 10 min"),
    (86400, "24 h"), (26 * 3600, "26 h"), (51 * 3600, "2 d 3 h"), (31 * 86400, "31 d"), (-90, "-1 min 30 s"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("size, text", [
    (None, "-"), (0, "0 B"), (249, "249 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"),
    (1.23 * 1048576, "1.2 MiB"), (270 * 1048576, "270 MiB"), (3.2 * 1024 ** 3, "3.2 GiB"), (7.5 * 1024 ** 4, "7.5 TiB"),
    (3 * 1024 ** 6, "3072 PiB"),
])
def test_human_bytes(size, text):
    assert human_bytes(size) == text


def test_human_rate_and_count():
    assert human_rate(1.2 * 1048576) == "1.2 MiB/s"
    assert human_rate(830) == "830 B/s"
    assert human_rate(None) == "-"
    assert [human_count(n, "copy") for n in (1, 2)] == ["1 copy", "2 copies"]
    assert human_count(3, "host") == "3 hosts" and human_count(2, "day") == "2 days"


def test_times():
    assert short_time("2026-12-03T10:00:00Z") == "2026-12-03 10:00 UTC"
    assert short_time("2026-12-03T11:00:00+01:00") == "2026-12-03 10:00 UTC"
    assert short_time("not a time") == "not a time" and short_time(None) == "-"
    assert parse_time("2026-12-03T10:00:00").tzinfo is not None  # naive times are UTC
    assert parse_time(12) is None


@pytest.mark.parametrize("values, kind, labels", [
    ([0.42, 0.61], "seconds", ["0 s", "0.2 s", "0.4 s", "0.6 s", "0.8 s"]),
    ([3010, 3600], "seconds", ["0 min", "20 min", "40 min", "60 min"]),  # whole minutes, not 0.25 h steps
    ([20 * 3600, 26 * 3600], "seconds", ["0 h", "10 h", "20 h", "30 h"]),
    ([5 * 86400], "seconds", ["0 d", "2 d", "4 d", "6 d"]),
    ([249], "bytes", ["0 B", "100 B", "200 B", "300 B"]),
    ([3.2 * 1024 ** 3], "bytes", ["0 GiB", "1 GiB", "2 GiB", "3 GiB", "4 GiB"]),
    ([], "seconds", ["0 s", "0.25 s", "0.5 s", "0.75 s", "1 s"]),
])
def test_scale_ticks_are_round_in_one_unit(values, kind, labels):
    scale = Scale(values, kind)
    assert [scale.label(tick) for tick in scale.ticks()] == labels
    assert all(0 <= scale.fraction(v) <= 1 for v in values)
    assert scale.top >= max(values or [0])


def _chart(points, target, kind="seconds"):
    svg = ET.fromstring(time_chart("RTO", points, kind, target))
    circles = list(svg.iter(SVG + "circle"))
    return svg, [float(c.get("cx")) for c in circles], [float(c.get("cy")) for c in circles], [t.text for t in svg.iter(SVG + "text")]


def test_half_a_second_against_15_min_is_not_flat():
    svg, xs, ys, labels = _chart(list(zip(WEEK, (0.42, 0.55, 0.48, 0.61, 0.5, 0.47, 0.5))), 900)
    assert len(set(ys)) > 3 and max(ys) - min(ys) > 15  # pixels apart, not a line at zero
    assert "target 15 min (above)" in labels
    assert not [line for line in svg.iter(SVG + "line") if line.get("class") == "target"]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)


def test_a_near_target_is_a_labelled_line_and_points_over_it_are_marked():
    svg, _xs, ys, labels = _chart(list(zip(WEEK, (1900, 2600, 3100, 5200, 8400, 11400, 9000))), 3600)
    target = [line for line in svg.iter(SVG + "line") if line.get("class") == "target"]
    assert len(target) == 1 and "target 1 h" in labels
    over = [c for c in svg.iter(SVG + "circle") if "over" in c.get("class").split()]
    assert len(over) == 4
    y_target = float(target[0].get("y1"))
    assert all(float(c.get("cy")) < y_target for c in over)  # above the line on screen
    assert min(ys) >= 0


def test_time_axis_places_points_by_time_not_by_index():
    points = [("2026-11-01T00:00:00Z", 1.0), ("2026-11-02T00:00:00Z", 2.0), ("2026-11-11T00:00:00Z", 3.0)]
    _svg, xs, _ys, labels = _chart(points, None)
    assert (xs[1] - xs[0]) * 9 == pytest.approx(xs[2] - xs[1], abs=1)
    assert "2026-11-01" in labels and "2026-11-11" in labels and "time (UTC)" in labels


def test_short_spans_show_hours_and_unordered_points_are_sorted():
    points = [("2026-12-03T06:00:00Z", 60.0), ("2026-12-03T00:00:00Z", 30.0), (None, 5.0), ("2026-12-03T03:00:00Z", None)]
    _svg, xs, _ys, labels = _chart(points, None)
    assert len(xs) == 2 and xs == sorted(xs)
    assert "12-03 00:00" in labels and "12-03 06:00" in labels


def test_no_data_says_so():
    _svg, xs, _ys, labels = _chart([], 900)
    assert xs == [] and "no data yet" in labels and "target 15 min" in labels


def test_bytes_chart_and_escaping():
    svg = time_chart("size <of> & co", [(WEEK[0], 249), (WEEK[1], 251)], "bytes")
    root = ET.fromstring(svg)
    assert root.find(SVG + "title").text == "size <of> & co"
    assert "249 B" in svg and "300 B" in svg


def test_page_is_self_contained():
    text = page("Drills <1>", ["<p>%s</p>" % badge("failed"), badge(None)])
    assert text.startswith("<!DOCTYPE html>") and "<title>Drills &lt;1&gt;</title>" in text
    assert "#c0392b" in text and ">unknown<" in text
    assert not re.search(r"<script|<link|@import|url\(|https?://", text)
