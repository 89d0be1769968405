# -*- coding: utf-8 -*-
# Private to restorable.backup: a readable account of what a host's policy asks for, per dataset,
# printed by restorable.backup.plan before anything is applied.
from __future__ import annotations

from ..site_profile import SiteProfile
from ..tiers import TIERS, Tiers
from ..tiers.base import Fleet, TierPlanner


def _target_text(name: str, target: dict) -> str:
    where = {
        "local": lambda t: t["path"],
        "sftp": lambda t: "sftp:%s%s:%s" % (t["user"] + "@" if "user" in t else "", t["host"], t["path"]),
        "s3": lambda t: "s3:%s/%s" % (t.get("endpoint", "aws"), t["bucket"]) + ("/" + t["prefix"] if t.get("prefix") else ""),
        "replica": lambda t: "%s:%s" % (t["host"], t["path"]),
        "tape_library": lambda t: "%s library, %d slots" % (t["driver"], t["slots"]),
    }[target["type"]](target)
    return "%s (%s %s)" % (name, target["type"], where)


def _when(dataset: dict, schedules: dict, site: SiteProfile) -> str:
    if dataset["tier"] == "cdp":
        base = schedules.get(dataset.get("base_backup_schedule"), {})
        return "every %d min" % dataset["interval_minutes"] + (", base backups %s" % base["calendar"] if base else "") \
            + (_site_text(site, base) if base else "")
    schedule = schedules.get(dataset.get("schedule"), {})
    if not schedule:
        return "unscheduled"
    text = schedule["calendar"]
    window = site.window(schedule)
    if window:
        text += ", window %s-%s%s" % (window["start"], window["end"], " " + window["timezone"] if window.get("timezone") else "")
    if "jitter" in schedule:
        text += ", spread over %s" % schedule["jitter"]
    return text + _site_text(site, schedule, dataset["tier"] != "array")


def _site_text(site: SiteProfile, schedule: dict, capped: bool = True) -> str:
    """The site's start slot and bandwidth cap as they apply to a job on `schedule`."""
    parts = []
    slot = site.slot()
    if slot:
        parts.append("site %s slot %d of %d, starts %s" % (site.name, slot.index + 1, slot.count, site.start_clock(schedule)))
    bandwidth = site.gate(schedule, capped).get("bandwidth") or {}
    if bandwidth.get("upload_kbps"):
        parts.append("upload capped at %d KiB/s" % bandwidth["upload_kbps"])
    return "".join(", " + part for part in parts)


def site_lines(fleet: Fleet) -> list[str]:
    """Per site of the fleet: its profile, then its start slots with their hosts and the time
    (window's zone) each host's scheduled backups start."""
    lines = []
    for name, hosts in sorted(fleet.sites().items()):
        profiles = [fleet.site(host) for host in hosts]
        settings = profiles[0].settings
        head = "site %s: %d host%s" % (name, len(hosts), "" if len(hosts) == 1 else "s")
        window = settings.get("window")
        if window:
            head += ", window %s-%s %s" % (window["start"], window["end"], window.get("timezone") or settings.get("timezone") or "host time")
        if (settings.get("bandwidth") or {}).get("upload_kbps"):
            head += ", upload capped at %d KiB/s per host" % settings["bandwidth"]["upload_kbps"]
        slots = [p.slot() for p in profiles]
        if not slots[0]:
            lines.append(head + ", no concurrency limit: its hosts start together")
            continue
        lines.append(head + ", concurrency %d: %d slots" % (settings["concurrency"], slots[0].count))
        for slot in sorted({s for s in slots if s}, key=lambda s: s.index):
            starts = {host: _start_clocks(fleet, host) for host in slot.hosts}
            clocks = set(starts.values())
            if len(clocks) == 1:
                lines.append("  slot %d: %s at %s" % (slot.index + 1, ", ".join(slot.hosts), clocks.pop()))
            else:
                lines.append("  slot %d: %s" % (slot.index + 1, ", ".join("%s at %s" % item for item in starts.items())))
    return lines


def _start_clocks(fleet: Fleet, host: str) -> str:
    """When the host's scheduled backups start (its slot's start per schedule), e.g. '20:00' or '01:00, 20:00'."""
    policy = fleet.policies[host]
    schedules = policy.get("restorable_schedules") or {}
    names = {d.get("schedule") or d.get("base_backup_schedule") for d in (policy.get("restorable_datasets") or {}).values()
             if d.get("enabled", True)}
    site = fleet.site(host)
    clocks = sorted({site.start_clock(schedules[n]) for n in names if n in schedules})
    return ", ".join(clocks) or "no scheduled backups"


def _pool_text(library: dict, export: dict) -> str:
    pool = library["pools"].get(export["pool"]) or {}
    parts = ["pool %s: %d days" % (export["pool"], pool.get("retention_days", 0))]
    if pool.get("worm"):
        parts.append("WORM")
    if pool.get("vault"):
        parts.append("vaulted" + (" to %s" % library["vault"]["destination"] if library.get("vault") else ""))
    return ", ".join(parts)


def _array_lines(dataset: dict, targets: dict) -> list:
    """Where an array dataset's points are: its volumes' own snapshots, and the tape pool it exports to."""
    lines = ["  volumes: %s (one quiesce window around all)" % ", ".join(dataset["volumes"])]
    export = dataset.get("export")
    if export and export["library"] in targets:
        lines.append("  copy to %s, %s" % (_target_text(export["library"], targets[export["library"]]),
                                           _pool_text(targets[export["library"]], export)))
    return lines


def _drill_moves(name: str, drill: dict, policy: dict, host: str, unsupported: dict) -> list:
    """Array datasets are restored on the host that runs their library, not on a drill_host."""
    datasets = policy.get("restorable_datasets", {})
    return ["  %s is restored where its library runs (%s), not on %s" % (dataset, host or "the source host", drill["drill_host"])
            for index, dataset in enumerate(drill["datasets"])
            if (datasets.get(dataset) or {}).get("tier") == "array" and drill.get("drill_host") not in (None, host)
            and ("restorable_drills", name, "datasets", index) not in unsupported]


def plan_lines(policy: dict, compliance: dict | None = None, host: str = "", tiers: Tiers = TIERS,
               site_hosts: list[str] | None = None) -> list:
    """One block of lines per dataset, then one per drill: only what a tier planner will do; a
    dataset or drill of a tier without one is its warning line (host names it). site_hosts: the
    hosts of the host's site across the fleet, for its start slot."""
    unsupported = {p.path: p.line() for p in tiers.unsupported(host, policy)}
    fleet = Fleet({host: policy})
    site = SiteProfile(host, policy, site_hosts)
    lines = []
    for name, dataset in sorted(policy.get("restorable_datasets", {}).items()):
        path = ("restorable_datasets", name)
        if path in unsupported:
            lines.append(unsupported[path])
        else:
            lines += _dataset_lines(name, dataset, policy, tiers.planner(host, fleet, dataset["tier"]), (compliance or {}).get(name), site)
    for name, drill in sorted(policy.get("restorable_drills", {}).items()):
        paths = [("restorable_drills", name, "datasets", index) for index in range(len(drill["datasets"]))]
        restored = [dataset for dataset, path in zip(drill["datasets"], paths) if path not in unsupported]
        if restored:
            lines.append("drill %s: restore %s %s on %s" % (
                name, ", ".join(restored), drill.get("calendar", "on demand"), drill.get("drill_host", "the source host")))
            lines += _drill_moves(name, drill, policy, host, unsupported)
        lines += [unsupported[path] for path in paths if path in unsupported]
    return lines


def _applies(dataset: dict, rule: str) -> bool:
    """btrfs CDP points are thinned (and max_age bounds them); array snapshots are kept by counts,
    then thinned; other tiers keep by counts."""
    if dataset["tier"] == "cdp" and dataset["source"]["type"] == "btrfs":
        return rule in ("thinning", "max_age")
    return dataset["tier"] == "array" or rule != "thinning"


def _dataset_lines(name: str, dataset: dict, policy: dict, planner: TierPlanner, score: dict | None, site: SiteProfile) -> list:
    targets = policy.get("restorable_targets", {})
    state = "" if dataset.get("enabled", True) else " [disabled]"
    lines = ["dataset %s (%s tier)%s: %s" % (name, dataset["tier"], state, planner.describe(dataset))]
    # CDP jobs write the replica or WAL archive, array jobs their export library: never `targets`.
    written = [] if dataset["tier"] in ("cdp", "array") else dataset.get("targets", [])
    for target in written + [dataset[k] for k in ("replica", "wal_archive") if k in dataset]:
        lines.append("  copy to %s" % _target_text(target, targets[target]))
    if dataset["tier"] == "array":
        lines += _array_lines(dataset, targets)
    lines.append("  when: %s" % _when(dataset, policy.get("restorable_schedules", {}), site))
    rules = dataset["retention"]
    retention = ", ".join("%s %s" % (k, v) for k, v in rules.items() if k not in ("thinning", "prune_every") and _applies(dataset, k))
    thinning = ["older than %s one per %s" % (r["older_than"], r["keep_every"]) for r in rules.get("thinning") or []
                if _applies(dataset, "thinning")]
    if thinning:
        retention = ", ".join(part for part in (retention, "thinning: " + "; ".join(thinning)) if part)
    where = " on the storage host" if dataset["tier"] == "array" else ""
    cadence = ", applied every %s backups" % rules["prune_every"] if "prune_every" in rules else ""
    lines.append("  keep%s: %s%s" % (where, retention or "every point", cadence))
    if "consistency" in dataset:
        lines.append("  consistency: profile %s" % dataset["consistency"])
    objectives = ", ".join("%s %s" % (k.upper(), dataset[k]) for k in ("rpo", "rto") if k in dataset)
    if objectives:
        lines.append("  objectives: %s" % objectives)
    if score:
        lines.append("  3-2-1-1-0: %s" % "; ".join([score["score"]] + score.get("gaps", [])))
    return lines
