# -*- coding: utf-8 -*-
"""The audit page renders the evaluated audit document as it is, readable at a glance."""
from __future__ import annotations

import copy
import json
import os
import re

import pytest

from ansible_collections.restorable.backup.plugins.plugin_utils.audit_html import CHARTED_ROWS, DETAILED_ROWS, render_audit_html

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "audit_document.json")


@pytest.fixture
def document() -> dict:
    with open(SAMPLE, encoding="utf-8") as handle:
        return json.load(handle)


def text_of(page: str) -> str:
    body = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).replace("&amp;", "&").split())


def test_summary_counts_and_verdict(document):
    page = render_audit_html(document)
    for key in ("hosts", "unreachable", "datasets", "green", "amber", "red"):
        assert re.search(r"<b[^>]*>%d</b><span>%s</span>" % (document["summary"][key], key), page), key
    assert "4 datasets need attention (2 red, 2 amber); 1 host unreachable." in text_of(page)


def test_every_dataset_is_a_row_under_its_site_and_host(document):
    page = render_audit_html(document)
    assert page.index("<h2>Site branch-lyon</h2>") < page.index('id="host-fs-lyon"') < page.index("<h2>Site hq</h2>")
    for dataset in document["datasets"]:
        row = 'id="ds-%s-%s" data-status="%s"' % (dataset["host"], dataset["dataset"], dataset["status"])
        assert row in page
    # Within a host, red first: what needs attention is read first.
    assert page.index('id="ds-db01-reports"') < page.index('id="ds-db01-orders"')


def test_why_age_copies_locks_gaps_and_drill_in_words(document):
    text = text_of(render_audit_html(document))
    for needle in ("newest point is 3 h 10 min old, RPO is 1 h", "3 h 10 min old RPO 1 h", "45 s old RPO 5 min",
                   "office-nas (disk, on-site) not locked", "s3-vault (object storage, off-site) locked (read back)",
                   "lock NOT found", "only 2 copies (production and lyon-nas), a third is needed",
                   "failed weekly 2 d ago (at most 31 d)", "RTO 12 s / target 15 min", "RPO 2 h 1 min / target 1 h",
                   "on drill01, from the controller", "never drilled", "all checks pass"):
        assert needle in text, needle


def test_unreachable_hosts_and_marks_stay_visible(document):
    page = render_audit_html(document)
    text = text_of(page)
    assert 'id="unreachable"' in page and "1 host unreachable" in text
    assert "pos-lyon (site branch-lyon): ssh: connect to host pos-lyon port 22: No route to host" in text
    for mark in ("vm stopped", "2 cartridge(s) in the vault", "host unreachable"):
        assert '<span class="mark">%s</span>' % mark in page


def test_trends_are_charts_with_units_and_time(document):
    page = render_audit_html(document)
    row = page.split('id="ds-web01-www"', 1)[1].split('<tr class="dataset"', 1)[0]
    assert row.count("<svg") == 3
    assert "target 15 min (above)" in row and "target 1 h" in row and "MiB" in row and "time (UTC)" in row
    till = page.split('id="ds-pos-lyon-till"', 1)[1].split("</table>", 1)[0]
    assert till.count("<svg") == 1  # only the size has points: empty trends draw nothing


def test_all_green_and_html_in_names_are_escaped(document):
    document = copy.deepcopy(document)
    document["datasets"] = [dict(document["datasets"][0], dataset="<b>www</b>")]
    document["hosts"] = [h for h in document["hosts"] if h["host"] == "web01"]
    document["summary"] = {"hosts": 1, "unreachable": 0, "datasets": 1, "green": 1, "amber": 0, "red": 0}
    page = render_audit_html(document)
    assert "&lt;b&gt;www&lt;/b&gt;" in page and "<b>www</b>" not in page
    assert "Every dataset is green." in text_of(page) and 'id="unreachable"' not in page


def test_a_sparse_document_still_renders():
    page = render_audit_html({"format": 1, "hosts": [{"host": "web01", "site": "hq", "reachable": True}],
                              "datasets": [{"host": "web01", "site": "hq", "dataset": "www"}]})
    text = text_of(page)
    assert "Site hq" in text and "www" in text and "no copy" in text and "never drilled" in text
    assert "unknown" in text  # no status given: said so, not coloured green


def test_a_large_fleet_shows_the_worst_in_full_and_every_dataset_compactly(document):
    datasets, hosts = [], []
    for index in range(1000):
        name, site = "h%04d" % index, "site%d" % (index % 4)
        hosts.append({"host": name, "site": site, "reachable": index != 7, "message": "timed out" if index == 7 else ""})
        datasets += [dict(d, host=name, site=site, dataset="%s%d" % (d["dataset"], n)) for n, d in enumerate(document["datasets"][:5])]
    page = render_audit_html(dict(document, hosts=hosts, datasets=datasets))
    assert page.count('<tr class="dataset"') == DETAILED_ROWS
    assert page.count('<tr class="trends"') == CHARTED_ROWS
    rows = re.findall(r'<tr class="dataset" id="[^"]*" data-status="(\w+)"', page)
    assert set(rows) == {"red"}  # 1,000 red datasets: the first 500 of them in full
    assert all(name in page for name in ("h0000", "h0999", "reports2", "vms3", "www0"))
    assert '<h3 id="host-h0007">' in page  # an unreachable host always has its own heading
    assert page.count('<details class="quiet">') == 4 and "500 datasets shown in full" in page
    assert len(page) < 3_000_000
