# -*- coding: utf-8 -*-
"""Status records (counters, history, atomic writes) and Prometheus metrics."""
from __future__ import annotations

import json
import os

from ansible_collections.restorable.backup.plugins.module_utils.core.driver import RunRecord as RunResult
from ansible_collections.restorable.backup.plugins.module_utils.core.status import StatusStore, render_metrics


def run(result, n, **fields):
    doc = RunResult("www", "web01", "/srv/restic", result, started="2026-11-24T01:%02d:00Z",
                    finished="2026-11-24T01:%02d:30Z" % n).to_dict()
    doc["started"] = doc["started"] % n
    doc.update(fields)
    return doc


def test_counters_last_success_and_history(tmp_path):
    store = StatusStore(str(tmp_path), "www", history_size=3)
    assert store.load() == {}
    store.record(run("success", 1, snapshot_id="aaaa1111", bytes_added=10, duration_seconds=2.5, canary_token="t1"))
    store.record(run("failed", 2, reason="boom"))
    store.record(run("deferred", 3, reason="outside the backup window"))
    doc = store.record(run("failed", 4, reason="boom again"))
    assert doc["consecutive_failures"] == 2 and doc["consecutive_deferrals"] == 0
    assert doc["last_success"] == {"finished": "2026-11-24T01:01:30Z", "snapshot_id": "aaaa1111", "bytes_added": 10,
                                   "bytes_processed": None, "duration_seconds": 2.5, "canary_token": "t1"}
    assert [h["result"] for h in doc["history"]] == ["failed", "deferred", "failed"]
    assert json.loads((tmp_path / "www.json").read_text()) == doc
    doc = store.record(run("success", 5, snapshot_id="bbbb2222"))
    assert doc["consecutive_failures"] == 0 and doc["last_success"]["snapshot_id"] == "bbbb2222"


def test_deferrals_count_and_do_not_reset_failures(tmp_path):
    store = StatusStore(str(tmp_path), "www")
    store.record(run("failed", 1))
    store.record(run("deferred", 2))
    doc = store.record(run("deferred", 3))
    assert doc["consecutive_deferrals"] == 2 and doc["consecutive_failures"] == 1


def test_backups_since_check(tmp_path):
    store = StatusStore(str(tmp_path), "www")
    store.record(run("success", 1, snapshot_id="a"))
    doc = store.record(run("success", 2, snapshot_id="b"))
    assert doc["backups_since_check"] == 2 and doc["last_check"] is None
    doc = store.record(run("success", 3, snapshot_id="c", check={"ok": True, "read_data_subset": "5%", "message": ""}))
    assert doc["backups_since_check"] == 0 and doc["last_check"]["finished"] == "2026-11-24T01:03:30Z"
    doc = store.record(run("failed", 4, snapshot_id="d", check={"ok": False, "read_data_subset": None, "message": "x"}))
    assert doc["backups_since_check"] == 1 and doc["last_check"]["ok"] is False


def test_backups_since_prune_counts_snapshots_until_a_prune(tmp_path):
    store = StatusStore(str(tmp_path), "www")
    skipped = {"forgot": False, "pruned": False}
    store.record(run("success", 1, snapshot_id="a", retention=skipped))
    store.record(run("deferred", 2))
    doc = store.record(run("failed", 3, reason="boom"))  # no snapshot: nothing to count
    assert doc["backups_since_prune"] == 1
    doc = store.record(run("success", 4, snapshot_id="b", retention=skipped))
    assert doc["backups_since_prune"] == 2
    # The prune failed after the backup: the snapshot counts and the next run tries again.
    doc = store.record(run("failed", 5, snapshot_id="c", reason="retention failed"))
    assert doc["backups_since_prune"] == 3
    pruned = {"forgot": True, "pruned": True, "kept": 1, "removed": 3, "removed_ids": ["a", "b", "c"]}
    doc = store.record(run("success", 6, snapshot_id="d", retention=pruned))
    assert doc["backups_since_prune"] == 0 and doc["retention"] == pruned


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    store = StatusStore(str(tmp_path), "www")
    for n in range(5):
        store.record(run("success", n, snapshot_id=str(n)))
    assert sorted(os.listdir(tmp_path)) == ["www.json"]
    assert oct(os.stat(tmp_path / "www.json").st_mode & 0o777) == "0o644"


def test_damaged_status_does_not_stop_backups(tmp_path):
    (tmp_path / "www.json").write_text("{half")
    store = StatusStore(str(tmp_path), "www")
    assert store.load() == {}
    assert store.record(run("success", 1))["result"] == "success"


def test_running_marker(tmp_path):
    store = StatusStore(str(tmp_path), "www")
    assert store.interrupted_run() is None
    store.mark_running("2026-11-24T01:00:00Z")
    assert store.interrupted_run() == {"pid": os.getpid(), "started": "2026-11-24T01:00:00Z"}
    store.clear_running()
    store.clear_running()
    assert store.interrupted_run() is None


def test_metrics(tmp_path):
    store = StatusStore(str(tmp_path), "www")
    store.record(run("success", 1, snapshot_id="a", bytes_added=2048, bytes_processed=4096, duration_seconds=1.5,
                     check={"ok": True, "read_data_subset": None, "message": ""}))
    doc = store.record(run("failed", 2, reason='quote " and \\ in reason'))
    text = render_metrics(doc, 'web"01')
    labels = 'dataset="www",host="web\\"01"'
    assert "restorable_backup_last_success_timestamp_seconds{%s} 1795482090\n" % labels in text
    assert "restorable_backup_last_run_timestamp_seconds{%s} 1795482150\n" % labels in text
    assert "restorable_backup_last_success_duration_seconds{%s} 1.5\n" % labels in text
    assert "restorable_backup_last_success_bytes_added{%s} 2048\n" % labels in text
    assert "restorable_backup_consecutive_failures{%s} 1\n" % labels in text
    assert "restorable_backup_last_check_success{%s} 1\n" % labels in text
    assert 'restorable_backup_last_result{%s,result="failed"} 1\n' % labels in text
    assert 'restorable_backup_last_result{%s,result="success"} 0\n' % labels in text
    assert "# TYPE restorable_backup_last_result gauge\n" in text
    # Every sample line is NAME{labels} VALUE.
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(line.count(" ") == 1 and line.split(" ")[1].replace(".", "").isdigit() for line in samples)


def test_metrics_before_any_success(tmp_path):
    doc = StatusStore(str(tmp_path), "www").record(run("deferred", 1))
    text = render_metrics(doc, "web01")
    assert 'restorable_backup_last_success_timestamp_seconds{dataset="www",host="web01"} 0\n' in text
    assert "last_check" not in text


def test_cdp_metrics_give_each_copy_s_rpo_and_the_newest_point_time(tmp_path):
    record = run("success", 1, rpo={"source_seconds": 30, "replica_seconds": 95.5, "at_risk": True})
    doc = StatusStore(str(tmp_path), "www").record(record)
    text = render_metrics(doc, "db01")
    labels = 'dataset="www",host="db01"'
    finished = 1795482090
    assert 'restorable_cdp_rpo_seconds{%s,copy="replica"} 95.5\n' % labels in text
    assert 'restorable_cdp_rpo_seconds{%s,copy="source"} 30\n' % labels in text
    # Alerts compute the age from the point's time, so a job that stopped running still alerts.
    assert 'restorable_cdp_newest_point_timestamp_seconds{%s,copy="source"} %d\n' % (labels, finished - 30) in text
    assert "restorable_cdp_rpo_at_risk{%s} 1\n" % labels in text


def test_no_cdp_metrics_for_other_tiers(tmp_path):
    doc = StatusStore(str(tmp_path), "www").record(run("success", 1))
    assert "restorable_cdp" not in render_metrics(doc, "web01")
