# -*- coding: utf-8 -*-
"""Metrics of every tier's status (core/status.py) and of drills (drill/metrics.py), and the
shipped monitoring files: rules and dashboard name only metrics the collection emits."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from ansible_collections.restorable.backup.plugins.module_utils.core.driver import RunRecord
from ansible_collections.restorable.backup.plugins.module_utils.core.status import StatusStore, labels_of, render_metrics, rpo_target, unix_time
from ansible_collections.restorable.backup.plugins.module_utils.drill.metrics import render_drill_metrics

ROOT = Path(__file__).resolve().parents[5]
FINISHED = "2026-11-24T01:01:30Z"
FINISHED_UNIX = 1795482090


def run(tier, result="success", consistency=None, **details):
    record = RunRecord("data", "h1", tier, result, started="2026-11-24T01:01:00Z", finished=FINISHED,
                       snapshot_id="p1", consistency=consistency, details=details)
    return record.to_dict()


def agent_status(store):
    return store.record(run("agent", bytes_added=10, bytes_processed=20, rpo_target_seconds=93600,
                            check={"ok": False, "message": "pack damaged"},
                            consistency={"profile": "postgresql", "consistent": True, "seconds": 0.25}))


def btrfs_status(store):
    return store.record(run("cdp", source="btrfs", rpo_target_seconds=900,
                            rpo={"source_seconds": 30.0, "replica_seconds": 150.5, "at_risk": False},
                            points={"source": {"count": 12, "oldest": "a", "newest": "b"},
                                    "replica": {"count": 10, "oldest": "a", "newest": "b"}},
                            replica={"host": "r1", "reached": True, "pending": ["x", "y"], "sent": [{"point": "x"}],
                                     "error": None}))


def postgres_status(store):
    archiver = {"last_archived_time": "2026-11-24T01:00:00.250000Z", "last_failed_time": "2026-11-24T01:01:00.000000Z",
                "failed_count": 3, "ready_count": 4}
    return store.record(run("cdp", source="postgresql", action="points", archiver=archiver,
                            rpo={"archive_seconds": 90.0, "lag_seconds": 61.5, "rpo_seconds": 300, "at_risk": True, "reason": "x"},
                            verify={"ok": False, "problems": ["gap"]}))


def array_status(store, export=None):
    return store.record(run("array", rpo_target_seconds=900, pending_export=["p2"], thinning={"removed": [], "kept": 7},
                            export=export if export is not None else [
                                {"point": "p0", "bytes": 1000, "seconds": 1.5, "cartridges": ["A1"]},
                                {"point": "p1", "bytes": 500, "seconds": 0.5, "cartridges": ["A1", "A2"]}],
                            rpo={"source_seconds": 10, "tape_seconds": 70, "target_seconds": 900, "at_risk": False}))


def drill_record(result="passed", finished="2026-11-24T02:00:00Z", **fields):
    record = {"drill": "weekly", "dataset": "data", "tier": "agent", "source_host": "h1", "drill_host": "vault",
              "finished": finished, "result": result, "bytes": 4096,
              "rto": {"seconds": 12.5, "target_seconds": 3600, "met": True},
              "rpo": {"seconds": 7200, "target_seconds": 93600, "met": True}}
    record.update(fields)
    return record


def value(text, name, **labels):
    """The value of the sample whose labels include labels (exactly one must match)."""
    found = []
    for line in text.splitlines():
        match = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
        if match and match.group(1) == name and all('%s="%s"' % kv in match.group(2) for kv in labels.items()):
            found.append(float(match.group(3)))
    assert len(found) == 1, "%s %s: %s" % (name, labels, found)
    return found[0]


def metric_names(text):
    return set(re.findall(r"^# TYPE (\w+) gauge$", text, re.M))


def test_rpo_target_comes_from_the_job_else_from_the_tier_s_measure(tmp_path):
    store = StatusStore(str(tmp_path), "data")
    text = render_metrics(agent_status(store), "h1")
    assert value(text, "restorable_backup_rpo_target_seconds", dataset="data", host="h1") == 93600
    assert value(text, "restorable_backup_consistency_window_seconds") == 0.25
    assert value(text, "restorable_backup_last_check_success") == 0
    # statuses written before jobs carried the target: the tier's own target counts
    assert rpo_target({"rpo": {"target_seconds": 600}}) == 600
    assert rpo_target({"rpo": {"rpo_seconds": 300, "archive_seconds": 5}}) == 300
    assert rpo_target({"rpo_target_seconds": None, "rpo": None}) is None
    assert "restorable_backup_rpo_target_seconds" not in render_metrics(store.record(run("agent")), "h1")


def test_btrfs_replication_lag_pending_points_and_snapshot_counts(tmp_path):
    text = render_metrics(btrfs_status(StatusStore(str(tmp_path), "data")), "h1")
    assert value(text, "restorable_cdp_replication_lag_seconds") == 120.5
    assert value(text, "restorable_cdp_replication_pending_points") == 2
    assert value(text, "restorable_cdp_replication_reachable") == 1
    assert value(text, "restorable_cdp_replication_last_sent_points") == 1
    assert value(text, "restorable_snapshot_points", copy="source") == 12
    assert value(text, "restorable_snapshot_points", copy="replica") == 10
    assert value(text, "restorable_cdp_newest_point_timestamp_seconds", copy="replica") == FINISHED_UNIX - 150.5
    assert value(text, "restorable_backup_rpo_target_seconds") == 900
    assert "restorable_cdp_wal" not in text and "restorable_export" not in text


def test_a_replica_never_listed_has_no_lag_but_its_pending_points(tmp_path):
    status = StatusStore(str(tmp_path), "data").record(run("cdp", rpo={"source_seconds": 5, "replica_seconds": None},
                                                           replica={"reached": False, "pending": ["a"], "sent": []}))
    text = render_metrics(status, "h1")
    assert "restorable_cdp_replication_lag_seconds" not in text
    assert value(text, "restorable_cdp_replication_reachable") == 0
    assert value(text, "restorable_cdp_replication_pending_points") == 1


def test_wal_archive_lag_failing_archiver_and_continuity(tmp_path):
    text = render_metrics(postgres_status(StatusStore(str(tmp_path), "data")), "h1")
    assert value(text, "restorable_cdp_wal_archive_lag_seconds") == 61.5
    assert value(text, "restorable_cdp_wal_ready_files") == 4
    assert value(text, "restorable_cdp_wal_archive_failing") == 1  # the failure is newer than the last success
    assert value(text, "restorable_cdp_wal_archive_failures") == 3
    assert value(text, "restorable_cdp_wal_continuity_ok") == 0
    assert value(text, "restorable_cdp_rpo_seconds", copy="archive") == 90
    assert value(text, "restorable_backup_rpo_target_seconds") == 300  # the archive's RPO when the job has none
    assert "restorable_cdp_replication" not in text


def test_an_archiver_that_recovered_is_not_failing(tmp_path):
    store = StatusStore(str(tmp_path), "data")
    status = store.record(run("cdp", archiver={"last_archived_time": "2026-11-24T01:02:00.000000Z",
                                               "last_failed_time": "2026-11-24T01:01:00.000000Z", "failed_count": 1},
                              rpo={"archive_seconds": 1, "lag_seconds": 0, "rpo_seconds": 300}))
    text = render_metrics(status, "h1")
    assert value(text, "restorable_cdp_wal_archive_failing") == 0
    assert "restorable_cdp_wal_ready_files" not in text  # unknown without pg_monitor, not 0


def test_the_last_export_is_kept_across_runs_that_export_nothing(tmp_path):
    store = StatusStore(str(tmp_path), "data")
    first = array_status(store)
    assert first["last_export"] == {"finished": FINISHED, "points": 2, "bytes": 1500, "seconds": 2.0, "cartridges": ["A1", "A2"]}
    later = array_status(store, export=[])
    assert later["last_export"] == first["last_export"]
    text = render_metrics(later, "h1")
    assert value(text, "restorable_export_last_bytes") == 1500
    assert value(text, "restorable_export_last_points") == 2
    assert value(text, "restorable_export_last_duration_seconds") == 2
    assert value(text, "restorable_export_last_timestamp_seconds") == FINISHED_UNIX
    assert value(text, "restorable_export_pending_points") == 1
    assert value(text, "restorable_snapshot_points", copy="source") == 7
    assert value(text, "restorable_cdp_rpo_seconds", copy="tape") == 70
    assert "last_export" not in store.record(run("agent"), previous={})


def test_an_array_job_that_never_exported_shows_only_what_waits(tmp_path):
    status = StatusStore(str(tmp_path), "data").record(run("array", pending_export=["p1"], export=None))
    text = render_metrics(status, "h1")
    assert value(text, "restorable_export_pending_points") == 1
    assert "restorable_export_last_" not in text


def test_agent_metrics_carry_no_other_tier_s_metrics(tmp_path):
    text = render_metrics(StatusStore(str(tmp_path), "data").record(run("agent")), "h1")
    assert not re.search(r"restorable_(cdp|export|snapshot)_", text)


def test_helpers_escape_labels_and_read_fractional_times():
    assert labels_of(a='x"y\\z\n', b=None, c=1) == 'a="x\\"y\\\\z\\n",c="1"'
    assert unix_time("2026-11-24T01:01:30Z") == FINISHED_UNIX
    assert unix_time("2026-11-24T01:01:30.500000Z") == FINISHED_UNIX + 0.5
    assert unix_time("yesterday") == 0 and unix_time(None) == 0


def every_metric_text(tmp_path):
    """The metrics of a status of every tier and of a drill: what the collection emits."""
    texts = []
    for index, make in enumerate((agent_status, btrfs_status, postgres_status, array_status)):
        texts.append(render_metrics(make(StatusStore(str(tmp_path / str(index)), "data")), "h1"))
    texts.append(render_drill_metrics([drill_record()], []))
    return "".join(texts)


def emitted(tmp_path):
    # node_exporter's own textfile metrics, which the rules read too
    return metric_names(every_metric_text(tmp_path)) | {"node_textfile_scrape_error", "node_textfile_mtime_seconds"}


def named_metrics(expression):
    return set(re.findall(r"\b((?:restorable|node)_[a-z0-9_]+)\b", expression))


def test_every_sample_line_is_well_formed_and_every_metric_has_help(tmp_path):
    text = every_metric_text(tmp_path)
    for line in text.splitlines():
        assert line.startswith("# ") or re.match(r'^restorable_\w+\{(\w+="[^"]*",?)+\} -?[0-9.e+-]+$', line), line
    helped = set(re.findall(r"^# HELP (\w+) \S", text, re.M))
    assert helped == metric_names(text)


def test_the_alert_rules_name_only_emitted_metrics(tmp_path):
    rules = yaml.safe_load((ROOT / "monitoring/prometheus/restorable-rules.yml").read_text())
    names = emitted(tmp_path)
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in alerts} >= {
        "RestorableBackupRPOBreached", "RestorableCopyRPOBreached", "RestorableBackupFailing", "RestorableDrillOverdue",
        "RestorableDrillFailed", "RestorableReplicationLag", "RestorableWALArchiveLag", "RestorableRepositoryCheckFailed",
        "RestorableMetricsStale"}
    for rule in alerts:
        used = named_metrics(rule["expr"])
        assert used and used <= names, "%s names %s" % (rule["alert"], sorted(used - names))
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]


def test_every_alert_has_a_promtool_test_case():
    rules = yaml.safe_load((ROOT / "monitoring/prometheus/restorable-rules.yml").read_text())
    tests = yaml.safe_load((ROOT / "monitoring/prometheus/restorable-rules.test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


def test_the_dashboard_parses_and_its_panels_name_only_emitted_metrics(tmp_path):
    dashboard = json.loads((ROOT / "monitoring/grafana/restorable-dashboard.json").read_text())
    names = emitted(tmp_path)
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(panels) >= 10 and dashboard["uid"]
    shown = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = named_metrics(target["expr"])
            assert used and used <= names, "panel %r names %s" % (panel["title"], sorted(used - names))
            shown |= used
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert named_metrics(variable["query"]["query"]) <= names
    # each kind of fact has a panel: RPO ages and targets, results, drills' RTO and RPO, bytes
    assert {"restorable_backup_rpo_target_seconds", "restorable_cdp_newest_point_timestamp_seconds",
            "restorable_backup_last_result", "restorable_drill_rto_seconds", "restorable_drill_rpo_target_seconds",
            "restorable_backup_last_success_bytes_added", "restorable_export_last_bytes"} <= shown


def test_the_metric_reference_in_the_docs_lists_every_metric(tmp_path):
    documented = set(re.findall(r"`((?:restorable)_[a-z0-9_]+)`", (ROOT / "docs/monitoring.md").read_text()))
    assert metric_names(every_metric_text(tmp_path)) <= documented
