# -*- coding: utf-8 -*-
# Private to restorable.backup: what the HTML reports (restore drills, fleet audit) share, so
# they read alike: numbers with human units, a small SVG chart over time, the page shell with
# its inline CSS and the status colours. Stdlib only (it runs on drill hosts too) and nothing
# that needs the network: a report is opened from an evidence directory, often offline.
from __future__ import annotations

import datetime
import html
import math
from typing import Optional, Sequence

from .durations import parse_time

STATUS_COLOURS = {
    "green": "#1e8449", "passed": "#1e8449", "ok": "#1e8449",
    "amber": "#b9770e", "skipped": "#7f8c8d",
    "red": "#c0392b", "failed": "#c0392b",
}

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
# Duration units for chart ticks: the largest unit not above the top of the scale.
_DURATION_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


# -- human units -------------------------------------------------------------------------------

def _number(value: float) -> str:
    """2 digits below 1, 1 decimal below 10, whole above: '0.42', '0.5', '4.2', '15', '249'."""
    if value == 0:
        return "0"
    if abs(value) < 1:
        return "%.2g" % value
    text = "%.1f" % value if abs(value) < 10 else "%.0f" % value
    return text[:-2] if text.endswith(".0") else text


def human_bytes(value: Optional[float]) -> str:
    """249 B, 1.5 KiB, 12 MiB, 3.4 GiB (binary units, as restic and df -h count)."""
    if value is None:
        return "-"
    size = float(value)
    for unit in _BYTE_UNITS:
        if abs(size) < 1024 or unit == _BYTE_UNITS[-1]:
            return "%s %s" % ("%d" % size if unit == "B" else _number(size), unit)
        size /= 1024
    return "-"  # not reached: the loop returns at its last unit


def human_rate(bytes_per_second: Optional[float]) -> str:
    """A transfer rate: 1.2 MiB/s, 850 KiB/s, 12 B/s."""
    return "-" if bytes_per_second is None else human_bytes(bytes_per_second) + "/s"


def human_duration(seconds: Optional[float]) -> str:
    """0.5 s, 42 s, 15 min, 1 min 30 s, 3 h 10 min, 26 h, 2 d 4 h: two units at most, the way
    people say an age or a restore time (and hours up to two days, as RPOs are written)."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 60:
        return "%s s" % _number(seconds)
    whole = int(round(seconds))
    for (big, size), (small, small_size) in zip(_DURATION_UNITS, _DURATION_UNITS[1:]):
        if whole >= (2 * size if big == "d" else size):
            count, rest = divmod(whole, size)
            part = rest // small_size
            return "%d %s %d %s" % (count, big, part, small) if part else "%d %s" % (count, big)
    return "%d s" % whole  # not reached: 60 s and above have a unit of a minute or more


def human_count(value: int, noun: str) -> str:
    """'1 copy', '3 copies', '2 hosts'."""
    if value == 1:
        return "1 %s" % noun
    plural = noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
    return "%d %s" % (value, plural)


# -- time --------------------------------------------------------------------------------------

def short_time(text: Optional[str]) -> str:
    """'2026-12-03 10:00 UTC' for a record's time; what was given when it does not parse."""
    value = parse_time(text)
    if value is None:
        return text or "-"
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -- chart -------------------------------------------------------------------------------------

class Scale:
    """A value axis from 0 to a round top, with ticks in one unit people read (15 min, not
    900): values decide the range, so a 0.5 s restore against a 15 min target still shows."""

    def __init__(self, values: Sequence[float], kind: str) -> None:
        self.kind = kind
        peak = max([v for v in values if v is not None and v > 0] or [1.0])
        # The largest unit whose ticks are whole: 20 min steps, not 0.25 h; the smallest unit otherwise.
        steps = [(unit, size, _nice_step(peak / size / 4) * size) for unit, size in self._units(peak)]
        self.unit, self.unit_size, self.step = next((s for s in steps if s[2] >= s[1]), steps[-1])
        self.top = self.step * max(1, math.ceil(peak / self.step - 1e-9))

    def _units(self, peak: float) -> list[tuple[str, float]]:
        """Units not above the peak, largest first (days only from two days, as RPOs are written)."""
        if self.kind == "bytes":
            units = [(unit, float(1024 ** power)) for power, unit in enumerate(_BYTE_UNITS)]
            return [u for u in reversed(units) if peak >= u[1]] or [units[0]]
        return [(unit, float(size)) for unit, size in _DURATION_UNITS
                if peak >= (2 * size if unit == "d" else size)] or [("s", 1.0)]

    def ticks(self) -> list[float]:
        count = int(round(self.top / self.step))
        return [self.step * i for i in range(count + 1)]

    def label(self, value: float) -> str:
        return "%s %s" % (_number(value / self.unit_size), self.unit)

    def fraction(self, value: float) -> float:
        return min(1.0, max(0.0, value / self.top))

    def text(self, value: float) -> str:
        return human_bytes(value) if self.kind == "bytes" else human_duration(value)


def _nice_step(raw: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least raw."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw - 1e-12:
            return factor * power
    return 10 * power  # not reached: 10 x power is always at least raw


TARGET_IN_RANGE = 4.0  # a target above this multiple of the peak is noted, not drawn: it would flatten the data


class TimeChart:
    """An inline SVG line chart of values over time: x is the time of each point, y is fit to
    the values with ticks in human units; the target is a labelled dashed line when it is near
    the data, else a note 'target 15 min (above)'. Points over the target are red."""

    LEFT, RIGHT, TOP, BOTTOM = 62, 14, 34, 34

    def __init__(self, title: str, points: Sequence[tuple[Optional[str], Optional[float]]], kind: str = "seconds",
                 target: Optional[float] = None, width: int = 420, height: int = 150) -> None:
        timed = [(parse_time(when), float(value), when) for when, value in points if value is not None]
        self.timed = sorted((item for item in timed if item[0] is not None), key=lambda item: item[0])
        values = [value for _when, value, _text in self.timed]
        self.title, self.kind, self.target, self.width, self.height = title, kind, target, width, height
        self.target_drawn = bool(target) and (not values or target <= max(values + [1e-9]) * TARGET_IN_RANGE)
        self.scale = Scale(values + ([target] if self.target_drawn else []), kind)
        self.inner_w, self.inner_h = width - self.LEFT - self.RIGHT, height - self.TOP - self.BOTTOM

    def y_of(self, value: float) -> float:
        return self.TOP + self.inner_h * (1 - self.scale.fraction(value))

    def svg(self) -> str:
        out = ['<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
               'data-kind="%s">' % (self.width, self.height, self.width, self.height, html.escape(self.kind)),
               '<title>%s</title>' % html.escape(self.title),
               '<text x="4" y="14" class="chart-title">%s</text>' % html.escape(self.title)]
        out += self._value_axis() + self._target() + (self._series() if self.timed else self._empty())
        return "".join(out + ["</svg>"])

    def _value_axis(self) -> list[str]:
        left, right = self.LEFT, self.LEFT + self.inner_w
        out = []
        for tick in self.scale.ticks():
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/>' % (left, self.y_of(tick), right, self.y_of(tick)))
            out.append('<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>' % (
                left - 4, self.y_of(tick) + 3, self.scale.label(tick)))
        bottom = self.TOP + self.inner_h
        return out + ['<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>' % (left, bottom, right, bottom)]

    def _target(self) -> list[str]:
        if not self.target:
            return []
        text = html.escape(self.scale.text(self.target))
        if not self.target_drawn:
            return ['<text x="%d" y="28" class="target-label" text-anchor="end">target %s (above)</text>' % (
                self.width - self.RIGHT, text)]
        y, right = self.y_of(self.target), self.LEFT + self.inner_w
        return ['<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="target"/>' % (self.LEFT, y, right, y),
                '<text x="%d" y="%.1f" class="target-label" text-anchor="end">target %s</text>' % (right, y - 3, text)]

    def _empty(self) -> list[str]:
        return ['<text x="%d" y="%d" class="tick" text-anchor="middle">no data yet</text>' % (
            self.LEFT + self.inner_w // 2, self.TOP + self.inner_h // 2)]

    def _series(self) -> list[str]:
        start, end = self.timed[0][0], self.timed[-1][0]
        span = (end - start).total_seconds()

        def x_of(when: datetime.datetime) -> float:
            return self.LEFT + (self.inner_w * (when - start).total_seconds() / span if span > 0 else self.inner_w / 2)

        out = []
        if len(self.timed) > 1:
            out.append('<polyline class="series" fill="none" points="%s"/>' % " ".join(
                "%.1f,%.1f" % (x_of(when), self.y_of(value)) for when, value, _text in self.timed))
        for when, value, text in self.timed:
            over = bool(self.target) and value > self.target
            out.append('<circle class="point%s" cx="%.1f" cy="%.1f" r="3" data-value="%r"><title>%s: %s</title></circle>' % (
                " over" if over else "", x_of(when), self.y_of(value), value, html.escape(short_time(text)),
                html.escape(self.scale.text(value))))
        for when, anchor in _time_ticks(start, end):
            out.append('<text x="%.1f" y="%d" class="tick" text-anchor="%s">%s</text>' % (
                x_of(when), self.height - 18, anchor, html.escape(_time_label(when, span))))
        return out + ['<text x="%d" y="%d" class="tick" text-anchor="middle">time (UTC)</text>' % (
            self.LEFT + self.inner_w // 2, self.height - 4)]


def time_chart(title: str, points: Sequence[tuple[Optional[str], Optional[float]]], kind: str = "seconds",
               target: Optional[float] = None, width: int = 420, height: int = 150) -> str:
    """The SVG of a TimeChart: kind is "seconds" or "bytes"; points are (ISO time, value)."""
    return TimeChart(title, points, kind, target, width, height).svg()


def _time_ticks(start: datetime.datetime, end: datetime.datetime) -> list[tuple[datetime.datetime, str]]:
    if end <= start:
        return [(start, "middle")]
    return [(start, "start"), (start + (end - start) / 2, "middle"), (end, "end")]


def _time_label(when: datetime.datetime, span: float) -> str:
    when = when.astimezone(datetime.timezone.utc)
    if span < 2 * 86400:
        return when.strftime("%m-%d %H:%M")
    return when.strftime("%Y-%m-%d")


# -- page --------------------------------------------------------------------------------------

CSS = (
    "body{font-family:sans-serif;margin:1.5em 2em;color:#222;background:#fff}"
    "h1{margin:0 0 .3em}h2{margin:1.4em 0 .4em;border-bottom:1px solid #ddd}h3{margin:1em 0 .3em}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}"
    "th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap}"
    "table.audit{width:100%;table-layout:fixed}table.audit td{overflow-wrap:anywhere}"
    ".badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px;font-weight:bold;white-space:nowrap}"
    ".mark{display:inline-block;padding:0 6px;margin:1px 2px;border:1px solid #b9770e;border-radius:4px;"
    "color:#7e5109;background:#fef5e7;font-size:12px}"
    ".tiles{display:flex;gap:12px;flex-wrap:wrap;margin:.6em 0 1em}"
    ".tile{border:1px solid #ccc;border-radius:6px;padding:6px 14px;min-width:90px}"
    ".tile b{display:block;font-size:24px}.tile span{font-size:12px;color:#555}"
    ".muted{color:#777}.bad{color:#c0392b;font-weight:bold}.good{color:#1e8449}.warn{color:#b9770e}"
    ".alert{border:2px solid #c0392b;background:#fdedec;padding:6px 12px;border-radius:6px;margin:.5em 0}"
    "ul.plain{margin:0;padding-left:1.1em}"
    ".charts{display:flex;gap:10px;flex-wrap:wrap}"
    "svg.chart{background:#fcfcfc;border:1px solid #eee}"
    "svg.chart text{font-family:sans-serif}.chart-title{font-size:12px;font-weight:bold}"
    ".tick{font-size:10px;fill:#555}.grid{stroke:#eee}.axis{stroke:#999}"
    ".target{stroke:#c0392b;stroke-dasharray:4 3}.target-label{font-size:10px;fill:#c0392b}"
    ".series{stroke:#2c7fb8;stroke-width:1.5}.point{fill:#2c7fb8}.point.over{fill:#c0392b}"
    "section{margin-bottom:2em}"
)


def badge(status: Optional[str]) -> str:
    """A coloured pill with the status word: the colour is never the only carrier of meaning."""
    text = status or "unknown"
    return '<span class="badge" style="background:%s">%s</span>' % (STATUS_COLOURS.get(text, "#7f8c8d"), html.escape(text))


def page(title: str, body: Sequence[str]) -> str:
    """A whole self-contained page: inline CSS, no script, no font or image from elsewhere."""
    return "\n".join(['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
                      '<meta name="viewport" content="width=device-width, initial-scale=1">',
                      "<title>%s</title><style>%s</style></head><body>" % (html.escape(title), CSS)]
                     + list(body) + ["</body></html>"])
