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
        if "export" in run:
            document["last_export"] = last_export(run, previous)
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


# -- Prometheus text exposition ---------------------------------------------------------------
# The helpers are public: drill/metrics.py renders the drill host's metrics with them.

def label_value(value: Any) -> str:
    """A label value escaped as the exposition format wants it."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_of(**labels: Any) -> str:
    """name="value" pairs in the order given (None values left out)."""
    return ",".join('%s="%s"' % (name, label_value(value)) for name, value in labels.items() if value is not None)


def unix_time(iso: str | None) -> float:
    """Unix time of a status timestamp (UTC, ...Z, with or without fractions); 0 when absent."""
    if not iso:
        return 0.0
    whole, _dot, fraction = iso.rstrip("Z").partition(".")
    try:
        seconds = float(calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")))
        return seconds + (float("0." + fraction) if fraction.isdigit() else 0.0)
    except ValueError:
        return 0.0


def format_number(value: float) -> str:
    return ("%d" % value) if float(value).is_integer() else repr(float(value))


def gauge(name: str, help_text: str, samples: list[tuple[str, float]]) -> list[str]:
    """HELP, TYPE and one line per (labels, value) sample; nothing without samples."""
    if not samples:
        return []
    return ["# HELP %s %s" % (name, help_text), "# TYPE %s gauge" % name] + [
        "%s{%s} %s" % (name, labels, format_number(value)) for labels, value in samples]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def render_metrics(status: dict[str, Any], host: str) -> str:
    """Prometheus text exposition of a status document (node_exporter textfile format)."""
    labels = labels_of(dataset=status.get("dataset", ""), host=host)
    last_success = status.get("last_success") or {}
    last_check = status.get("last_check") or {}
    gauges = [
        ("restorable_backup_last_run_timestamp_seconds", "End of the last run (any result).",
         unix_time(status.get("finished"))),
        ("restorable_backup_last_success_timestamp_seconds", "End of the last successful backup (0: never).",
         unix_time(last_success.get("finished"))),
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
                       unix_time(last_check.get("finished"))))
    lines = []
    for name, help_text, value in gauges:
        lines += gauge(name, help_text, [(labels, value)])
    if status.get("tier"):
        # An info metric: alerts and dashboards join on it to group any metric by tier.
        lines += gauge("restorable_job_info", "1 for each job; its tier as a label.",
                       [('%s,tier="%s"' % (labels, label_value(status["tier"])), 1)])
    lines += _objective_lines(status, labels)
    lines += _rpo_lines(status, labels)
    lines += _replication_lines(status, labels)
    lines += _wal_lines(status, labels)
    lines += _snapshot_lines(status, labels)
    lines += _export_lines(status, labels)
    name = "restorable_backup_last_result"
    lines += ["# HELP %s 1 for the result of the last run." % name, "# TYPE %s gauge" % name]
    for result in RESULTS:
        if result == "locked":
            continue  # a refused run is never recorded: the running one writes the status
        lines.append('%s{%s,result="%s"} %d' % (name, labels, result, 1 if status.get("result") == result else 0))
    return "\n".join(lines) + "\n"


def rpo_target(status: dict[str, Any]) -> float | None:
    """The dataset's RPO from its job configuration (every record carries it), else the target the
    tier measured against (statuses written before the configuration carried it)."""
    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    for value in (status.get("rpo_target_seconds"), rpo.get("target_seconds"), rpo.get("rpo_seconds")):
        if _number(value):
            return _number(value)
    return None


def _objective_lines(status: dict[str, Any], labels: str) -> list[str]:
    """The RPO as a metric of its own: one alert rule compares every dataset's age with its target."""
    target = rpo_target(status)
    consistency = status.get("consistency") if isinstance(status.get("consistency"), dict) else {}
    held = _number(consistency.get("seconds"))
    return (gauge("restorable_backup_rpo_target_seconds", "The dataset's recovery point objective (largest acceptable data loss).",
                  [(labels, target)] if target else [])
            + gauge("restorable_backup_consistency_window_seconds",
                    "Seconds the last run held the application quiesced or frozen for a consistent point.",
                    [(labels, held)] if held is not None else []))


# The ages a CDP or array run measures, by copy: the source's own snapshots, the replica, the WAL
# archive, the tape library (other *_seconds fields of `rpo` are targets or lags, not ages).
RPO_COPIES = ("source_seconds", "replica_seconds", "archive_seconds", "tape_seconds")


def _rpo_lines(status: dict[str, Any], labels: str) -> list[str]:
    """CDP and array runs measure the age of the newest point of each copy (RPO_COPIES). The
    point's time is exported too, so an alert sees the RPO grow even when runs stop."""
    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    copies = sorted((k[:-len("_seconds")], v) for k, v in rpo.items() if k in RPO_COPIES and _number(v) is not None)
    if not copies:
        return []
    finished = unix_time(status.get("finished"))
    by_copy = ['%s,copy="%s"' % (labels, label_value(copy)) for copy, _age in copies]
    return (gauge("restorable_cdp_rpo_seconds", "Age of the newest recovery point of each copy when the last run ended.",
                  [(where, float(age)) for where, (_copy, age) in zip(by_copy, copies)])
            + gauge("restorable_cdp_newest_point_timestamp_seconds", "Time of the newest recovery point of each copy.",
                    [(where, max(0.0, finished - float(age))) for where, (_copy, age) in zip(by_copy, copies)])
            + gauge("restorable_cdp_rpo_at_risk",
                    "1 when the last run found the RPO at risk (archive failing or lagging, replica behind).",
                    [(labels, 1 if rpo.get("at_risk") else 0)]))


def _replication_lines(status: dict[str, Any], labels: str) -> list[str]:
    """A btrfs CDP job's replica: how far it is behind the source and what waits to be sent."""
    replica = status.get("replica") if isinstance(status.get("replica"), dict) else None
    if replica is None:
        return []
    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    source, copy = _number(rpo.get("source_seconds")), _number(rpo.get("replica_seconds"))
    lag = [(labels, max(0.0, copy - source))] if source is not None and copy is not None else []
    return (gauge("restorable_cdp_replication_lag_seconds",
                  "How far the replica's newest point is behind the source's newest point.", lag)
            + gauge("restorable_cdp_replication_pending_points", "Points of the source the replica does not have yet.",
                    [(labels, len(replica.get("pending") or []))])
            + gauge("restorable_cdp_replication_reachable", "1 when the last run reached the replica host.",
                    [(labels, 1 if replica.get("reached") else 0)])
            + gauge("restorable_cdp_replication_last_sent_points", "Points the last run sent to the replica.",
                    [(labels, len(replica.get("sent") or []))]))


def _wal_lines(status: dict[str, Any], labels: str) -> list[str]:
    """A PostgreSQL CDP job's archiving: WAL waiting to be archived, failures, continuity."""
    archiver = status.get("archiver") if isinstance(status.get("archiver"), dict) else None
    rpo = status.get("rpo") if isinstance(status.get("rpo"), dict) else {}
    lines = []
    if archiver is not None:
        failed, archived = unix_time(archiver.get("last_failed_time")), unix_time(archiver.get("last_archived_time"))
        lines += gauge("restorable_cdp_wal_archive_lag_seconds",
                       "How long the oldest WAL file has waited to be archived (0: none waits).",
                       [(labels, _number(rpo.get("lag_seconds")) or 0.0)])
        ready = _number(archiver.get("ready_count"))
        lines += gauge("restorable_cdp_wal_ready_files", "WAL files waiting to be archived.",
                       [(labels, ready)] if ready is not None else [])
        lines += gauge("restorable_cdp_wal_archive_failing", "1 when PostgreSQL's last archive attempt failed.",
                       [(labels, 1 if failed and failed >= archived else 0)])
        lines += gauge("restorable_cdp_wal_archive_failures", "Failed archive attempts counted by PostgreSQL (pg_stat_archiver).",
                       [(labels, _number(archiver.get("failed_count")) or 0.0)])
    verify = status.get("verify") if isinstance(status.get("verify"), dict) else None
    if verify is not None:
        lines += gauge("restorable_cdp_wal_continuity_ok", "1 when the last check of the archive's WAL continuity found no gap.",
                       [(labels, 1 if verify.get("ok") else 0)])
    return lines


def _snapshot_lines(status: dict[str, Any], labels: str) -> list[str]:
    """How many points each copy of a snapshot tier holds (btrfs CDP: source and replica; array:
    the storage host after thinning)."""
    points = status.get("points") if isinstance(status.get("points"), dict) else {}
    counts = [(copy, summary.get("count")) for copy, summary in sorted(points.items()) if isinstance(summary, dict)]
    thinning = status.get("thinning") if isinstance(status.get("thinning"), dict) else {}
    if not counts and _number(thinning.get("kept")) is not None and status.get("tier") == "array":
        counts = [("source", thinning["kept"])]
    return gauge("restorable_snapshot_points", "Recovery points each copy holds after the last run.",
                 [('%s,copy="%s"' % (labels, label_value(copy)), float(count)) for copy, count in counts
                  if _number(count) is not None])


def _export_lines(status: dict[str, Any], labels: str) -> list[str]:
    """An array job's export to its tape library: the last one (kept across runs that export
    nothing) and what waits for the next."""
    if "pending_export" not in status:
        return []
    last = status.get("last_export") or {}
    lines = gauge("restorable_export_pending_points", "Points due for export to the tape library.",
                  [(labels, len(status.get("pending_export") or []))])
    if last:
        lines += gauge("restorable_export_last_timestamp_seconds", "End of the last run that exported to the tape library.",
                       [(labels, unix_time(last.get("finished")))])
        lines += gauge("restorable_export_last_bytes", "Bytes the last export wrote to the tape library.",
                       [(labels, float(last.get("bytes") or 0))])
        lines += gauge("restorable_export_last_duration_seconds", "Seconds the last export took.",
                       [(labels, float(last.get("seconds") or 0))])
        lines += gauge("restorable_export_last_points", "Points the last export wrote.", [(labels, float(last.get("points") or 0))])
    return lines


def last_export(run: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any] | None:
    """What the run exported to a tape library, summed; else the previous run's summary."""
    exports = [item for item in run.get("export") or [] if isinstance(item, dict)]
    if not exports:
        return previous.get("last_export")
    return {"finished": run.get("finished"), "points": len(exports),
            "bytes": sum(int(item.get("bytes") or 0) for item in exports),
            "seconds": round(sum(float(item.get("seconds") or 0) for item in exports), 3),
            "cartridges": sorted({barcode for item in exports for barcode in item.get("cartridges") or []})}


def write_metrics(path: str, status: dict[str, Any], host: str) -> None:
    atomic_write(path, render_metrics(status, host), mode=0o644)
