# -*- coding: utf-8 -*-
# Private to restorable.backup: the scheduled restore drill on a drill host.
#   python3 -m restorable_agent drill --config /etc/restorable/drills/NAME.json [--quiet]
# The configuration (written 0600 by the job module) lists the datasets of one
# drill of one source host as the drill module's parameters, with every secret as a path to
# a private file. Each dataset runs through run_drill (its tier's restore side), the code the drill module runs;
# the records go to the host's ledger with this run's JUnit, HTML and Markdown reports.
# Exit status: 0 all passed, 1 a drill failed, 2 unusable configuration, 76 already running.
from __future__ import annotations

import logging
import os
import sys
from typing import Any

from ..common.fileio import read_json
from ..common.locks import FileLock, LockBusy
from ..common.process import SecretFileError, check_private_file
from ..drill.engine import DrillError
from ..drill.metrics import DEFAULT_MAX_AGE_SECONDS, write_drill_metrics
from ..drill.report import failed_record, read_ledger, summary_lines, write_evidence
from ..evidence.shipper import EvidenceConfig, record_evidence
from .registry import run_drill

CONFIG_FORMAT = 1
EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 1, 2, 76
_LOG = logging.getLogger("restorable-drill")


class DrillConfigError(Exception):
    pass


def load_drill_config(path: str) -> dict[str, Any]:
    """The drill configuration at path; refused unless private, of this format and complete."""
    try:
        check_private_file(path, "drill configuration")
        document = read_json(path)
    except (SecretFileError, ValueError) as exc:
        raise DrillConfigError(str(exc)) from None
    if not isinstance(document, dict) or document.get("format") != CONFIG_FORMAT:
        raise DrillConfigError("%s is not a restore drill configuration of format %d" % (path, CONFIG_FORMAT))
    missing = [k for k in ("name", "evidence_dir", "datasets") if not document.get(k)]
    if missing:
        raise DrillConfigError("%s lacks %s" % (path, ", ".join(missing)))
    if document.get("evidence") is not None:
        try:
            document["evidence"] = EvidenceConfig.from_dict(document["evidence"])
        except ValueError as exc:
            raise DrillConfigError("%s: %s" % (path, exc)) from None
    return document


def drill_dataset(params: dict[str, Any]) -> dict[str, Any]:
    """The record of one dataset's drill; a drill that cannot even start is a failed record."""
    params = dict(params)
    status_file = params.pop("status_file", None)
    if status_file and os.path.exists(status_file):
        # Only a drill on its own source host can read the backup's status (canary, snapshot).
        try:
            params["status"] = read_json(status_file) or {}
        except ValueError as exc:
            _LOG.warning("ignoring the unreadable status %s: %s", status_file, exc)
    try:
        return run_drill(params)
    except (DrillError, SecretFileError, OSError) as exc:
        return failed_record(params["drill"], params["dataset"], params["source_host"], params.get("drill_host") or "?", str(exc))


def run_drill_config(path: str, quiet: bool = False) -> int:
    try:
        config = load_drill_config(path)
    except DrillConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        with FileLock(os.path.join(config["evidence_dir"], config["name"] + ".lock")):
            records = [drill_dataset(params) for params in config["datasets"]]
            written = write_evidence(config["evidence_dir"], records)
            _ship(config.get("evidence"), records)
            _write_metrics(path, config, records, written["ledger"])
    except LockBusy as exc:
        return _fail("drill %s is already running (%s)" % (config["name"], exc), EXIT_LOCKED)
    if not quiet:
        _out("\n".join(written["summary"] + ["", "Report: " + written["html"], "JUnit: " + written["junit"]]))
    if written["failed_drills"]:
        return _fail("%d of %d dataset drill(s) of %s failed:\n%s" % (
            written["failed_drills"], written["records"], config["name"], "\n".join(summary_lines(records)[2:])), EXIT_FAILED)
    return 0


def _ship(evidence: EvidenceConfig | None, records: list[dict[str, Any]]) -> None:
    """Chain the drill records into the host's evidence ledger too, and ship them (never fatal)."""
    if evidence is None:
        return
    host = evidence.host or records[0].get("drill_host") or ""
    outcome = record_evidence(evidence, host, "drill", *records)
    if outcome and outcome["problem"]:
        _LOG.warning("%s", outcome["problem"])


def _write_metrics(path: str, config: dict[str, Any], records: list[dict[str, Any]], ledger: str) -> None:
    """The drill job's textfile for node_exporter (when the configuration names a metrics_dir);
    a problem is a warning: the drill itself is over and its evidence written."""
    if not config.get("metrics_dir"):
        return
    max_age = config.get("max_age_seconds", DEFAULT_MAX_AGE_SECONDS)
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
        _LOG.warning("%s: max_age_seconds: expected a number of seconds, got %r; using %d", path, max_age, DEFAULT_MAX_AGE_SECONDS)
        max_age = DEFAULT_MAX_AGE_SECONDS
    try:
        write_drill_metrics(config["metrics_dir"], config["name"], records, read_ledger(ledger), max_age)
    except OSError as exc:
        _LOG.warning("the drill metrics could not be written to %s: %s", config["metrics_dir"], exc)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int) -> int:
    sys.stderr.write("restorable-drill: error: %s\n" % message)
    return code
