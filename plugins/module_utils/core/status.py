# -*- coding: utf-8 -*-
# Private to restorable.backup: the machine-readable record of runs on the host.
# Facts, audits and drills read <status_dir>/<dataset>.json; Prometheus' node_exporter
# reads <metrics_dir>/restorable_<dataset>.prom. Both are replaced atomically.
from __future__ import annotations

import calendar
import os
import time
from typing import Any

from ..common.fileio import atomic_write, atomic_write_json, read_json
from .layout import DatasetFiles

STATUS_FORMAT = 1
RESULTS = ("success", "failed", "deferred", "locked")
_HISTORY_KEYS = ("started", "finished", "result", "reason", "snapshot_id", "bytes_added",
                 "bytes_processed", "duration_seconds")


class StatusStore:
    """Reads and writes the status document of one dataset (caller holds the run lock)."""

    def __init__(self, status_dir: str, dataset: str, history_size: int = 20) -> None:
        self.status_dir = status_dir
        self.dataset = dataset
        self.history_size = history_size
        files = DatasetFiles(status_dir, dataset)
        self.path = files.status
        self.running_path = files.running

    def load(self) -> dict[str, Any]:
        """The previous status, or {} when there is none or it is unreadable."""
        try:
            document = read_json(self.path)
        except ValueError:
            return {}  # a damaged status must not stop backups; the next write replaces it
        return document if isinstance(document, dict) else {}

    def record(self, run: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge a finished run into the status (counters, last success, history); write it."""
        previous = self.load() if previous is None else previous
        document = dict(run)
        document["format"] = STATUS_FORMAT
        result = run["result"]
        failures = int(previous.get("consecutive_failures", 0))
        deferrals = int(previous.get("consecutive_deferrals", 0))
        since_check = int(previous.get("backups_since_check", 0))
        since_prune = int(previous.get("backups_since_prune", 0))
        if result == "success":
            failures, deferrals = 0, 0
        elif result == "failed":
            failures, deferrals = failures + 1, 0
        elif result == "deferred":
            deferrals += 1
        if run.get("snapshot_id") and result in ("success", "failed"):
            since_check += 1
            since_prune += 1
        check = run.get("check")
        if check and check.get("ok"):
            since_check = 0
        if (run.get("retention") or {}).get("pruned"):
            since_prune = 0
        document["consecutive_failures"] = failures
        document["consecutive_deferrals"] = deferrals
        document["backups_since_check"] = since_check
        document["backups_since_prune"] = since_prune
        last_success = previous.get("last_success")
        if result == "success":
            last_success = {k: run.get(k) for k in ("finished", "snapshot_id", "bytes_added", "bytes_processed",
                                                    "duration_seconds", "canary_token")}
        document["last_success"] = last_success
        last_check = previous.get("last_check")
        if check:
            last_check = dict(check, finished=run.get("finished"))
        document["last_check"] = last_check
        history = list(previous.get("history") or [])
        history.append({k: run.get(k) for k in _HISTORY_KEYS})
        document["history"] = history[-self.history_size:]
        atomic_write_json(self.path, document, mode=0o644)
        return document

    # A marker that exists while a run works; found at the next start it means the
    # previous run was killed (power loss, SIGKILL, OOM) and may have left restic locks.

    def mark_running(self, started: str) -> None:
        atomic_write_json(self.running_path, {"pid": os.getpid(), "started": started}, mode=0o644)

    def interrupted_run(self) -> dict[str, Any] | None:
        try:
            marker = read_json(self.running_path)
        except ValueError:
            return {"pid": None, "started": None}
        return marker if isinstance(marker, dict) else None

    def clear_running(self) -> None:
        try:
            os.unlink(self.running_path)
        except FileNotFoundError:
            pass


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _timestamp(iso: str | None) -> float:
    """Unix time of a status timestamp (UTC, ...Z); 0 when absent."""
    if not iso:
        return 0.0
    try:
        return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def render_metrics(status: dict[str, Any], host: str) -> str:
    """Prometheus text exposition of a status document (node_exporter textfile format)."""
    labels = 'dataset="%s",host="%s"' % (_label(status.get("dataset", "")), _label(host))
    last_success = status.get("last_success") or {}
    last_check = status.get("last_check") or {}
    gauges = [
        ("restorable_backup_last_run_timestamp_seconds", "End of the last run (any result).",
         _timestamp(status.get("finished"))),
        ("restorable_backup_last_success_timestamp_seconds", "End of the last successful backup (0: never).",
         _timestamp(last_success.get("finished"))),
        ("restorable_backup_last_success_duration_seconds", "Duration of the last successful backup.",
         float(last_success.get("duration_seconds") or 0)),
        ("restorable_backup_last_success_bytes_processed", "Bytes read by the last successful backup.",
         float(last_success.get("bytes_processed") or 0)),
        ("restorable_backup_last_success_bytes_added", "Bytes added to the repository by the last successful backup.",
         float(last_success.get("bytes_added") or 0)),
        ("restorable_backup_consecutive_failures", "Failed runs since the last success.",
         float(status.get("consecutive_failures") or 0)),
        ("restorable_backup_consecutive_deferrals", "Deferred runs in a row.",
         float(status.get("consecutive_deferrals") or 0)),
    ]
    if last_check:
        gauges.append(("restorable_backup_last_check_success", "1 when the last repository check found no errors.",
                       1.0 if last_check.get("ok") else 0.0))
        gauges.append(("restorable_backup_last_check_timestamp_seconds", "End of the last repository check.",
                       _timestamp(last_check.get("finished"))))
    lines = []
    for name, help_text, value in gauges:
        lines += ["# HELP %s %s" % (name, help_text), "# TYPE %s gauge" % name, "%s{%s} %s" % (name, labels, _num(value))]
    if status.get("tier"):
        # An info metric: alerts and dashboards join on it to group any metric by tier.
        name = "restorable_job_info"
        lines += ["# HELP %s 1 for each job; its tier as a label." % name, "# TYPE %s gauge" % name,
                  '%s{%s,tier="%s"} 1' % (name, labels, _label(status["tier"]))]
    lines += _rpo_lines(status, labels)
    name = "restorable_backup_last_result"
    lines += ["# HELP %s 1 for the result of the last run." % name, "# TYPE %s gauge" % name]
    for result in RESULTS:
        if result == "locked":
            continue  # a refused run is never recorded: the running one writes the status
        lines.append('%s{%s,result="%s"} %d' % (name, labels, result, 1 if status.get("result") == result else 0))
    return "\n".join(lines) + "\n"


# The ages a CDP or array run measures, by copy: the source's own snapshots, the replica, the WAL
# archive, the tape library (other *_seconds fields of `rpo` are targets or lags, not ages).
RPO_COPIES = ("source_seconds", "replica_seconds", "archive_seconds", "tape_seconds")


def _rpo_lines(status: dict[str, Any], labels: str) -> list[str]:
    """CDP and array runs measure the age of the newest point of each copy (RPO_COPIES). The
    point's time is exported too, so an alert sees the RPO grow even when runs stop."""
    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    copies = sorted((k[:-len("_seconds")], v) for k, v in rpo.items() if k in RPO_COPIES and isinstance(v, (int, float)))
    if not copies:
        return []
    finished = _timestamp(status.get("finished"))
    lines = []
    for name, help_text, value_of in (
            ("restorable_cdp_rpo_seconds", "Age of the newest recovery point of each copy when the last run ended.", lambda age: age),
            ("restorable_cdp_newest_point_timestamp_seconds", "Time of the newest recovery point of each copy.",
             lambda age: max(0.0, finished - age))):
        lines += ["# HELP %s %s" % (name, help_text), "# TYPE %s gauge" % name]
        lines += ['%s{%s,copy="%s"} %s' % (name, labels, _label(copy), _num(value_of(float(age)))) for copy, age in copies]
    name = "restorable_cdp_rpo_at_risk"
    lines += ["# HELP %s 1 when the last run found the RPO at risk (archive failing or lagging, replica behind)." % name,
              "# TYPE %s gauge" % name, "%s{%s} %d" % (name, labels, 1 if rpo.get("at_risk") else 0)]
    return lines


def _num(value: float) -> str:
    return ("%d" % value) if float(value).is_integer() else repr(float(value))


def write_metrics(path: str, status: dict[str, Any], host: str) -> None:
    atomic_write(path, render_metrics(status, host), mode=0o644)
