# -*- coding: utf-8 -*-
# Private to restorable.backup: a readable account of what a host's policy asks for, per dataset,
# printed by restorable.backup.plan before anything is applied.
from __future__ import annotations

_TIER_WHAT = {
    "agent": lambda d: "restic backup of %s" % ", ".join(d["paths"]),
    "host": lambda d: "%s VM backup of %s" % (d.get("mode", "incremental"), _vm_selection(d["vms"])),
    "cdp": lambda d: "%s recovery point every %d min" % (d["source"]["type"], d["interval_minutes"]),
    "array": lambda d: "%s snapshot of consistency group %s" % (d["provider"], ", ".join(d["volumes"])),
}


def _vm_selection(vms: dict) -> str:
    if vms.get("all"):
        return "all VMs"
    return ", ".join(vms.get("names", []) + vms.get("patterns", [])) or "no VM"


def _target_text(name: str, target: dict) -> str:
    where = {
        "local": lambda t: t["path"],
        "sftp": lambda t: "sftp:%s%s:%s" % (t["user"] + "@" if "user" in t else "", t["host"], t["path"]),
        "s3": lambda t: "s3:%s/%s" % (t.get("endpoint", "aws"), t["bucket"]) + ("/" + t["prefix"] if t.get("prefix") else ""),
        "replica": lambda t: "%s:%s" % (t["host"], t["path"]),
        "tape_library": lambda t: "%s library, %d slots" % (t["driver"], t["slots"]),
    }[target["type"]](target)
    return "%s (%s %s)" % (name, target["type"], where)


def _when(dataset: dict, schedules: dict) -> str:
    if dataset["tier"] == "cdp":
        return "continuously"
    schedule = schedules.get(dataset.get("schedule"), {})
    text = schedule.get("calendar", "unscheduled")
    if "window" in schedule:
        text += ", window %s-%s" % (schedule["window"]["start"], schedule["window"]["end"])
    if "jitter" in schedule:
        text += ", spread over %s" % schedule["jitter"]
    return text


def plan_lines(policy: dict, compliance: dict | None = None) -> list:
    """One block of lines per dataset, then one per drill."""
    targets = policy.get("restorable_targets", {})
    schedules = policy.get("restorable_schedules", {})
    lines = []
    for name, dataset in sorted(policy.get("restorable_datasets", {}).items()):
        state = "" if dataset.get("enabled", True) else " [disabled]"
        lines.append("dataset %s (%s tier)%s: %s" % (name, dataset["tier"], state, _TIER_WHAT[dataset["tier"]](dataset)))
        for target in dataset.get("targets", []):
            lines.append("  copy to %s" % _target_text(target, targets[target]))
        lines.append("  when: %s" % _when(dataset, schedules))
        rules = dataset["retention"]
        retention = ", ".join("%s %s" % (k, v) for k, v in rules.items() if k not in ("thinning", "prune_every"))
        lines.append("  keep: %s%s" % (retention or "thinning rules",
                                       ", applied every %s backups" % rules["prune_every"] if "prune_every" in rules else ""))
        if "consistency" in dataset:
            lines.append("  consistency: profile %s" % dataset["consistency"])
        objectives = ", ".join("%s %s" % (k.upper(), dataset[k]) for k in ("rpo", "rto") if k in dataset)
        if objectives:
            lines.append("  objectives: %s" % objectives)
        score = (compliance or {}).get(name)
        if score:
            lines.append("  3-2-1-1-0: %s" % score["score"])
    for name, drill in sorted(policy.get("restorable_drills", {}).items()):
        lines.append("drill %s: restore %s %s on %s" % (
            name, ", ".join(drill["datasets"]), drill.get("calendar", "on demand"), drill.get("drill_host", "the source host")))
    return lines
