# -*- coding: utf-8 -*-
# Private to restorable.backup: the fleet audit as one self-contained HTML page, read at a
# glance: counts first, unreachable hosts next, then one table per site and host with every
# dataset's status, why, the age of its newest point against its RPO, its copies and their
# locks, the 3-2-1-1-0 gaps in plain words, its last drill and small trend charts.
#
# The page renders the evaluated audit document (format 1) as it is: it judges nothing itself,
# so the page, the JSON and the JUnit of one audit never disagree.
#
# It grows with the problems, not with the fleet: the datasets that need attention most (red,
# then amber) get a full row, the first of them trend charts; past those budgets a dataset is a
# compact row, and a host with nothing shown in detail is one name in its site's list. Every
# dataset stays on the page; the JSON report holds every detail.
from __future__ import annotations

import html
from typing import Any, Optional

from ..module_utils.common.report_html import STATUS_COLOURS, badge, human_count, human_duration, page, short_time, time_chart

_STATUS_ORDER = {"red": 0, "amber": 1, "green": 2}
_CHART = {"width": 300, "height": 120}
_COLUMNS = ("dataset", "tier", "status", "why", "newest point / RPO", "copies", "3-2-1-1-0", "last drill")
_WIDTHS = (10, 5, 7, 19, 9, 23, 15, 12)  # percent: every host's table lines up with the others
DETAILED_ROWS = 500  # full rows on one page; about 1 ms each
CHARTED_ROWS = 100  # of those, the ones with trend charts; about 3 ms each

esc = html.escape


class AuditPage:
    """One audit document, rendered; every section is a small method returning HTML lines."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.hosts = [h for h in document.get("hosts") or [] if isinstance(h, dict)]
        self.datasets = [d for d in document.get("datasets") or [] if isinstance(d, dict)]
        # Indexed once: a fleet of 10,000 hosts must not scan every dataset for every host.
        self.host_info = {h.get("host") or "": h for h in self.hosts}
        self.by_site: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for host in self.hosts:
            self.by_site.setdefault(self._site_of(host), {}).setdefault(host.get("host") or "", [])
        for dataset in self.datasets:
            self.by_site.setdefault(dataset.get("site") or "", {}).setdefault(dataset.get("host") or "", []).append(dataset)
        ranked = sorted(self.datasets, key=_priority)  # stable: red first, then amber, in the document's order
        self.detailed = {id(d) for d in ranked[:DETAILED_ROWS]}
        self.charted = {id(d) for d in ranked[:CHARTED_ROWS]}

    def render(self) -> str:
        body = ["<h1>Backup audit</h1>",
                '<p class="muted">Generated %s from %s. Every dataset declared in the policy, judged on what the hosts '
                'and targets hold: its newest recovery point against its RPO, its copies, 3-2-1-1-0 and its last '
                'restore drill.</p>' % (esc(short_time(self.document.get("generated"))), esc(self._source()))]
        body += self._summary() + self._unreachable() + self._budget_note()
        for site in sorted(self.by_site):
            body += self._site(site)
        return page("Backup audit %s" % short_time(self.document.get("generated")), body)

    def _source(self) -> str:
        source = self.document.get("source") or "unknown"
        return {"ssh": "the hosts over SSH", "bucket": "the evidence bucket"}.get(source, source)

    @staticmethod
    def _site_of(host: dict[str, Any]) -> str:
        return host.get("site") or ""

    # -- summary ---------------------------------------------------------------------------------

    def _summary(self) -> list[str]:
        summary = self.document.get("summary") or {}
        tiles = [("hosts", summary.get("hosts", len(self.hosts)), ""),
                 ("unreachable", summary.get("unreachable", 0), "red" if summary.get("unreachable") else ""),
                 ("datasets", summary.get("datasets", len(self.datasets)), ""),
                 ("green", summary.get("green", 0), "green"), ("amber", summary.get("amber", 0), "amber"),
                 ("red", summary.get("red", 0), "red")]
        out = ['<div class="tiles" id="summary">']
        for label, value, colour in tiles:
            style = ' style="border-color:%s"' % _colour(colour) if colour and value else ""
            out.append('<div class="tile"%s><b%s>%s</b><span>%s</span></div>' % (
                style, ' style="color:%s"' % _colour(colour) if colour and value else "", esc(str(value)), esc(label)))
        out.append("</div>")
        out.append('<p><b>%s</b></p>' % esc(self._verdict(summary)))
        return out

    @staticmethod
    def _verdict(summary: dict[str, Any]) -> str:
        red, amber, unreachable = (int(summary.get(k) or 0) for k in ("red", "amber", "unreachable"))
        parts = ["%s need%s attention (%d red, %d amber)" % (human_count(red + amber, "dataset"), "s" if red + amber == 1 else "", red, amber)
                 ] if red + amber else []
        if unreachable:
            parts.append("%s unreachable" % human_count(unreachable, "host"))
        text = "; ".join(parts) or "every dataset is green"
        return text[0].upper() + text[1:] + "."

    def _unreachable(self) -> list[str]:
        down = [h for h in self.hosts if not h.get("reachable", True)]
        if not down:
            return []
        items = "".join("<li><b>%s</b> (site %s): %s</li>" % (
            esc(h.get("host") or "?"), esc(self._site_of(h) or "-"), esc(h.get("message") or "unreachable")) for h in down)
        return ['<div class="alert" id="unreachable"><b>%s unreachable</b>; their datasets stay in the audit, judged on the '
                'last evidence known:<ul class="plain">%s</ul></div>' % (esc(human_count(len(down), "host")), items)]

    def _budget_note(self) -> list[str]:
        if len(self.datasets) <= CHARTED_ROWS:
            return []
        return ['<p class="muted">%s shown in full (red first, then amber), the first %d with trend charts; every other '
                'dataset is listed compactly. The JSON report holds every detail.</p>' % (
                    esc(human_count(len(self.detailed), "dataset")), min(CHARTED_ROWS, len(self.charted)))]

    # -- per site and host ------------------------------------------------------------------------

    def _site(self, site: str) -> list[str]:
        out = ['<h2>Site %s</h2>' % esc(site or "(none)")]
        quiet = []  # hosts with nothing shown in detail: one name each
        for name, datasets in sorted(self.by_site[site].items()):
            info = self.host_info.get(name) or {"host": name, "reachable": True}
            if info.get("reachable", True) and datasets and not any(id(d) in self.detailed for d in datasets):
                quiet.append((name, datasets))
            else:
                out += self._host(name, info, datasets)
        return out + self._quiet_hosts(quiet)

    def _host(self, name: str, info: dict[str, Any], datasets: list[dict[str, Any]]) -> list[str]:
        state = ('<span class="bad">unreachable: %s</span>' % esc(info.get("message") or "no answer") if not info.get("reachable", True)
                 else '<span class="good">reachable</span>')
        out = ['<h3 id="host-%s">%s <small>%s</small></h3>' % (esc(name), esc(name), state)]
        if not datasets:
            return out + ['<p class="muted">No dataset declared.</p>']
        out.append('<table class="audit"><colgroup>%s</colgroup><tr>%s</tr>' % (
            "".join('<col style="width:%d%%">' % w for w in _WIDTHS), "".join("<th>%s</th>" % esc(c) for c in _COLUMNS)))
        rest = []
        for dataset in sorted(datasets, key=lambda d: (_priority(d), d.get("dataset") or "")):
            if id(dataset) in self.detailed:
                out += DatasetRow(dataset).render(len(_COLUMNS), id(dataset) in self.charted)
            else:
                rest.append(dataset)
        if rest:
            out.append('<tr class="compact"><td colspan="%d">%s</td></tr>' % (len(_COLUMNS), _compact(rest)))
        out.append("</table>")
        return out

    @staticmethod
    def _quiet_hosts(quiet: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
        if not quiet:
            return []
        count = sum(len(datasets) for _name, datasets in quiet)
        items = "".join("<li><b>%s</b>: %s</li>" % (esc(name), _compact(datasets)) for name, datasets in quiet)
        return ['<details class="quiet"><summary>%s more, %s not shown in detail</summary><ul class="plain">%s</ul></details>' % (
            esc(human_count(len(quiet), "host")), esc(human_count(count, "dataset")), items)]


class DatasetRow:
    """The row of one dataset and, under it, its trend charts."""

    def __init__(self, dataset: dict[str, Any]) -> None:
        self.dataset = dataset

    def render(self, columns: int, charted: bool = True) -> list[str]:
        d = self.dataset
        cells = ['<b>%s</b>%s' % (esc(d.get("dataset") or "?"), self._marks()), esc(d.get("tier") or "-"),
                 '%s' % badge(d.get("status")), self._reasons(), self._newest(), self._copies(), self._rules(), self._drill()]
        out = ['<tr class="dataset" id="%s" data-status="%s">%s</tr>' % (
            esc("ds-%s-%s" % (d.get("host"), d.get("dataset"))), esc(d.get("status") or ""),
            "".join("<td>%s</td>" % cell for cell in cells))]
        charts = self._charts() if charted else ""
        if charts:
            out.append('<tr class="trends"><td colspan="%d"><div class="charts">%s</div></td></tr>' % (columns, charts))
        return out

    def _marks(self) -> str:
        return "".join('<br><span class="mark">%s</span>' % esc(str(m)) for m in self.dataset.get("marks") or [])

    def _reasons(self) -> str:
        reasons = self.dataset.get("reasons") or []
        if not reasons:
            return '<span class="muted">all checks pass</span>'
        return '<ul class="plain">%s</ul>' % "".join("<li>%s</li>" % esc(str(r)) for r in reasons)

    def _newest(self) -> str:
        ages = [c.get("age_seconds") for c in self.dataset.get("copies") or [] if c.get("age_seconds") is not None]
        rpo = self.dataset.get("rpo_seconds")
        if not ages:
            return '<span class="bad">no recovery point</span>%s' % (" / RPO %s" % esc(human_duration(rpo)) if rpo else "")
        age = min(ages)
        over = rpo is not None and age > rpo
        return '<span class="%s">%s old</span><br>RPO %s' % (
            "bad" if over else "good", esc(human_duration(age)), esc(human_duration(rpo)) if rpo else "not set")

    def _copies(self) -> str:
        copies = self.dataset.get("copies") or []
        if not copies:
            return '<span class="bad">no copy</span>'
        return '<ul class="plain">%s</ul>' % "".join("<li>%s</li>" % _copy(c) for c in copies)

    def _rules(self) -> str:
        gaps = [r for r in self.dataset.get("rules") or [] if not r.get("ok")]
        score = esc(self.dataset.get("score") or "-")
        if not gaps:
            return '<b class="good">%s</b>' % score
        return '<b class="warn">%s</b><ul class="plain">%s</ul>' % (
            score, "".join("<li>%s</li>" % esc(r.get("detail") or r.get("rule") or "") for r in gaps))

    def _drill(self) -> str:
        drill = self.dataset.get("drill")
        if not drill:
            return '<span class="bad">never drilled</span>'
        age, limit = drill.get("age_seconds"), drill.get("max_age_seconds")
        overdue = age is not None and limit is not None and age > limit
        parts = ["%s %s" % (badge(drill.get("result")), esc(drill.get("drill") or "")),
                 '<span class="%s">%s ago</span>%s' % (
                     "bad" if overdue else "", esc(human_duration(age)), " (at most %s)" % esc(human_duration(limit)) if limit else ""),
                 "RTO %s" % _versus(drill.get("rto_seconds"), drill.get("rto_target_seconds")),
                 "RPO %s" % _versus(drill.get("rpo_seconds"), drill.get("rpo_target_seconds")),
                 '<span class="muted">on %s, from the %s</span>' % (esc(drill.get("drill_host") or "?"), esc(drill.get("source") or "ledger"))]
        return "<br>".join(parts)

    def _charts(self) -> str:
        trend = self.dataset.get("trend") or {}
        drill = self.dataset.get("drill") or {}
        charts = []
        for name, title, kind, target in (("rpo", "RPO (age of newest point)", "seconds", self.dataset.get("rpo_seconds")),
                                          ("rto", "RTO (restore time in drills)", "seconds", drill.get("rto_target_seconds")),
                                          ("size", "Backup size", "bytes", None)):
            points = [(p[0], p[1]) for p in trend.get(name) or [] if isinstance(p, (list, tuple)) and len(p) == 2]
            if points:
                charts.append(time_chart(title, points, kind, target, **_CHART))
        return "".join(charts)


def _priority(dataset: dict[str, Any]) -> int:
    return _STATUS_ORDER.get(dataset.get("status") or "", -1)  # no status said: first, it is a fault of the audit


def _compact(datasets: list[dict[str, Any]]) -> str:
    """'www (green, newest 40 min old), db (amber: no copy is off-site)' for rows not shown in full."""
    items = []
    for dataset in datasets:
        status, reasons = dataset.get("status") or "unknown", dataset.get("reasons") or []
        ages = [c.get("age_seconds") for c in dataset.get("copies") or [] if c.get("age_seconds") is not None]
        why = ": %s" % reasons[0] if reasons else ", newest %s old" % human_duration(min(ages)) if ages else ""
        items.append('%s (<span style="color:%s">%s</span>%s)' % (
            esc(dataset.get("dataset") or "?"), _colour(status), esc(status), esc(str(why))))
    return ", ".join(items)


def _copy(copy: dict[str, Any]) -> str:
    where = ", ".join(part for part in (copy.get("media") or copy.get("kind"), "off-site" if copy.get("offsite") else "on-site") if part)
    age = copy.get("age_seconds")
    point = "newest %s old" % human_duration(age) if age is not None else "no point"
    status = copy.get("status")
    reason = ": %s" % copy.get("reason") if copy.get("reason") and status != "green" else ""
    return '%s <b>%s</b> (%s) %s, %s%s' % (
        badge(status) if status else "", esc(copy.get("name") or "?"), esc(where), _lock(copy), esc(point), esc(reason))


def _lock(copy: dict[str, Any]) -> str:
    """The lock as it was read back, not as the policy wishes it."""
    if not copy.get("immutable"):
        return '<span class="muted">not locked</span>'
    verified = copy.get("immutable_verified")
    if verified is True:
        return '<span class="good">locked (read back)</span>'
    if verified is False:
        return '<span class="bad">lock NOT found</span>'
    return '<span class="warn">lock not checked</span>'


def _versus(value: Optional[float], target: Optional[float]) -> str:
    if value is None:
        return "-"
    text = esc(human_duration(value))
    if target is None:
        return text
    over = value > target
    return '<span class="%s">%s</span> / target %s' % ("bad" if over else "good", text, esc(human_duration(target)))


def _colour(name: str) -> str:
    return STATUS_COLOURS.get(name, "#222")


def render_audit_html(document: dict[str, Any]) -> str:
    """The evaluated audit document (format 1) as one self-contained HTML page."""
    return AuditPage(document).render()
