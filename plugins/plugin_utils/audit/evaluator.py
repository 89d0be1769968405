# -*- coding: utf-8 -*-
# Private to restorable.backup: judges every declared dataset of a fleet from the hosts' facts and
# writes the evaluated audit document (format 1): per dataset its copies and their newest points
# against the RPO, 3-2-1-1-0 from the copies that exist, the last drill, a status and the reasons.
#
# Red: the dataset cannot be restored within its promises (no point, newest point older than the
# RPO, the last drill or integrity check failed). Amber: it can, but something needs attention (a
# rule of 3-2-1-1-0 not met, a copy stale or missing, a lock not verified, no recent drill, or the
# host could not be reached so nothing was observed). A host or dataset is never left out.
from __future__ import annotations

import datetime
import fnmatch
from collections.abc import Mapping
from typing import Any

from ...module_utils.common.durations import parse_duration
from ...module_utils.common.report_html import human_count, human_duration
from ..heap import cycle_collection_paused
from ..policy.compliance import DEFAULT_DRILL_MAX_AGE
from ..tiers import TIERS, Tiers
from ..tiers.base import Fleet, TierPlanner
from .copies import expected_copies, iso, moment, observe
from .drills import DrillIndex

AUDIT_FORMAT = 1
RULES = ("3 copies", "2 media kinds", "1 off-site", "1 immutable or offline", "0 errors")


def words(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else "%s and %s" % (", ".join(names[:-1]), names[-1])


class HostView:
    """What every dataset of one host shares: its policy, facts, tier planners and failed checks."""

    def __init__(self, audit: "FleetAudit", host: str) -> None:
        self.audit = audit
        self.host = host
        self.policy = audit.fleet.policies[host]
        self.facts = audit.facts.get(host)
        settings = self.policy.get("restorable_compliance") or {}
        self.drill_max_age = parse_duration(settings.get("drill_max_age", DEFAULT_DRILL_MAX_AGE),
                                            "host %s: restorable_compliance.drill_max_age" % host)
        self._planners: dict[str, TierPlanner | None] = {}  # one per tier, as plan and apply make them
        self.failed_checks: dict[str, list[str]] = {}  # dataset: the integrity checks of its copies that failed
        for name, status in sorted(((self.facts or {}).get("jobs") or {}).items()):
            check = status.get("last_check") or {}
            if check and not check.get("ok"):
                dataset = (status.get("job") or {}).get("dataset") or name
                self.failed_checks.setdefault(dataset, []).append("last integrity check of %s failed%s" % (
                    name, ": %s" % check["message"] if check.get("message") else ""))

    def planner(self, tier: str) -> TierPlanner | None:
        if tier not in self._planners:
            self._planners[tier] = self.audit.tiers.planner(self.host, self.audit.fleet, tier)
        return self._planners[tier]


class DatasetAudit:
    """One declared dataset of one host, judged from the host's facts and the drill records."""

    def __init__(self, view: HostView, name: str, dataset: dict[str, Any]) -> None:
        self.audit = view.audit
        self.view = view
        self.host = view.host
        self.name = name
        self.dataset = dataset
        self.policy = view.policy
        self.facts = view.facts
        self.now = view.audit.now
        self.red: list[str] = []
        self.amber: list[str] = []
        self.marks: list[str] = []
        where = "host %s: restorable_datasets.%s.rpo" % (view.host, name)
        self.rpo = parse_duration(dataset["rpo"], where) if dataset.get("rpo") else None

    def evaluate(self) -> dict[str, Any]:
        tier = self.dataset.get("tier")
        planner = self.view.planner(tier)
        if planner is None:
            self.amber.append("tier %s is not supported by this version: nothing of it is backed up or judged" % tier)
            return self._document([], [], None)
        if self.facts is None:
            why = self.audit.unreachable.get(self.host) or "no facts"
            self.marks.append("host unreachable" if why.startswith("unreachable") else "no facts")
            self.amber.append("host %s was not observed (%s)" % (self.host, why))
            return self._document([], [], self._drill())
        copies = self._copies(planner.copies(self.dataset))
        drill = self._drill()
        rules = self._rules(copies, drill)
        self._mark_vms()
        return self._document(copies, rules, drill)

    # -- copies ----------------------------------------------------------------------------------

    def _copies(self, planned: list) -> list[dict[str, Any]]:
        targets = self.policy.get("restorable_targets") or {}
        copies = []
        for expected in expected_copies(self.name, self.dataset, targets, planned):
            copies += observe(expected, self.facts, self.name, self.rpo, self.now)
        written = [c for c in copies if c["written"]]
        if not copies:
            self.red.append("no copy is declared: nothing can be restored")
        elif not written:
            self.red.append("no recovery point exists in any copy (%s)" % "; ".join(
                "%s: %s" % (c["name"], c["reason"]) for c in copies))
        else:
            ages = [c["age_seconds"] for c in written if c["age_seconds"] is not None]
            stale = bool(ages) and self.rpo is not None and min(ages) > self.rpo
            if stale:
                self.red.append("newest point is %s old, RPO is %s" % (human_duration(min(ages)), human_duration(self.rpo)))
            for copy in copies:
                # A written copy of a stale dataset is stale too: the dataset's own reason says so once.
                if copy["status"] != "green" and copy["reason"] and not (stale and copy["written"]):
                    self.amber.append("%s %s: %s" % (copy["kind"].replace("_", " "), copy["name"], copy["reason"]))
        self.marks += ["%s: %s" % (c["name"], c["reason"].replace(" (offline)", "")) for c in copies if c["kind"] == "vault"]
        return copies

    # -- 3-2-1-1-0 -------------------------------------------------------------------------------

    def _rules(self, copies: list[dict[str, Any]], drill: dict[str, Any] | None) -> list[dict[str, Any]]:
        written = [c for c in copies if c["written"]]
        missing = [c for c in copies if not c["written"]]
        # Cartridges in the vault are the tape copy's, moved: off-site and offline, not one more copy.
        names = ["production"] + [c["name"] for c in written if c["kind"] != "vault"]
        lost = "; %s %s missing" % (words([c["name"] for c in missing]), "is" if len(missing) == 1 else "are") if missing else ""
        count = human_count(len(names), "copy")
        rules = [self._rule("3 copies", len(names) >= 3, "%s exist (%s)" % (count, words(names)) if len(names) >= 3 else
                            "only %s %s (%s); 3 are needed%s" % (count, "exists" if len(names) == 1 else "exist", words(names), lost))]
        media = sorted({c["media"] for c in written})
        rules.append(self._rule("2 media kinds", len(media) >= 2, (
            "copies on %s" % words(media)) if len(media) >= 2 else (
            "all copies are on %s; 2 media kinds are needed" % media[0] if media else "no copy written; 2 media kinds are needed")))
        offsite = [c["name"] for c in written if c["offsite"]]
        rules.append(self._rule("1 off-site", bool(offsite), "%s off-site" % words(offsite) if offsite else
                                "no copy written off-site" + ("" if not [c for c in missing if c["offsite"]] else
                                                              " (%s would be, but is missing)" % words([c["name"] for c in missing if c["offsite"]]))))
        rules.append(self._immutable_rule(written, copies))
        rules.append(self._errors_rule(drill))
        failed = [r["rule"] for r in rules if not r["ok"]]
        if failed:
            self.amber.append("3-2-1-1-0: %s not met" % words(failed))
        return rules

    def _immutable_rule(self, written: list[dict[str, Any]], copies: list[dict[str, Any]]) -> dict[str, Any]:
        locked = [c for c in written if c["immutable"] and c["immutable_verified"]]
        if locked:
            return self._rule("1 immutable or offline", True, "; ".join(self._lock_words(c) for c in locked))
        unverified = [c for c in copies if c["immutable"] and not c["immutable_verified"]]
        if unverified:
            return self._rule("1 immutable or offline", False, "; ".join(
                "%s: lock not verified (%s)" % (c["name"], c.get("lock_detail") or "not read back") for c in unverified))
        return self._rule("1 immutable or offline", False, "no copy is locked or offline")

    def _lock_words(self, copy: dict[str, Any]) -> str:
        if copy["kind"] == "vault":
            return "%s: offline in the vault" % copy["name"]
        lock = ((self.facts or {}).get("locks") or {}).get(copy["name"]) or {}
        kind = {"s3_object_lock": "Object Lock", "worm_cartridge": "WORM"}.get(lock.get("kind"), "lock")
        days = " for %s" % human_count(lock["days"], "day") if lock.get("days") else ""
        mode = "%s " % lock["mode"] if lock.get("mode") and lock.get("mode") != "WORM" else ""
        return "%s: %s%s read back%s" % (copy["name"], mode, kind, days)

    def _errors_rule(self, drill: dict[str, Any] | None) -> dict[str, Any]:
        problems = list(self.view.failed_checks.get(self.name, []))
        self.red += problems
        if drill is None:
            problems.append("no drill restored this dataset")
        elif drill["result"] != "passed":
            problems.append("last drill %s on %s %s" % (drill["drill"], drill["drill_host"], drill["result"]))
        elif drill["age_seconds"] is not None and drill["age_seconds"] > drill["max_age_seconds"]:
            problems.append("last drill passed %s ago, drills must pass every %s" % (
                human_duration(drill["age_seconds"]), human_duration(drill["max_age_seconds"])))
        if problems:
            return self._rule("0 errors", False, "; ".join(problems))
        return self._rule("0 errors", True, "no integrity check failed, last drill passed %s ago (at most every %s)" % (
            human_duration(drill["age_seconds"]), human_duration(drill["max_age_seconds"])))

    @staticmethod
    def _rule(rule: str, ok: bool, detail: str) -> dict[str, Any]:
        return {"rule": rule, "ok": ok, "detail": detail}

    # -- drills, VMs, trends -----------------------------------------------------------------------

    def _drill(self) -> dict[str, Any] | None:
        drill = self.audit.drills.last(self.host, self.name, self.view.drill_max_age, self.now)
        if drill is None:
            self.amber.append("no drill restored this dataset yet")
            return None
        layers = drill.pop("failed_layers")
        why = drill.pop("reason")
        where = "%s drill %s on %s" % (drill["source"], drill["drill"], drill["drill_host"])
        if drill["result"] == "failed":
            self.red.append("last drill failed (%s)%s" % (
                where, ": " + ", ".join(layers) if layers else (": " + why if why else "")))
        elif drill["result"] != "passed":
            self.amber.append("last drill did not pass (%s): %s" % (where, drill["result"]))
        elif drill["age_seconds"] is not None and drill["age_seconds"] > drill["max_age_seconds"]:
            self.amber.append("last drill passed %s ago, drills must pass every %s" % (
                human_duration(drill["age_seconds"]), human_duration(drill["max_age_seconds"])))
        for measure in ("rto", "rpo"):
            value, target = drill["%s_seconds" % measure], drill["%s_target_seconds" % measure]
            if drill["result"] == "passed" and value is not None and target is not None and value > target:
                self.amber.append("last drill measured %s %s, target %s" % (measure.upper(), human_duration(value), human_duration(target)))
        return drill

    def _mark_vms(self) -> None:
        """A host-tier dataset's VMs that are not running stay in the audit, marked."""
        selection = self.dataset.get("vms") or {}
        for vm, state in sorted(((self.facts or {}).get("vms") or {}).items()):
            wanted = selection.get("all") or vm in (selection.get("names") or []) or any(
                fnmatch.fnmatchcase(vm, p) for p in selection.get("patterns") or [])
            if not wanted or any(fnmatch.fnmatchcase(vm, p) for p in selection.get("exclude") or []) or state == "running":
                continue
            self.marks.append("vm stopped" if state == "shut off" else "vm %s" % state)
            self.marks[-1] += ": %s" % vm

    def _trend(self) -> dict[str, list]:
        runs = [record for record, _source in self.audit.drills.history(self.host, self.name)]
        trend: dict[str, list] = {"rpo": [], "rto": [], "size": []}
        for record in runs:
            when = record.get("finished") or record.get("started")
            for measure in ("rpo", "rto"):
                value = (record.get(measure) or {}).get("seconds")
                if when and isinstance(value, (int, float)):
                    trend[measure].append([when, value])
        status = ((self.facts or {}).get("jobs") or {}).get(self.name) or {}
        successes = [run for run in status.get("history") or [] if run.get("result") == "success" and run.get("finished")]
        trend["size"] = [[run["finished"], run["bytes_processed"]] for run in successes if run.get("bytes_processed") is not None]
        if not trend["rpo"]:
            # Without drills, the RPO each backup achieved: the age the previous point had reached when it ran.
            for before, after in zip(successes, successes[1:]):
                start, end = moment(before["finished"]), moment(after["finished"])
                if start and end:
                    trend["rpo"].append([after["finished"], (end - start).total_seconds()])
        return trend

    def _document(self, copies: list[dict[str, Any]], rules: list[dict[str, Any]], drill: dict[str, Any] | None) -> dict[str, Any]:
        status = "red" if self.red else "amber" if self.amber else "green"
        for copy in copies:
            copy.pop("written", None)
            copy.pop("lock_detail", None)
        return {"host": self.host, "site": self.policy.get("restorable_site"), "dataset": self.name,
                "tier": self.dataset.get("tier"), "status": status, "reasons": list(dict.fromkeys(self.red + self.amber)),
                "rpo_seconds": self.rpo, "copies": copies, "rules": rules,
                "score": "%d/%d" % (sum(1 for r in rules if r["ok"]), len(RULES)), "drill": drill,
                "marks": self.marks, "trend": self._trend()}


class FleetAudit:
    """The evaluated audit document of a fleet.

    policies: each host's restorable_* variables; facts: host facts documents of the hosts that
    answered; unreachable: host -> why it did not; controller_drills: the controller's drill ledger;
    hosts: the hosts to audit (default every host of policies).
    """

    def __init__(self, policies: Mapping[str, dict], facts: Mapping[str, dict], unreachable: Mapping[str, str] | None = None,
                 controller_drills: list[dict] | None = None, now: datetime.datetime | None = None, source: str = "ssh",
                 tiers: Tiers = TIERS, roots: Mapping[str, str] | None = None, hosts: list[str] | None = None) -> None:
        self.fleet = Fleet(policies, dict(roots or {}))
        # The audited hosts (a --limit); planners may still read the policies of the others.
        self.audited = sorted(policies if hosts is None else hosts)
        self.facts = facts
        self.unreachable = dict(unreachable or {})
        self.now = now or datetime.datetime.now(datetime.timezone.utc)
        self.source = source
        self.tiers = tiers
        with cycle_collection_paused():  # indexes every drill record of the fleet: see heap.py
            self.drills = DrillIndex(controller_drills or [], facts)

    def hosts(self) -> list[dict[str, Any]]:
        entries = []
        for host in self.audited:
            facts = self.facts.get(host)
            if facts is None:
                message = self.unreachable.get(host) or "no facts collected"
            else:
                message = "facts collected %s" % (facts.get("collected") or "?")
                problems = facts.get("problems") or []
                if problems:
                    message += "; " + "; ".join(problems)
            entries.append({"host": host, "site": self.fleet.policies[host].get("restorable_site"),
                            "reachable": facts is not None, "message": message})
        return entries

    def datasets(self) -> list[dict[str, Any]]:
        found = []
        for host in self.audited:
            view = HostView(self, host)
            for name, dataset in sorted((view.policy.get("restorable_datasets") or {}).items()):
                if dataset.get("enabled", True):
                    found.append(DatasetAudit(view, name, dataset).evaluate())
        return found

    def document(self) -> dict[str, Any]:
        with cycle_collection_paused():  # the whole fleet's facts stay alive: see heap.py
            hosts = self.hosts()
            datasets = self.datasets()
        summary = {"hosts": len(hosts), "unreachable": sum(1 for h in hosts if not h["reachable"]), "datasets": len(datasets)}
        summary.update({colour: sum(1 for d in datasets if d["status"] == colour) for colour in ("green", "amber", "red")})
        return {"format": AUDIT_FORMAT, "generated": iso(self.now), "source": self.source, "summary": summary,
                "hosts": hosts, "datasets": datasets}
