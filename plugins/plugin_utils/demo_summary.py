# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-screen summary that ends the demo: per dataset what the audit found (tier, status,
copies with the age of their newest point, last drill with its RTO), then per restic repository
how much its points hold against what it stores (the deduplication ratio), from `restic stats`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from ansible_collections.restorable.backup.plugins.module_utils.common.report_html import human_bytes, human_duration

STATS_MODES = ("raw-data", "restore-size")


class DemoSummaryError(ValueError):
    """Input the summary cannot read; the message names what and where."""


@dataclass(frozen=True)
class RepositoryStats:
    """One restic repository: every point restored in full (restore-size over all snapshots)
    against the bytes the repository stores (raw-data)."""

    host: str
    target: str
    points: int
    logical_bytes: int
    stored_bytes: int

    @property
    def ratio(self) -> float | None:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else None


def repository_stats(host: str, target: str, outputs: dict[str, str]) -> RepositoryStats:
    """From the JSON of `restic stats --json --mode raw-data` and `--mode restore-size`."""
    parsed = {mode: _stats_json(host, target, mode, outputs.get(mode)) for mode in STATS_MODES}
    return RepositoryStats(host=host, target=target, points=int(parsed["restore-size"].get("snapshots_count") or 0),
                           logical_bytes=int(parsed["restore-size"].get("total_size") or 0),
                           stored_bytes=int(parsed["raw-data"].get("total_size") or 0))


def _stats_json(host: str, target: str, mode: str, text: str | None) -> dict[str, Any]:
    if not text:
        raise DemoSummaryError(f"host {host}, repository {target}: no output of restic stats --mode {mode}")
    try:
        value = json.loads(text)
    except ValueError:
        raise DemoSummaryError(f"host {host}, repository {target}: restic stats --mode {mode} printed no JSON: "
                               f"{text[:200]!r}") from None
    if not isinstance(value, dict):
        raise DemoSummaryError(f"host {host}, repository {target}: restic stats --mode {mode} printed {type(value).__name__}")
    return value


def stats_from_output(host: str, stdout: str) -> list[RepositoryStats]:
    """From lines 'TARGET MODE JSON', one per repository and mode (playbooks/demo.yml prints them)."""
    outputs: dict[str, dict[str, str]] = {}
    for line in stdout.splitlines():
        fields = line.split(" ", 2)
        if len(fields) == 3 and fields[1] in STATS_MODES:
            outputs.setdefault(fields[0], {})[fields[1]] = fields[2]
    return [repository_stats(host, target, modes) for target, modes in sorted(outputs.items())]


def stats_of_hosts(outputs: Sequence[tuple[str, str]]) -> tuple[list[RepositoryStats], list[str]]:
    """The stats of every (host, output) and what could not be read: a repository whose stats
    failed must not cost the rest of the summary."""
    repositories: list[RepositoryStats] = []
    problems: list[str] = []
    for host, stdout in sorted(outputs):
        try:
            repositories += stats_from_output(host, stdout)
        except DemoSummaryError as exc:
            problems.append(str(exc))
    return repositories, problems


class DemoSummary:
    """The summary's lines from the audit document (format 1) and the repositories' stats."""

    def __init__(self, audit: dict[str, Any], repositories: Sequence[RepositoryStats], audit_page: str,
                 problems: Sequence[str] = ()) -> None:
        if not isinstance(audit, dict) or audit.get("format") != 1:
            raise DemoSummaryError(f"{audit_page}: not an audit document of format 1")
        self.audit = audit
        self.repositories = repositories
        self.audit_page = audit_page
        self.problems = problems
        self.datasets = sorted(audit.get("datasets") or [], key=lambda d: (str(d.get("host")), str(d.get("dataset"))))

    def lines(self) -> list[str]:
        return self.headline() + [""] + self.protected() + [""] + self.deduplication()

    def headline(self) -> list[str]:
        counts = self.audit.get("summary") or {}
        hosts = self.audit.get("hosts") or []
        unreachable = [h.get("host") for h in hosts if not h.get("reachable", True)]
        line = (f"{counts.get('datasets', 0)} datasets on {counts.get('hosts', len(hosts))} hosts: "
                f"{counts.get('green', 0)} green, {counts.get('amber', 0)} amber, {counts.get('red', 0)} red")
        lines = [line + (f"; unreachable: {', '.join(map(str, unreachable))}" if unreachable else ""),
                 f"audit page: {self.audit_page}"]
        return lines

    def protected(self) -> list[str]:
        header = ("host", "dataset", "tier", "status", "copies: newest point's age", "last drill")
        rows = [(str(d.get("host")), str(d.get("dataset")), str(d.get("tier")),
                 f"{d.get('status')} {d.get('score', '')}".strip(), copies_cell(d.get("copies") or []),
                 drill_cell(d.get("drill")) + marks_suffix(d.get("marks") or []))
                for d in self.datasets]
        return table(header, rows) + self.reasons()

    def reasons(self) -> list[str]:
        """Why each dataset is not green, in the audit's words: the one line to act on."""
        return [f"{d.get('host')}/{d.get('dataset')} {d.get('status')}: {'; '.join(map(str, d.get('reasons') or []))}"
                for d in self.datasets
                if d.get("status") != "green" and d.get("reasons")]

    def deduplication(self) -> list[str]:
        header = ("host", "repository", "points", "all points, restored", "stored", "ratio")
        rows = [(r.host, r.target, str(r.points), human_bytes(r.logical_bytes), human_bytes(r.stored_bytes),
                 f"{r.ratio:.1f}x" if r.ratio else "-") for r in self.repositories]
        measured = table(header, rows) if rows else ["no restic repository measured"]
        return (["deduplication and compression (restic stats: restore-size of every point vs raw-data)"]
                + measured + [f"not measured: {problem}" for problem in self.problems])


def copies_cell(copies: Sequence[dict[str, Any]]) -> str:
    """'local-repo 2 min, second-disk 2 min (amber)': a copy's status only when it is not green."""
    cells = []
    for copy in copies:
        age = human_duration(copy.get("age_seconds")) if copy.get("age_seconds") is not None else "no point"
        status = copy.get("status")
        cells.append(f"{copy.get('name')} {age}" + (f" ({status})" if status and status != "green" else ""))
    return ", ".join(cells) or "none"


def drill_cell(drill: dict[str, Any] | None) -> str:
    """'passed 3 min ago, RTO 2.1 s / 15 min' or 'never'."""
    if not drill:
        return "never"
    text = f"{drill.get('result')} {human_duration(drill.get('age_seconds'))} ago"
    if drill.get("rto_seconds") is not None:
        text += f", RTO {human_duration(drill.get('rto_seconds'))}"
        if drill.get("rto_target_seconds") is not None:
            text += f" / {human_duration(drill.get('rto_target_seconds'))}"
    return text


def marks_suffix(marks: Sequence[str]) -> str:
    return f" [{'; '.join(marks)}]" if marks else ""


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, a rule under the header, no trailing blanks."""
    every = [tuple(header)] + [tuple(row) for row in rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in every]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines
