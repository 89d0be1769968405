# -*- coding: utf-8 -*-
"""The demo's closing summary: the audit's datasets and restic's deduplication ratio on one screen."""
from __future__ import annotations

import json

import pytest

from ansible_collections.restorable.backup.plugins.plugin_utils.demo_summary import (
    DemoSummary, DemoSummaryError, RepositoryStats, repository_stats, stats_from_output, stats_of_hosts,
)

AUDIT = {
    "format": 1, "generated": "2026-12-03T22:00:00Z", "source": "ssh",
    "summary": {"hosts": 2, "unreachable": 1, "datasets": 2, "green": 1, "amber": 0, "red": 1},
    "hosts": [{"host": "demo-web", "site": "main", "reachable": True, "message": ""},
              {"host": "demo-hv", "site": "main", "reachable": False, "message": "no route"}],
    "datasets": [
        {"host": "demo-web", "site": "main", "dataset": "www", "tier": "agent", "status": "green", "score": "4/5",
         "copies": [{"name": "local-repo", "age_seconds": 130.0, "status": "green"},
                    {"name": "second-disk", "age_seconds": 4000.0, "status": "amber"}],
         "drill": {"drill": "www-daily", "result": "passed", "age_seconds": 65, "rto_seconds": 2.5, "rto_target_seconds": 900},
         "marks": []},
        {"host": "demo-hv", "site": "main", "dataset": "vms", "tier": "host", "status": "red", "score": "2/5",
         "copies": [{"name": "local-repo", "age_seconds": None, "status": "red"}], "drill": None,
         "marks": ["host unreachable"], "reasons": ["host unreachable: no route", "no drill restored this dataset yet"]},
    ],
}
REPOSITORY = RepositoryStats(host="demo-web", target="local-repo", points=3, logical_bytes=3 * 300 * 2 ** 20, stored_bytes=100 * 2 ** 20)


def lines() -> list[str]:
    return DemoSummary(AUDIT, [REPOSITORY], "/var/tmp/demo/audit/audit.html").lines()


def test_headline_counts_and_names_the_unreachable_host_and_the_page():
    assert lines()[:2] == ["2 datasets on 2 hosts: 1 green, 0 amber, 1 red; unreachable: demo-hv",
                           "audit page: /var/tmp/demo/audit/audit.html"]


def test_each_dataset_says_where_how_old_and_its_last_drill():
    text = "\n".join(lines())
    www = next(line for line in lines() if " www " in line)
    assert "agent" in www and "green 4/5" in www
    assert "local-repo 2 min 10 s, second-disk 1 h 6 min (amber)" in www
    assert "passed 1 min 5 s ago, RTO 2.5 s / 15 min" in www
    assert "local-repo no point (red)" in text and "never [host unreachable]" in text


def test_why_a_dataset_is_not_green_follows_the_table():
    assert "demo-hv/vms red: host unreachable: no route; no drill restored this dataset yet" in lines()
    assert not any(line.startswith("demo-web/www") for line in lines())


def test_deduplication_ratio_is_every_point_restored_against_what_is_stored():
    dedup = next(line for line in lines() if line.startswith("demo-web  local-repo"))
    assert dedup.split()[2:] == ["3", "900", "MiB", "100", "MiB", "9.0x"]


def test_columns_line_up_without_trailing_blanks():
    header, rule, *rows = lines()[3:7]
    www = next(row for row in rows if " www " in row)
    assert header.index("tier") == www.index("agent") and header.index("status") == www.index("green")
    assert set(rule) == {"-", " "}
    assert all(line == line.rstrip() for line in lines())


def test_stats_are_read_from_one_line_per_repository_and_mode():
    stdout = "\n".join([
        "second-disk restore-size " + json.dumps({"total_size": 300, "snapshots_count": 3}),
        "local-repo raw-data " + json.dumps({"total_size": 100, "snapshots_count": 2}),
        "local-repo restore-size " + json.dumps({"total_size": 250, "snapshots_count": 2}),
        "second-disk raw-data " + json.dumps({"total_size": 100}),
    ])
    assert stats_from_output("demo-web", stdout) == [RepositoryStats("demo-web", "local-repo", 2, 250, 100),
                                                     RepositoryStats("demo-web", "second-disk", 3, 300, 100)]
    assert stats_from_output("demo-web", stdout)[0].ratio == 2.5


def test_bad_stats_name_host_repository_and_mode():
    with pytest.raises(DemoSummaryError, match="host demo-web, repository local-repo: restic stats --mode raw-data printed no JSON"):
        repository_stats("demo-web", "local-repo", {"raw-data": "Fatal: wrong password", "restore-size": "{}"})
    with pytest.raises(DemoSummaryError, match="no output of restic stats --mode restore-size"):
        repository_stats("demo-web", "local-repo", {"raw-data": "{}"})


def test_a_repository_not_measured_is_said_and_the_others_stay():
    good = "local-repo raw-data " + json.dumps({"total_size": 100}) + "\nlocal-repo restore-size " + json.dumps({"total_size": 200})
    repositories, problems = stats_of_hosts([("demo-web", good), ("demo-hv", "local-repo raw-data {}")])
    assert [r.host for r in repositories] == ["demo-web"]
    assert DemoSummary(AUDIT, repositories, "page", problems).lines()[-1] == (
        "not measured: host demo-hv, repository local-repo: no output of restic stats --mode restore-size")


def test_no_repository_measured_is_said_instead_of_an_empty_table():
    assert DemoSummary(AUDIT, [], "page").lines()[-1] == "no restic repository measured"


def test_a_document_of_another_format_is_refused_naming_it():
    with pytest.raises(DemoSummaryError, match="audit.json: not an audit document of format 1"):
        DemoSummary({"format": 2}, [], "/x/audit.json")
