# -*- coding: utf-8 -*-
# Private to restorable.backup: the evaluated audit document as JUnit (one test case per dataset
# and rule, a failure per violation, so CI fails on one) and as a one-screen summary.
from __future__ import annotations

import json
import os
from html import escape
from typing import Any

from ...module_utils.common.fileio import atomic_write
from ...module_utils.common.report_html import human_duration
from ..heap import cycle_collection_paused

RPO_CASE = "newest point within RPO"
DRILL_CASE = "last drill passed"


def quoteattr(text: str) -> str:
    return '"%s"' % escape(text, quote=True)


class _Escaped(dict):
    """text -> its escape, each text escaped once: rules' details, dataset and rule names repeat across a fleet."""

    def __init__(self, quote: bool) -> None:
        super().__init__()
        self.quote = quote

    def __missing__(self, text: str) -> str:
        value = self[text] = escape(text, quote=self.quote)
        return value


def junit_xml(document: dict[str, Any]) -> str:
    """Written as text, not with ElementTree: a fleet of 10,000 hosts has hundreds of thousands of cases."""
    with cycle_collection_paused():
        return _junit_text(document)


def _junit_text(document: dict[str, Any]) -> str:
    by_host: dict[str, list[dict[str, Any]]] = {}
    for dataset in document.get("datasets") or []:
        by_host.setdefault(dataset["host"], []).append(dataset)
    stamp = quoteattr((document.get("generated") or "").rstrip("Z"))
    esc, text = _Escaped(quote=True), _Escaped(quote=False)  # attributes, element text
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<testsuites name="restorable audit">']
    for host in sorted(by_host):
        cases = [case for dataset in by_host[host] for case in _cases(dataset)]
        failures = sum(1 for _d, _name, ok, _detail in cases if not ok)
        out.append('<testsuite name="%s" tests="%d" failures="%d" errors="0" timestamp=%s>' % (esc[host], len(cases), failures, stamp))
        for dataset, name, ok, detail in cases:
            head = '<testcase classname="restorable.audit.%s.%s" name="%s: %s" time="0">' % (
                esc[host], esc[dataset["dataset"]], esc[dataset["dataset"]], esc[name])
            if ok:
                out.append('%s<system-out>%s</system-out></testcase>' % (head, text[detail]))
            else:
                out.append('%s<failure type="%s" message="%s on %s: %s">%s</failure></testcase>' % (
                    head, esc[name], esc[dataset["dataset"]], esc[host], esc[detail], text[detail]))
        out.append("</testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def _cases(dataset: dict[str, Any]) -> list[tuple[dict[str, Any], str, bool, str]]:
    """The dataset's rules, then its RPO and its last drill; a host not reached fails them all."""
    if not dataset.get("rules"):
        why = "; ".join(dataset.get("reasons") or []) or "nothing observed"
        return [(dataset, "observed", False, why)]
    cases = [(dataset, rule["rule"], rule["ok"], rule["detail"]) for rule in dataset["rules"]]
    stale = [r for r in dataset.get("reasons") or [] if r.startswith(("newest point", "no recovery point"))]
    cases.append((dataset, RPO_CASE, not stale, "; ".join(stale) or "newest point within %s" % human_duration(dataset.get("rpo_seconds"))))
    drill = dataset.get("drill")
    passed = bool(drill) and drill.get("result") == "passed"
    cases.append((dataset, DRILL_CASE, passed, "no drill restored this dataset" if not drill else "%s drill %s on %s: %s" % (
        drill.get("source"), drill.get("drill"), drill.get("drill_host"), drill.get("result"))))
    return cases


def summary_lines(document: dict[str, Any]) -> list[str]:
    """One line per dataset (status, host, dataset, tier, score, newest point, first reason) and the totals."""
    lines = []
    for dataset in document.get("datasets") or []:
        ages = [c["age_seconds"] for c in dataset.get("copies") or [] if c.get("age_seconds") is not None]
        newest = "newest %s old" % human_duration(min(ages)) if ages else "no point"
        reasons = dataset.get("reasons") or []
        marks = " [%s]" % ", ".join(dataset["marks"]) if dataset.get("marks") else ""
        lines.append("%-5s %s/%s (%s) %s, %s%s%s" % (
            dataset["status"].upper(), dataset["host"], dataset["dataset"], dataset.get("tier"), dataset.get("score"), newest,
            ": " + reasons[0] if reasons else "", marks))
    summary = document.get("summary") or {}
    lines.append("%d host(s), %d unreachable; %d dataset(s): %d green, %d amber, %d red" % (
        summary.get("hosts", 0), summary.get("unreachable", 0), summary.get("datasets", 0),
        summary.get("green", 0), summary.get("amber", 0), summary.get("red", 0)))
    return lines


def write_audit(directory: str, document: dict[str, Any]) -> dict[str, str]:
    """audit.json, junit.xml and audit.html of one audit in directory (each replaced atomically)."""
    from ..audit_html import render_audit_html  # pylint: disable=import-outside-toplevel  # the page's code only when writing
    os.makedirs(directory, exist_ok=True)
    paths = {"json": os.path.join(directory, "audit.json"), "junit": os.path.join(directory, "junit.xml"),
             "html": os.path.join(directory, "audit.html")}
    with cycle_collection_paused():
        atomic_write(paths["json"], json_text(document))
        atomic_write(paths["junit"], junit_xml(document))
        atomic_write(paths["html"], render_audit_html(document))
    return paths


def json_text(document: dict[str, Any]) -> str:
    """The document with sorted keys, each entry of a top-level list on a line of its own. Encoded by
    json's C encoder, which indent= would replace by the pure-Python one (three times slower)."""
    encode = json.JSONEncoder(sort_keys=True).encode
    fields = []
    for key in sorted(document):
        value = document[key]
        if isinstance(value, list) and value:
            value_text = "[\n  %s\n ]" % ",\n  ".join(encode(item) for item in value)
        else:
            value_text = encode(value)
        fields.append(" %s: %s" % (encode(key), value_text))
    return "{\n%s\n}\n" % ",\n".join(fields)
