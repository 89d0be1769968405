# -*- coding: utf-8 -*-
# Private to restorable.backup: a host's site profile (restorable_sites, restorable_site) as every
# tier's planner applies it to the jobs it schedules: the window and time zone a run may start in,
# the bandwidth cap its engine gets, and the start slot that keeps at most `concurrency` hosts of
# the site starting at once. One implementation, so every tier staggers and caps alike.
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.restorable.backup.plugins.module_utils.common.durations import parse_duration
from ansible_collections.restorable.backup.plugins.module_utils.converge.units import spread_offset

from .policy.calendar_event import CalendarError, Window, parse_calendar

DAY_MINUTES = 24 * 60
GATE_KEYS = ("load_gate", "nice", "ionice")


@dataclass(frozen=True)
class Slot:
    """Where a host's runs start among the hosts of its site: slot `index` of `count` (from 0)."""

    index: int
    count: int
    hosts: tuple[str, ...]  # the hosts of this slot, sorted


@dataclass(frozen=True)
class SlotTiming:
    """How a job's slots lie in time, in minutes of the day of the window's zone: the timer fires
    at `fires`; the first slot starts `wait` minutes later, and the slots share `span` minutes."""

    fires: int
    wait: int
    span: int

    def slot_seconds(self, count: int) -> int:
        return self.span * 60 // max(count, 1)

    def start_minute(self, slot: Slot) -> int:
        return (self.fires + self.wait + slot.index * self.slot_seconds(slot.count) // 60) % DAY_MINUTES


def slot_timing(calendar: str, window: Mapping[str, Any] | None) -> SlotTiming:
    """The slots of a job on `calendar`: from its first start inside the window (or from the
    window's opening) to the window's end, or to the job's next start if that comes sooner; the
    whole time to its next start without a window. Calendar times count in the window's zone."""
    try:
        times = list(parse_calendar(calendar).minutes_of_day)
    except CalendarError:  # validation reports it; keep planning with a whole day
        times = []
    if not times:
        return SlotTiming(0, 0, Window.from_policy(window).length_minutes if window else DAY_MINUTES)
    if not window:
        return SlotTiming(times[0], 0, _to_next(times, times[0]))
    opening = Window.from_policy(window)
    inside = [t for t in times if opening.contains(t)]
    # The first start after the window opens; a calendar firing only outside waits for the opening.
    fires = min(inside, key=lambda t: (t - opening.start_minute) % DAY_MINUTES) if inside else times[0]
    start = fires if inside else opening.start_minute
    left = opening.length_minutes - (start - opening.start_minute) % DAY_MINUTES
    return SlotTiming(fires, (start - fires) % DAY_MINUTES, min(left, _to_next(times, start)))


def _to_next(times: Sequence[int], start: int) -> int:
    """Minutes from `start` to the calendar's next start after it (a day at most)."""
    return min([(t - start) % DAY_MINUTES for t in times if (t - start) % DAY_MINUTES] or [DAY_MINUTES])


def site_roster(policies: Mapping[str, dict]) -> dict[str, list[str]]:
    """Site name: the sorted inventory names of its hosts, over the whole fleet (not a play's
    --limit), so every run and every controller staggers alike."""
    roster: dict[str, list[str]] = {}
    for host in policies:
        site = policies[host].get("restorable_site")
        if site:
            roster.setdefault(site, []).append(host)
    return {site: sorted(hosts) for site, hosts in roster.items()}


class SiteProfile:
    """The site profile of one host, and the hosts of its site across the fleet."""

    def __init__(self, host: str, policy: dict, site_hosts: Sequence[str] | None = None) -> None:
        self.host = host
        self.name = policy.get("restorable_site") or ""
        self.settings: dict = (policy.get("restorable_sites") or {}).get(self.name) or {}
        # Without the fleet's roster (a single host's plan), the host is alone in its site.
        self.hosts = sorted(set(site_hosts or ()) | {host}) if self.name else [host]

    @property
    def concurrency(self) -> int | None:
        return self.settings.get("concurrency")

    def window(self, schedule: Mapping[str, Any]) -> dict:
        """The window a run may start in: the schedule's own, else the site's, in the site's zone
        unless the window names one."""
        window = dict(schedule.get("window") or self.settings.get("window") or {})
        if window and "timezone" not in window and self.settings.get("timezone"):
            window["timezone"] = self.settings["timezone"]
        return window

    def bandwidth(self, schedule: Mapping[str, Any]) -> dict:
        """Each cap at the lower of the schedule's and the site's."""
        return _tighter(schedule.get("bandwidth") or {}, self.settings.get("bandwidth") or {})

    def gate(self, schedule: Mapping[str, Any], capped: bool = True) -> dict:
        """A job configuration's `schedule`: the schedule's gate settings, with the site profile
        filling what the schedule leaves open. capped=False: for engines that cannot hold a cap
        (the configuration then does not pretend it holds)."""
        result: dict[str, Any] = {}
        window = self.window(schedule)
        if window:
            result["window"] = window
        for key in GATE_KEYS:
            if key in schedule:
                result[key] = dict(schedule[key]) if isinstance(schedule[key], dict) else schedule[key]
        bandwidth = self.bandwidth(schedule) if capped else {}
        if bandwidth:
            result["bandwidth"] = bandwidth
        return result

    def slot(self) -> Slot | None:
        """This host's slot; None when the site sets no concurrency."""
        concurrency = self.concurrency
        if not concurrency:
            return None
        index = self.hosts.index(self.host) // concurrency
        members = tuple(self.hosts[index * concurrency:(index + 1) * concurrency])
        return Slot(index, math.ceil(len(self.hosts) / concurrency), members)

    def timing(self, schedule: Mapping[str, Any]) -> SlotTiming:
        return slot_timing(schedule["calendar"], self.window(schedule) or None)

    def delay_seconds(self, job_name: str, schedule: Mapping[str, Any]) -> int:
        """How long a run waits after its timer fires: its slot's offset, plus the schedule's jitter
        spread per host and job (within the slot, so slots never overlap)."""
        jitter = parse_duration(schedule["jitter"]) if "jitter" in schedule else 0
        slot = self.slot()
        if slot is None:
            return spread_offset(self.host, job_name, jitter)
        timing = self.timing(schedule)
        length = timing.slot_seconds(slot.count)
        return timing.wait * 60 + slot.index * length + spread_offset(self.host, job_name, min(jitter, length))

    def start_clock(self, schedule: Mapping[str, Any]) -> str:
        """HH:MM (window's zone) at which this host's slot starts for a job on `schedule`."""
        slot = self.slot()
        timing = self.timing(schedule)
        minute = timing.start_minute(slot) if slot else (timing.fires + timing.wait) % DAY_MINUTES
        return "%02d:%02d" % divmod(minute, 60)


def _tighter(first: Mapping[str, int], second: Mapping[str, int]) -> dict:
    """Each cap at the lower of the two values given."""
    caps = {}
    for key in set(first) | set(second):
        values = [v for v in (first.get(key), second.get(key)) if v]
        caps[key] = min(values)
    return caps


@dataclass(frozen=True)
class Rollout:
    """Batches of a rolling apply: site by site (sorted by name, hosts without a site last), in
    each site its canary alone first, then the rest of the site at once."""

    batches: list[list[str]]

    @property
    def hosts(self) -> list[str]:
        return [host for batch in self.batches for host in batch]

    @property
    def serial(self) -> list[int]:
        """Ansible's `serial` for a play over `hosts` in that order: one batch per entry."""
        return [len(batch) for batch in self.batches]


def rollout(sites: Mapping[str, str | None], canaries: Sequence[str] = (), only: Sequence[str] | None = None) -> Rollout:
    """sites: host -> its restorable_site (None without one). A site's canary is its host marked
    in `canaries`, else its first host by name. only: the sites to roll out (all by default);
    an unknown name is an error, so a typo rolls out nothing rather than the wrong sites."""
    by_site: dict[str, list[str]] = {}
    for host, site in sites.items():
        by_site.setdefault(site or "", []).append(host)
    if only is not None:
        unknown = sorted(set(only) - set(by_site))
        if unknown:
            raise ValueError("rollout_sites: no host of the inventory is in site %s (sites: %s)" % (
                ", ".join(unknown), ", ".join(sorted(s for s in by_site if s)) or "none"))
        by_site = {site: hosts for site, hosts in by_site.items() if site in only}
    batches = []
    for site in sorted(by_site, key=lambda s: (s == "", s)):
        hosts = sorted(by_site[site])
        marked = [host for host in hosts if host in canaries]
        if len(marked) > 1:
            raise ValueError("site %s has %d canary hosts (%s); mark one with rollout_canary" % (
                site or "(no site)", len(marked), ", ".join(marked)))
        canary = marked[0] if marked else hosts[0]
        rest = [host for host in hosts if host != canary]
        batches += [[canary]] + ([rest] if rest else [])
    return Rollout(batches)
