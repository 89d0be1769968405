# -*- coding: utf-8 -*-
# Private to restorable.backup: the evidence of restore drills, written on the controller by
# the drill_report action and on a drill host by its scheduled drill job (one implementation).
#
# Every drill record is appended to a ledger (JSON lines, one record a line, never rewritten),
# and each run writes, for its records: JUnit XML (one testcase per dataset drill, one failure
# per failed layer) for CI, and a self-contained HTML report and a Markdown report with a table
# per dataset and RTO/RPO trends drawn from the whole ledger.
from __future__ import annotations

import datetime
import html
import json
import os
import xml.etree.ElementTree as ET
from typing import Any, Iterable, Sequence

from ..common.fileio import atomic_write
from ..common.report_html import (badge, human_bytes, human_count, human_duration, human_rate, page,
                                  short_time, time_chart)

LEDGER = "ledger.jsonl"
JUNIT = "junit.xml"
HTML = "report.html"
MARKDOWN = "report.md"
HISTORY = 30  # runs per dataset in tables and trends


def key(record: dict[str, Any]) -> tuple[str, str, str]:
    return (record.get("source_host") or "", record.get("dataset") or "", record.get("drill") or "")


def append_ledger(path: str, records: Iterable[dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_ledger(path: str) -> list[dict[str, Any]]:
    """Every record of the ledger, oldest first; a damaged line is skipped, not fatal."""
    records = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    records.append(value)
    except FileNotFoundError:
        pass
    return records


def latest_drills(path: str) -> list[dict[str, Any]]:
    """The newest record of each (source host, dataset, drill) of a ledger, in short: what a
    status query answers (result, reason, when, RTO, RPO, failed layers)."""
    newest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in read_ledger(path):
        newest[key(record)] = record
    return [{"source_host": record.get("source_host"), "dataset": record.get("dataset"), "drill": record.get("drill"),
             "drill_host": record.get("drill_host"), "result": record.get("result"), "reason": record.get("reason") or "",
             "finished": record.get("finished"), "recovery_point": (record.get("recovery_point") or {}).get("id"),
             "rto": record.get("rto") or {}, "rpo": record.get("rpo") or {},
             "failed_layers": [layer.get("name") for layer in failed_layers(record)]}
            for name, record in sorted(newest.items())]


def failed_layers(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [layer for layer in record.get("layers") or [] if layer.get("status") == "failed"]


def _seconds(value: Any) -> str:
    return human_duration(None if value is None else float(value))


def measure(record: dict[str, Any], name: str) -> str:
    """'0.5 s / 15 min ok' for the rto or rpo of a record."""
    part = record.get(name) or {}
    verdict = {True: "ok", False: "EXCEEDED", None: ""}[part.get("met")]
    text = "%s / %s" % (_seconds(part.get("seconds")), _seconds(part.get("target_seconds")))
    return (text + " " + verdict).strip()


# -- JUnit -------------------------------------------------------------------------------------

def junit_xml(records: Sequence[dict[str, Any]]) -> str:
    suites = ET.Element("testsuites", name="restore drills")
    by_drill: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_drill.setdefault(record.get("drill") or "drill", []).append(record)
    for drill, items in sorted(by_drill.items()):
        failures = sum(1 for r in items if r.get("result") == "failed")
        suite = ET.SubElement(suites, "testsuite", name=drill, tests=str(len(items)), failures=str(failures),
                              errors="0", skipped=str(sum(1 for r in items if r.get("result") == "skipped")),
                              timestamp=(items[0].get("started") or "").rstrip("Z"))
        for record in items:
            case = ET.SubElement(suite, "testcase", classname="restorable.drill.%s" % drill,
                                 name="%s on %s" % (record.get("dataset"), record.get("source_host")),
                                 time="%.3f" % float((record.get("rto") or {}).get("seconds") or 0))
            for layer in failed_layers(record):
                failure = ET.SubElement(case, "failure", type=layer.get("name") or "layer",
                                        message="%s: %s" % (layer.get("name"), layer.get("message")))
                failure.text = layer.get("message") or ""
            if record.get("result") == "skipped":
                ET.SubElement(case, "skipped", message=record.get("reason") or "check mode")
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join("%-15s %-8s %s" % (l.get("name"), l.get("status"), l.get("message"))
                                 for l in record.get("layers") or [])
    return ET.tostring(suites, encoding="unicode")


# -- trends (inline SVG) -------------------------------------------------------------------------

def trend_svg(title: str, points: Sequence[tuple[str | None, float | None]], target: float | None,
              kind: str = "seconds", width: int = 380, height: int = 150) -> str:
    """A small chart of values over the runs' start times, scaled to the values, with the target."""
    return time_chart(title, points, kind, target, width, height)


def _groups(records: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(latest record, its history oldest first) per dataset drill of this run."""
    result = []
    for record in records:
        runs = [r for r in history if key(r) == key(record)][-HISTORY:]
        if not runs or runs[-1] is not record and runs[-1].get("run_id") != record.get("run_id"):
            runs.append(record)
        result.append((record, runs))
    return result


# -- HTML --------------------------------------------------------------------------------------

def html_report(records: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]], generated: str) -> str:
    esc = html.escape
    failed = sum(1 for r in records if r.get("result") == "failed")
    outcome = '<span class="bad">%d failed</span>' % failed if failed else "none failed"
    out = ["<h1>Restore drills</h1><p>Generated %s: %d dataset drill(s), %s.</p>" % (esc(short_time(generated)), len(records), outcome),
           "<table><tr><th>drill</th><th>dataset</th><th>host</th><th>drill host</th><th>result</th>"
           "<th>RTO / target</th><th>RPO / target</th><th>point</th><th>restored</th></tr>"]
    for record in records:
        out.append("<tr><td>%s</td><td><a href=\"#%s\">%s</a></td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td class=\"num\">%s</td><td class=\"num\">%s</td><td>%s</td><td class=\"num\">%s</td></tr>" % (
                       esc(record.get("drill") or ""), esc(_anchor(record)), esc(record.get("dataset") or ""),
                       esc(record.get("source_host") or ""), esc(record.get("drill_host") or ""), badge(record.get("result")),
                       esc(measure(record, "rto")), esc(measure(record, "rpo")),
                       esc(((record.get("recovery_point") or {}).get("short_id")) or "-"), esc(_restored(record))))
    out.append("</table>")
    for record, runs in _groups(records, history):
        out.append("<section id=\"%s\"><h2>%s on %s (drill %s)</h2>" % (
            esc(_anchor(record)), esc(record.get("dataset") or ""), esc(record.get("source_host") or ""),
            esc(record.get("drill") or "")))
        out.append("<p>Run %s, %s to %s, restored on %s into %s. %s</p>" % (
            esc(record.get("run_id") or "-"), esc(short_time(record.get("started"))), esc(short_time(record.get("finished"))),
            esc(record.get("drill_host") or ""), esc(record.get("sandbox") or ""), esc(record.get("reason") or "")))
        out.append("<table><tr><th>layer</th><th>status</th><th>time</th><th>message</th></tr>")
        for layer in record.get("layers") or []:
            out.append("<tr><td>%s</td><td>%s</td><td class=\"num\">%s</td><td>%s</td></tr>" % (
                esc(layer.get("name") or ""), badge(layer.get("status")),
                esc(human_duration(float(layer.get("seconds") or 0))), esc(layer.get("message") or "")))
        out.append("</table>")
        out.append('<div class="charts">%s</div>' % "".join(_trends(record, runs)))
        out.append("<table><tr><th>started</th><th>result</th><th>RTO / target</th><th>RPO / target</th>"
                   "<th>point</th><th>restored</th><th>throughput</th><th>failed layers</th></tr>")
        for run in reversed(runs):
            out.append("<tr><td>%s</td><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%s</td><td>%s</td>"
                       "<td class=\"num\">%s</td><td class=\"num\">%s</td><td>%s</td></tr>" % (
                           esc(short_time(run.get("started"))), badge(run.get("result")),
                           esc(measure(run, "rto")), esc(measure(run, "rpo")),
                           esc(((run.get("recovery_point") or {}).get("short_id")) or "-"), esc(_restored(run)),
                           esc(_throughput(run)), esc(", ".join(layer.get("name") or "" for layer in failed_layers(run)) or "-")))
        out.append("</table></section>")
    return page("Restore drills %s" % short_time(generated), out)


def _trends(record: dict[str, Any], runs: Sequence[dict[str, Any]]) -> list[str]:
    """RTO, RPO and restored size over the runs, each on the runs' start times."""
    def series(name: str) -> list[tuple[str | None, float | None]]:
        return [(r.get("started"), (r.get(name) or {}).get("seconds")) for r in runs]

    return [trend_svg("RTO (restore time), last %d runs" % len(runs), series("rto"), (record.get("rto") or {}).get("target_seconds")),
            trend_svg("RPO (age of newest point), last %d runs" % len(runs), series("rpo"),
                      (record.get("rpo") or {}).get("target_seconds")),
            trend_svg("Restored size, last %d runs" % len(runs), [(r.get("started"), r.get("bytes")) for r in runs], None, "bytes")]


def _anchor(record: dict[str, Any]) -> str:
    return "%s-%s-%s" % key(record)


def _restored(record: dict[str, Any]) -> str:
    """'1.2 MiB in 12 files'; '-' when the drill restored nothing."""
    if not record.get("bytes") and not record.get("files"):
        return "-"
    files = record.get("files")
    return human_bytes(record.get("bytes") or 0) + (" in %s" % human_count(int(files), "file") if files else "")


def _throughput(record: dict[str, Any]) -> str:
    value = record.get("throughput_bytes_per_second")
    return human_rate(float(value)) if value else "-"


# -- Markdown ------------------------------------------------------------------------------------

def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_report(records: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]], generated: str) -> str:
    failed = sum(1 for r in records if r.get("result") == "failed")
    lines = ["# Restore drills", "", "Generated %s: %d dataset drill(s), %d failed." % (short_time(generated), len(records), failed), "",
             "| drill | dataset | host | drill host | result | RTO / target | RPO / target | point | restored |",
             "|---|---|---|---|---|---|---|---|---|"]
    for record in records:
        lines.append("| %s |" % " | ".join(_cell(v) for v in (
            record.get("drill"), record.get("dataset"), record.get("source_host"), record.get("drill_host"),
            record.get("result"), measure(record, "rto"), measure(record, "rpo"),
            (record.get("recovery_point") or {}).get("short_id") or "-", _restored(record))))
    for record, runs in _groups(records, history):
        lines += ["", "## %s on %s (drill %s)" % (record.get("dataset"), record.get("source_host"), record.get("drill")), "",
                  "| layer | status | time | message |", "|---|---|---|---|"]
        for layer in record.get("layers") or []:
            lines.append("| %s | %s | %s | %s |" % (_cell(layer.get("name")), _cell(layer.get("status")),
                                                    _cell(human_duration(float(layer.get("seconds") or 0))), _cell(layer.get("message"))))
        lines += ["", _range_line(record, runs), "",
                  "| started | result | RTO / target | RPO / target | restored | throughput |", "|---|---|---|---|---|---|"]
        for run in reversed(runs):
            lines.append("| %s |" % " | ".join(_cell(v) for v in (
                short_time(run.get("started")), run.get("result"), measure(run, "rto"), measure(run, "rpo"),
                _restored(run), _throughput(run))))
    return "\n".join(lines) + "\n"


def _range_line(record: dict[str, Any], runs: Sequence[dict[str, Any]]) -> str:
    """The trend in words, where no chart can be drawn: 'RTO over the last 7 runs: 0.42 s to 0.61 s (target 15 min); ...'."""
    parts = []
    for name in ("rto", "rpo"):
        values = [float(v) for v in ((r.get(name) or {}).get("seconds") for r in runs) if v is not None]
        if values:
            target = (record.get(name) or {}).get("target_seconds")
            note = " (target %s)" % human_duration(target) if target else ""
            parts.append("%s %s to %s%s" % (name.upper(), human_duration(min(values)), human_duration(max(values)), note))
    return "Over the last %s: %s." % (human_count(len(runs), "run"), "; ".join(parts) or "nothing measured")


def summary_lines(records: Sequence[dict[str, Any]]) -> list[str]:
    """A one-screen table: dataset, host, result, RTO vs target, RPO vs target."""
    header = ("dataset", "host", "drill host", "result", "RTO / target", "RPO / target")
    rows = [header] + [(str(r.get("dataset")), str(r.get("source_host")), str(r.get("drill_host")),
                        str(r.get("result")), measure(r, "rto"), measure(r, "rpo")) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for record in records:
        for layer in failed_layers(record):
            lines.append("%s on %s: %s: %s" % (record.get("dataset"), record.get("source_host"), layer.get("name"),
                                               layer.get("message")))
    return lines


def write_evidence(directory: str, records: Sequence[dict[str, Any]],
                   now: datetime.datetime | None = None) -> dict[str, Any]:
    """Append records to the ledger and write this run's JUnit, HTML and Markdown reports."""
    os.makedirs(directory, exist_ok=True)
    generated = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ledger = os.path.join(directory, LEDGER)
    append_ledger(ledger, records)
    history = read_ledger(ledger)
    paths = {"ledger": ledger, "junit": os.path.join(directory, JUNIT), "html": os.path.join(directory, HTML),
             "markdown": os.path.join(directory, MARKDOWN)}
    atomic_write(paths["junit"], '<?xml version="1.0" encoding="UTF-8"?>\n' + junit_xml(records) + "\n")
    atomic_write(paths["html"], html_report(records, history, generated))
    atomic_write(paths["markdown"], markdown_report(records, history, generated))
    paths["failed_drills"] = sum(1 for r in records if r.get("result") == "failed")
    paths["records"] = len(records)
    paths["summary"] = summary_lines(records)
    return paths


def records_from_results(results_by_host: dict[str, Any]) -> list[dict[str, Any]]:
    """Drill records out of each host's registered loop of drill tasks.

    A task that failed before the drill could record anything (bad arguments, unreachable
    drill host) still counts as a failed drill, so it is never silently missing from evidence.
    """
    records = []
    for host, registered in sorted(results_by_host.items()):
        for item in (registered or {}).get("results") or []:
            if not isinstance(item, dict) or item.get("skipped"):
                continue
            record = item.get("record")
            if isinstance(record, dict) and record.get("dataset"):
                records.append(record)
            elif item.get("failed") or item.get("unreachable"):
                loop_item = item.get("item")
                # The playbook loops over the entries of the drills_of filter.
                params = (loop_item.get("params") or {}) if isinstance(loop_item, dict) else {}
                records.append(failed_record(str(params.get("drill", "?")), str(params.get("dataset", "?")), host,
                                             str(params.get("drill_host", "?")), str(item.get("msg") or "the drill task failed")))
    return records


def failed_record(drill: str, dataset: str, source_host: str, drill_host: str, message: str) -> dict[str, Any]:
    """The record of a drill that failed before it could record anything itself."""
    return {"format": 1, "drill": drill, "dataset": dataset, "tier": "agent", "source_host": source_host,
            "drill_host": drill_host, "result": "failed", "reason": message, "started": None, "finished": None,
            "rto": {}, "rpo": {}, "layers": [{"name": "drill", "status": "failed", "message": message, "seconds": 0}]}
