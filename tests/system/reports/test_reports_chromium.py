# -*- coding: utf-8 -*-
"""The drill report and the audit page, opened in the real headless Chromium of the machine.

The drill report is written by write_evidence from a week of drill records as the engine writes
them (two datasets, one failed run); the audit page renders the sample audit document of the unit
tests (two sites, one unreachable host, one red stale dataset). Chromium runs offline: every host
name resolves to nothing, so a page that needed the network would show it. Each page is opened
once, for its screenshot and its DOM together.
"""
from __future__ import annotations

import html.parser
import json
import re
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest

from drill_records import nights
from ansible_collections.restorable.backup.plugins.module_utils.drill.report import write_evidence
from ansible_collections.restorable.backup.plugins.plugin_utils.audit_html import render_audit_html

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
AUDIT_SAMPLE = Path(__file__).resolve().parents[2] / "unit" / "plugins" / "plugin_utils" / "fixtures" / "audit_document.json"
SVG = "{http://www.w3.org/2000/svg}"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium-headless-shell is not installed")


class Rendered:
    """What Chromium made of one page: its screenshot and the text of its DOM."""

    def __init__(self, page: Path, work: Path) -> None:
        self.screenshot = work / (page.stem + ".png")
        argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=%s" % (work / "profile"),
                "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,2000",
                "--screenshot=%s" % self.screenshot, "--dump-dom", page.as_uri()]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=work)
        assert result.returncode == 0, result.stderr[-2000:]
        self.dom = result.stdout
        self.text = " ".join(_text_of(self.dom).split())


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _text_of(dom: str) -> str:
    parser = _Text()
    parser.feed(dom)
    return " ".join(parser.parts)


def png_pixels(path: Path, rows_wanted: int = 1000) -> tuple[int, int, list[bytes]]:
    """Width, height and a sample of the pixels (RGB, every 8th of the first rows_wanted rows and
    columns) of an 8-bit RGB or RGBA PNG as Chromium writes it. Decoding is pure Python: the top
    half of the page, where every report starts, is enough to tell a page from a blank."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
    offset, idat, header = 8, b"", None
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, colour, _c, _f, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    channels = 3 if colour == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(min(height, rows_wanted)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r[i:i + 3]) for r in rows[::8] for i in range(0, stride, channels * 8)]


def assert_screenshot_shows_a_page(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 20000, "screenshot %s missing or tiny" % path
    width, height, sample = png_pixels(path)
    assert (width, height) == (1280, 2000)
    colours = set(sample)
    ink = sum(1 for pixel in sample if pixel != b"\xff\xff\xff") / len(sample)
    assert len(colours) > 20, "the screenshot has %d colours: blank?" % len(colours)
    assert 0.02 < ink < 0.9, "%.0f%% of the screenshot is not white" % (ink * 100)
    # The status colours are drawn: green and red pills exist on both pages.
    assert any(pixel == bytes.fromhex("1e8449") for pixel in sample) or any(pixel == bytes.fromhex("c0392b") for pixel in sample)


def assert_offline(page: str) -> None:
    for needle in ("<script", "<link", "@import", "url(", "src=", "https://"):
        assert needle not in page, "the page refers to something outside it: %s" % needle
    assert set(re.findall(r"https?://[^\"' ]+", page)) <= {"http://www.w3.org/2000/svg"}


def chart_points(svg: ET.Element) -> list[float]:
    return [float(c.get("cy")) for c in svg.iter(SVG + "circle") if "point" in (c.get("class") or "").split()]


def svgs_of(fragment: str) -> list[ET.Element]:
    return [ET.fromstring(match) for match in re.findall(r"<svg .*?</svg>", fragment, flags=re.S)]


@pytest.fixture(scope="module")
def drill_report(tmp_path_factory) -> tuple[Path, Rendered]:
    evidence = tmp_path_factory.mktemp("evidence")
    for now, records in nights():
        written = write_evidence(str(evidence), records, now)
    return Path(written["html"]), Rendered(Path(written["html"]), tmp_path_factory.mktemp("chromium-drill"))


@pytest.fixture(scope="module")
def audit_page(tmp_path_factory) -> tuple[Path, Rendered, dict]:
    document = json.loads(AUDIT_SAMPLE.read_text())
    page = tmp_path_factory.mktemp("audit") / "audit.html"
    page.write_text(render_audit_html(document), encoding="utf-8")
    return page, Rendered(page, tmp_path_factory.mktemp("chromium-audit")), document


def test_drill_report_renders_with_units(drill_report):
    page, rendered = drill_report
    assert_screenshot_shows_a_page(rendered.screenshot)
    assert_offline(page.read_text())
    text = rendered.text
    for needle in ("Restore drills", "www on web01", "orders on db01", "0.5 s / 15 min ok", "40 min / 1 h ok",
                   "249 B in 12 files", "3.2 GiB in 12 files", "RTO", "RPO", "target 15 min (above)", "2026-12-02 02:00 UTC"):
        assert needle in text, "%r not in the rendered drill report" % needle
    assert re.search(r"\d+ B/s", text) and re.search(r"\d+ MiB/s", text)
    assert "bytes 249" not in text and "0.0 MiB/s" not in text


def test_drill_report_chart_shows_a_half_second_rto_against_15_min(drill_report):
    page, _rendered = drill_report
    section = page.read_text().split('id="web01-www-nightly"', 1)[1].split("</section>", 1)[0]
    rto = next(svg for svg in svgs_of(section) if svg.find(SVG + "title").text.startswith("RTO"))
    heights = chart_points(rto)
    assert len(heights) == 7 and len(set(heights)) > 3, "the RTO points are flat: %s" % heights
    labels = [t.text for t in rto.iter(SVG + "text")]
    assert "target 15 min (above)" in labels
    assert {"0 s", "0.2 s", "0.4 s", "0.6 s"} <= set(labels)  # the scale is fit to half a second
    assert {"2026-11-26", "2026-12-02"} <= set(labels)  # time on the x axis
    xs = [float(c.get("cx")) for c in rto.iter(SVG + "circle")]
    assert xs == sorted(xs) and len(set(xs)) == 7


def test_audit_page_renders_at_a_glance(audit_page):
    page, rendered, document = audit_page
    assert_screenshot_shows_a_page(rendered.screenshot)
    assert_offline(page.read_text())
    text = rendered.text
    for dataset in document["datasets"]:
        assert dataset["dataset"] in text and dataset["host"] in text
    for needle in ("Site hq", "Site branch-lyon", "1 host unreachable", "pos-lyon", "No route to host",
                   "3 h 10 min old", "RPO 1 h", "0.5 s / target 15 min", "vm stopped", "2 cartridge(s) in the vault",
                   "only 2 copies (production and lyon-nas), a third is needed", "lock NOT found", "locked (read back)",
                   "never drilled", "RTO", "RPO", "Backup size", "270 MiB", "42 s / target 30 min"):
        assert needle in text, "%r not in the rendered audit page" % needle
    summary = document["summary"]
    for key in ("hosts", "unreachable", "datasets", "green", "amber", "red"):
        assert re.search(r"<b[^>]*>%d</b><span>%s</span>" % (summary[key], key), rendered.dom), key


def test_audit_page_charts_fit_their_values(audit_page):
    page, _rendered, _document = audit_page
    row = page.read_text().split('id="ds-web01-www"', 1)[1].split('<tr class="dataset"', 1)[0]
    charts = {svg.find(SVG + "title").text: svg for svg in svgs_of(row)}
    rto = next(svg for title, svg in charts.items() if title.startswith("RTO"))
    assert len(set(chart_points(rto))) > 3
    assert "target 15 min (above)" in [t.text for t in rto.iter(SVG + "text")]
    size = next(svg for title, svg in charts.items() if title.startswith("Backup size"))
    assert any((t.text or "").endswith("MiB") for t in size.iter(SVG + "text"))
