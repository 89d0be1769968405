# -*- coding: utf-8 -*-
# Private to restorable.backup: the copies a dataset should have (by its tier's planner) and what
# the host's facts say of each: whether it was written and still exists, its newest good point,
# its lock as read back from the storage, and for a tape export the cartridges in the vault.
from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Any

from ...module_utils.common.durations import parse_time
from ...module_utils.common.report_html import human_count, human_duration
from ..tiers.base import MEDIA, Copy, target_copy

# Ages a CDP or array run measures per copy (core/status.py RPO_COPIES), by the copy's kind.
RPO_KEYS = {"snapshots": "source_seconds", "replica": "replica_seconds", "wal_archive": "archive_seconds", "tape": "tape_seconds"}


@functools.lru_cache(maxsize=1 << 16)
def _parsed(text: str) -> datetime.datetime | None:
    return parse_time(text)


def moment(text: Any) -> datetime.datetime | None:
    """parse_time, a text parsed once: a dataset's history is read by its copies, drills and trend, and a
    fleet's records share times (runs of one schedule). Aware datetimes are immutable, safe to share."""
    return _parsed(text) if isinstance(text, str) else None


@dataclass
class ExpectedCopy:
    """One copy the dataset's jobs write: its target and the job whose status reports it."""

    name: str
    kind: str
    job: str
    copy: Copy


def expected_copies(name: str, dataset: dict, targets: dict, planned: list[Copy]) -> list[ExpectedCopy]:
    """The named copies of a dataset, in the order of its planner's copies() (media, off-site, immutable)."""
    tier = dataset.get("tier")
    if tier == "cdp":
        found = [(dataset[k], kind, name) for k, kind in (("replica", "replica"), ("wal_archive", "wal_archive")) if dataset.get(k)]
    elif tier == "array":
        export = dataset.get("export") or {}
        found = [("snapshots", "snapshots", name)] + ([(export["library"], "tape", name)] if export.get("library") else [])
    else:  # agent and host: the primary copy is the dataset's job, further ones are named after their target
        found = [(target, "repository", name if index == 0 else "%s-%s" % (name, target))
                 for index, target in enumerate(dataset.get("targets") or [])]
    copies = []
    for index, (copy_name, kind, job) in enumerate(found):
        if index < len(planned):
            copy = planned[index]
        elif copy_name in targets:
            copy = target_copy(targets[copy_name])
        else:
            copy = Copy(MEDIA.get(kind, "disk"), False, False)
        copies.append(ExpectedCopy(copy_name, kind, job, copy))
    return copies


def find_status(jobs: dict[str, Any], dataset: str, expected: ExpectedCopy) -> dict[str, Any] | None:
    """The status document of the job writing a copy: by its job name, else by its identity."""
    status = jobs.get(expected.job)
    if isinstance(status, dict):
        return status
    for document in jobs.values():
        identity = (document or {}).get("job") or {}
        if identity.get("dataset") == dataset and identity.get("target") == expected.name:
            return document
    return None


def newest_point(status: dict[str, Any], kind: str) -> tuple[datetime.datetime | None, str | None]:
    """(time, as the document writes it) of a copy's newest good point: a restic copy's last success;
    for a CDP or array copy the age the last run measured for it, taken back from that run's end."""
    age = (status.get("rpo") or {}).get(RPO_KEYS.get(kind, "")) if kind != "repository" else None
    finished = moment(status.get("finished")) if isinstance(age, (int, float)) else None
    if finished is not None:
        point = finished - datetime.timedelta(seconds=float(age))
        return point, iso(point)
    text = (status.get("last_success") or {}).get("finished")
    point = moment(text)
    return point, text if point else None


def iso(value: datetime.datetime | None) -> str | None:
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def observe(expected: ExpectedCopy, facts: dict[str, Any], dataset: str, rpo: int | None,
            now: datetime.datetime) -> list[dict[str, Any]]:
    """The copy as the audit document shows it; a tape export becomes its library and its vault."""
    status = find_status(facts.get("jobs") or {}, dataset, expected)
    lock = (facts.get("locks") or {}).get(expected.name)
    verified = lock.get("verified") if isinstance(lock, dict) else None
    entry: dict[str, Any] = {
        "name": expected.name, "kind": expected.kind, "media": expected.copy.media, "offsite": expected.copy.offsite,
        "immutable": bool(expected.copy.immutable_or_offline or verified), "immutable_verified": verified,
        "newest_point": None, "age_seconds": None, "status": "red", "reason": "", "written": False,
    }
    if lock and not verified:
        entry["lock_detail"] = lock.get("detail") or "the lock was not found"
    if status is None:
        entry["reason"] = "never written: no job reports this copy"
        return _with_vault(entry, expected, facts, now)
    present = ((status.get("job") or {}).get("present"))
    point, point_text = newest_point(status, expected.kind)
    if present is False:
        entry["reason"] = "copy missing: %s" % ((status.get("job") or {}).get("detail") or "its repository does not exist")
        return _with_vault(entry, expected, facts, now)
    if point is None:
        entry["reason"] = "no good point written yet (last run %s: %s)" % (status.get("result") or "never", status.get("reason") or "")
        return _with_vault(entry, expected, facts, now)
    age = max(0.0, (now - point).total_seconds())
    entry.update(newest_point=point_text, age_seconds=round(age, 1), written=True, status="green")
    if rpo is not None and age > rpo:
        entry.update(status="red", reason="newest point is %s old, RPO is %s" % (human_duration(age), human_duration(rpo)))
    elif status.get("result") == "failed":
        entry.update(status="amber", reason="last run failed: %s" % (status.get("reason") or "no reason recorded"))
    elif expected.copy.immutable_or_offline and verified is False:
        entry.update(status="amber", reason="lock not verified: %s" % entry["lock_detail"])
    return _with_vault(entry, expected, facts, now)


def _with_vault(entry: dict[str, Any], expected: ExpectedCopy, facts: dict[str, Any],
                now: datetime.datetime) -> list[dict[str, Any]]:
    """Cartridges in the vault are a copy of their own: off-site and offline, so never dropped."""
    if expected.kind != "tape":
        return [entry]
    cartridges = ((facts.get("tape") or {}).get(expected.name) or {}).get("cartridges") or []
    vaulted = [c for c in cartridges if str(c.get("location") or "").startswith("vault") and c.get("used_bytes")]
    if not vaulted:
        return [entry]
    newest = max((t for t in (moment(c.get("last_written")) for c in vaulted) if t is not None), default=None)
    vault = dict(entry, name="%s vault" % expected.name, kind="vault", offsite=True, immutable=True, immutable_verified=True,
                 newest_point=iso(newest), age_seconds=round((now - newest).total_seconds(), 1) if newest else None,
                 status="green", written=True,
                 reason="%s in the vault (offline)" % human_count(len(vaulted), "cartridge"))
    vault.pop("lock_detail", None)
    return [entry, vault]
