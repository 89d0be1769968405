# -*- coding: utf-8 -*-
"""The drill host's metrics: the newest record and the newest pass of each drilled dataset."""
from __future__ import annotations

import json
import os
import re

from ansible_collections.restorable.backup.plugins.module_utils.drill import metrics
from ansible_collections.restorable.backup.plugins.module_utils.runtime import drill_cli

PASSED_AT = 1795485600  # 2026-11-24T02:00:00Z


def record(result="passed", finished="2026-11-24T02:00:00Z", dataset="www", **fields):
    value = {"drill": "weekly", "dataset": dataset, "tier": "agent", "source_host": "web01", "drill_host": "vault01",
             "finished": finished, "result": result, "bytes": 4096,
             "rto": {"seconds": 12.5, "target_seconds": 3600, "met": True},
             "rpo": {"seconds": 7200, "target_seconds": 93600, "met": True}}
    value.update(fields)
    return value


def sample(text, name, **labels):
    labels = dict({"host": "vault01", "source_host": "web01", "dataset": "www", "drill": "weekly", "tier": "agent"}, **labels)
    wanted = ",".join('%s="%s"' % item for item in labels.items())
    found = [float(v) for n, l, v in re.findall(r"^(\w+)\{(.*)\} (\S+)$", text, re.M) if n == name and l == wanted]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_a_failed_drill_keeps_the_time_of_the_last_pass():
    history = [record(), record("failed", "2026-11-25T02:00:00Z", rto={"seconds": 5000, "target_seconds": 3600})]
    text = metrics.render_drill_metrics(history[-1:], history, max_age_seconds=86400)
    assert sample(text, "restorable_drill_last_result", result="failed") == 1
    assert sample(text, "restorable_drill_last_result", result="passed") == 0
    assert sample(text, "restorable_drill_last_pass_timestamp_seconds") == PASSED_AT
    assert sample(text, "restorable_drill_last_run_timestamp_seconds") == PASSED_AT + 86400
    assert sample(text, "restorable_drill_rto_seconds") == 5000
    assert sample(text, "restorable_drill_rto_target_seconds") == 3600
    assert sample(text, "restorable_drill_rpo_seconds") == 7200
    assert sample(text, "restorable_drill_rpo_target_seconds") == 93600
    assert sample(text, "restorable_drill_max_age_seconds") == 86400
    assert sample(text, "restorable_drill_restored_bytes") == 4096


def test_only_the_run_s_datasets_and_never_passed_is_zero():
    other = record(dataset="db", drill="monthly")
    text = metrics.render_drill_metrics([record("failed", rto={}, rpo={"seconds": None, "target_seconds": None})], [other])
    assert sample(text, "restorable_drill_last_pass_timestamp_seconds") == 0
    assert sample(text, "restorable_drill_max_age_seconds") == metrics.DEFAULT_MAX_AGE_SECONDS
    assert 'dataset="db"' not in text  # another drill job's dataset is that job's file
    assert "restorable_drill_rto_seconds" not in text and "restorable_drill_rpo_target_seconds" not in text


def test_labels_are_escaped_and_every_metric_has_help_and_type():
    text = metrics.render_drill_metrics([record(dataset='a"b')], [])
    assert 'dataset="a\\"b"' in text
    names = set(re.findall(r"^(\w+)\{", text, re.M))
    assert names == set(re.findall(r"^# HELP (\w+) ", text, re.M)) == set(re.findall(r"^# TYPE (\w+) gauge$", text, re.M))
    assert metrics.render_drill_metrics([], []) == ""


def test_the_scheduled_drill_writes_its_textfile(tmp_path, monkeypatch):
    """The drill host's job (runtime/drill_cli.py) writes restorable_drill_<job>.prom beside the ledger."""
    monkeypatch.setattr(drill_cli, "run_drill", lambda params: record(result="passed" if params["dataset"] == "www" else "failed",
                                                                      dataset=params["dataset"]))
    config = {"format": 1, "name": "web01-weekly", "evidence_dir": str(tmp_path / "drills"), "metrics_dir": str(tmp_path / "metrics"),
              "max_age_seconds": 604800,
              "datasets": [{"drill": "weekly", "dataset": name, "source_host": "web01", "drill_host": "vault01"} for name in ("www", "db")]}
    path = tmp_path / "drill.json"
    path.write_text(json.dumps(config))
    os.chmod(path, 0o600)
    assert drill_cli.run_drill_config(str(path), quiet=True) == drill_cli.EXIT_FAILED
    text = (tmp_path / "metrics" / "restorable_drill_web01-weekly.prom").read_text()
    assert sample(text, "restorable_drill_last_result", result="passed") == 1
    assert sample(text, "restorable_drill_last_result", result="failed", dataset="db") == 1
    assert sample(text, "restorable_drill_max_age_seconds", dataset="db") == 604800
    # a later failure of www keeps the pass of the first run (read back from the ledger)
    monkeypatch.setattr(drill_cli, "run_drill", lambda params: record("failed", "2026-11-30T02:00:00Z", dataset=params["dataset"]))
    drill_cli.run_drill_config(str(path), quiet=True)
    text = (tmp_path / "metrics" / "restorable_drill_web01-weekly.prom").read_text()
    assert sample(text, "restorable_drill_last_pass_timestamp_seconds") == PASSED_AT
    assert sample(text, "restorable_drill_last_result", result="failed") == 1


def test_without_a_metrics_dir_no_textfile_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(drill_cli, "run_drill", lambda params: record())
    config = {"format": 1, "name": "n", "evidence_dir": str(tmp_path / "drills"),
              "datasets": [{"drill": "weekly", "dataset": "www", "source_host": "web01", "drill_host": "vault01"}]}
    path = tmp_path / "drill.json"
    path.write_text(json.dumps(config))
    os.chmod(path, 0o600)
    assert drill_cli.run_drill_config(str(path), quiet=True) == 0
    assert not any(name.endswith(".prom") for _dir, _sub, files in os.walk(tmp_path) for name in files)
