# -*- coding: utf-8 -*-
# Private to restorable.backup: the Prometheus textfile of a drill host's scheduled drills.
# node_exporter's textfile collector reads <metrics_dir>/restorable_drill_<job>.prom beside the
# backups' files; the alert rules shipped in monitoring/ compare the age of the last passed drill
# with the drill's max age, and its RTO and RPO with their targets.
from __future__ import annotations

import os
from typing import Any, Sequence

from ..common.fileio import atomic_write
from ..core.status import gauge, labels_of, label_value, unix_time
from .report import key

DRILL_METRICS_PREFIX = "restorable_drill_"
# A drill counts for the 0 rule of 3-2-1-1-0 when it passes at least this often; the policy's
# default drill_max_age (31 days, so that a monthly drill counts).
DEFAULT_MAX_AGE_SECONDS = 31 * 86400
DRILL_RESULTS = ("passed", "failed", "skipped")


def drill_metrics_file(metrics_dir: str, job: str) -> str:
    """The node_exporter textfile of one scheduled drill job."""
    return os.path.join(metrics_dir, "%s%s.prom" % (DRILL_METRICS_PREFIX, job))


def _labels(record: dict[str, Any]) -> str:
    return labels_of(host=record.get("drill_host") or "", source_host=record.get("source_host") or "",
                     dataset=record.get("dataset") or "", drill=record.get("drill") or "", tier=record.get("tier") or "")


def _measured(record: dict[str, Any], measure: str, field: str) -> float | None:
    value = (record.get(measure) or {}).get(field)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def render_drill_metrics(records: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]],
                         max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS) -> str:
    """The metrics of the datasets a drill run covered (records), each from its newest record and
    its newest passed one in the ledger (history, oldest first: a failed run keeps the last pass)."""
    wanted = {key(record) for record in records}
    newest: dict[tuple[str, str, str], dict[str, Any]] = {}
    passed: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in list(history) + list(records):  # this run's records count even if the ledger lacks them
        if key(record) in wanted:
            newest[key(record)] = record
            if record.get("result") == "passed":
                passed[key(record)] = record
    latest = [newest[k] for k in sorted(newest)]

    def samples(value_of: Any) -> list[tuple[str, float]]:
        values = [(_labels(record), value_of(record)) for record in latest]
        return [(labels, value) for labels, value in values if value is not None]

    lines: list[str] = []
    lines += gauge("restorable_drill_last_run_timestamp_seconds", "End of the last restore drill of the dataset.",
                   samples(lambda r: unix_time(r.get("finished"))))
    lines += gauge("restorable_drill_last_pass_timestamp_seconds", "End of the last restore drill that passed (0: never).",
                   samples(lambda r: unix_time((passed.get(key(r)) or {}).get("finished"))))
    lines += gauge("restorable_drill_max_age_seconds", "A passed drill must be at most this old (drill_max_age).",
                   samples(lambda r: float(max_age_seconds)))
    lines += gauge("restorable_drill_rto_seconds", "Measured recovery time of the last drill.",
                   samples(lambda r: _measured(r, "rto", "seconds")))
    lines += gauge("restorable_drill_rto_target_seconds", "Recovery time objective of the drill.",
                   samples(lambda r: _measured(r, "rto", "target_seconds")))
    lines += gauge("restorable_drill_rpo_seconds", "Age of the restored recovery point in the last drill.",
                   samples(lambda r: _measured(r, "rpo", "seconds")))
    lines += gauge("restorable_drill_rpo_target_seconds", "Recovery point objective of the drill.",
                   samples(lambda r: _measured(r, "rpo", "target_seconds")))
    lines += gauge("restorable_drill_restored_bytes", "Bytes the last drill restored.",
                   samples(lambda r: float(r.get("bytes") or 0)))
    lines += gauge("restorable_drill_last_result", "1 for the result of the last drill.",
                   [('%s,result="%s"' % (_labels(r), label_value(result)), 1 if r.get("result") == result else 0)
                    for r in latest for result in DRILL_RESULTS])
    return "\n".join(lines) + "\n" if lines else ""


def write_drill_metrics(metrics_dir: str, job: str, records: Sequence[dict[str, Any]],
                        history: Sequence[dict[str, Any]], max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS) -> str:
    """Replace the drill job's textfile atomically; its path."""
    os.makedirs(metrics_dir, exist_ok=True)
    path = drill_metrics_file(metrics_dir, job)
    atomic_write(path, render_drill_metrics(records, history, max_age_seconds), mode=0o644)
    return path
