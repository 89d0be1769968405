# -*- coding: utf-8 -*-
"""The fleet audit's evaluator: every declared dataset judged from observed host facts (status,
locks read back, drill ledgers), never dropped, with plain-word reasons and JUnit cases."""
from __future__ import annotations

import copy
import datetime
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.restorable.backup.plugins.plugin_utils.audit.evaluator import FleetAudit
from ansible_collections.restorable.backup.plugins.plugin_utils.audit.report import junit_xml, summary_lines

NOW = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=datetime.timezone.utc)
SECRET = "secret"


def ago(seconds: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


POLICY = {
    "restorable_site": "hq",
    "restorable_targets": {
        "nas": {"type": "local", "path": "/srv/restic", "password": SECRET},
        "cloud": {"type": "s3", "endpoint": "http://127.0.0.1:9000", "bucket": "b", "access_key_id": SECRET,
                  "secret_access_key": SECRET, "password": SECRET, "offsite": True,
                  "object_lock": {"mode": "compliance", "days": 30}},
    },
    "restorable_schedules": {"hourly": {"calendar": "hourly"}},
    "restorable_datasets": {"www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas", "cloud"], "schedule": "hourly",
                                    "rpo": "1h", "retention": {"last": 3}}},
    "restorable_compliance": {"drill_max_age": "7d"},
}


def job(dataset: str, target: str, age: float, present: bool = True, check_ok: bool | None = True) -> dict:
    finished = ago(age)
    document = {"result": "success", "finished": finished, "dataset": dataset,
                "last_success": {"finished": finished, "bytes_processed": 1000},
                "history": [{"result": "success", "finished": finished, "bytes_processed": 1000}],
                "job": {"tier": "agent", "dataset": "www", "target": target, "present": present,
                        "detail": "" if present else "repository /srv/restic does not exist"}}
    if check_ok is not None:
        document["last_check"] = {"ok": check_ok, "finished": finished, "message": "" if check_ok else "pack 1a2b is damaged"}
    return document


def drill(result: str = "passed", age: float = 3600, source_host: str = "web01", drill_host: str = "drill01") -> dict:
    return {"drill": "weekly", "dataset": "www", "source_host": source_host, "drill_host": drill_host, "result": result,
            "started": ago(age + 60), "finished": ago(age), "rto": {"seconds": 42.0, "target_seconds": 900},
            "rpo": {"seconds": 1800, "target_seconds": 3600},
            "layers": [{"name": "content", "status": "failed" if result == "failed" else "ok", "message": "3 files differ"}]}


def facts(host: str = "web01", age: float = 600, **overrides) -> dict:
    document = {"format": 1, "host": host, "collected": ago(0),
                "jobs": {"www": job("www", "nas", age), "www-cloud": job("www-cloud", "cloud", age)},
                "snapshot_groups": {}, "drills": [],
                "locks": {"cloud": {"kind": "s3_object_lock", "verified": True, "mode": "COMPLIANCE", "days": 30,
                                    "detail": "bucket b: COMPLIANCE retention of 30 day(s)"}},
                "tape": {}, "vms": {}, "problems": []}
    document.update(overrides)
    return document


def audit(policies=None, fleet_facts=None, unreachable=None, controller=None) -> dict:
    policies = policies or {"web01": copy.deepcopy(POLICY), "drill01": {}}
    fleet_facts = {"web01": facts(), "drill01": facts("drill01", jobs={}, locks={}, drills=[drill()])} if fleet_facts is None else fleet_facts
    return FleetAudit(policies, fleet_facts, unreachable, controller or [], now=NOW).document()


def dataset_of(document: dict, host: str = "web01", name: str = "www") -> dict:
    return next(d for d in document["datasets"] if d["host"] == host and d["dataset"] == name)


def rule(dataset: dict, name: str) -> dict:
    return next(r for r in dataset["rules"] if r["rule"] == name)


def test_a_healthy_dataset_is_green_with_every_rule_met() -> None:
    document = audit()
    www = dataset_of(document)
    assert www["status"] == "green", www["reasons"]
    assert www["score"] == "5/5"
    assert [c["name"] for c in www["copies"]] == ["nas", "cloud"]
    cloud = www["copies"][1]
    assert cloud["immutable"] and cloud["immutable_verified"] and cloud["offsite"] and cloud["media"] == "object storage"
    assert www["drill"]["source"] == "drill host" and www["drill"]["drill_host"] == "drill01"
    assert www["site"] == "hq"
    assert rule(www, "1 immutable or offline")["detail"] == "cloud: COMPLIANCE Object Lock read back for 30 days"
    assert document["summary"] == {"hosts": 2, "unreachable": 0, "datasets": 1, "green": 1, "amber": 0, "red": 0}
    assert www["trend"]["rto"] == [[ago(3600), 42.0]] and www["trend"]["size"] == [[ago(600), 1000]]


def test_a_stale_dataset_is_red_and_named() -> None:
    stale = facts(age=3 * 3600 + 600)
    document = audit(fleet_facts={"web01": stale, "drill01": facts("drill01", jobs={}, locks={}, drills=[drill()])})
    www = dataset_of(document)
    assert www["status"] == "red"
    assert www["reasons"][0] == "newest point is 3 h 10 min old, RPO is 1 h"
    lines = summary_lines(document)
    assert lines[0].startswith("RED   web01/www (agent) 5/5")
    assert lines[-1].endswith("0 green, 0 amber, 1 red")
    cases = {c.get("name"): c for c in ET.fromstring(junit_xml(document).split("\n", 1)[1]).iter("testcase")}
    failure = cases["www: newest point within RPO"].find("failure")
    assert failure is not None and "3 h 10 min" in failure.get("message") and "www on web01" in failure.get("message")


def test_a_missing_copy_lowers_the_score() -> None:
    gone = facts()
    gone["jobs"]["www"] = job("www", "nas", 600, present=False)
    document = audit(fleet_facts={"web01": gone, "drill01": facts("drill01", jobs={}, locks={}, drills=[drill()])})
    www = dataset_of(document)
    assert www["status"] == "amber"
    assert www["score"] == "3/5"  # the disk copy is gone: 2 copies, and one media kind left
    assert rule(www, "2 media kinds")["detail"] == "all copies are on object storage; 2 media kinds are needed"
    three = rule(www, "3 copies")
    assert not three["ok"]
    assert three["detail"] == "only 2 copies exist (production and cloud); 3 are needed; nas is missing"
    assert www["copies"][0]["status"] == "red" and "does not exist" in www["copies"][0]["reason"]


def test_a_lock_not_read_back_does_not_count_as_immutable() -> None:
    unlocked = facts(locks={"cloud": {"kind": "s3_object_lock", "verified": False, "mode": None, "days": None,
                                      "detail": "bucket b has Object Lock enabled but no default retention rule"}})
    www = dataset_of(audit(fleet_facts={"web01": unlocked, "drill01": facts("drill01", jobs={}, locks={}, drills=[drill()])}))
    immutable = rule(www, "1 immutable or offline")
    assert not immutable["ok"]
    assert "cloud: lock not verified (bucket b has Object Lock enabled but no default retention rule)" == immutable["detail"]
    assert www["copies"][1]["immutable_verified"] is False
    assert www["status"] == "amber" and www["score"] == "4/5"


def test_an_unreachable_host_is_kept_and_marked() -> None:
    document = audit(fleet_facts={"drill01": facts("drill01", jobs={}, locks={}, drills=[drill()])},
                     unreachable={"web01": "unreachable: ssh: connect to host 127.0.0.9 port 22: Connection refused"})
    host = next(h for h in document["hosts"] if h["host"] == "web01")
    assert host["reachable"] is False and "Connection refused" in host["message"]
    www = dataset_of(document)
    assert www["marks"] == ["host unreachable"]
    assert www["status"] == "amber"
    assert www["reasons"][0].startswith("host web01 was not observed (unreachable: ssh: connect to host")
    assert document["summary"]["unreachable"] == 1 and document["summary"]["datasets"] == 1


def test_a_drill_failed_on_a_drill_host_is_red() -> None:
    document = audit(fleet_facts={"web01": facts(), "drill01": facts("drill01", jobs={}, locks={},
                                                                     drills=[drill(age=7200), drill("failed", age=600)])},
                     controller=[drill(age=5000)])
    www = dataset_of(document)
    assert www["status"] == "red"
    assert www["drill"]["result"] == "failed" and www["drill"]["source"] == "drill host"
    assert www["reasons"][0] == "last drill failed (drill host drill weekly on drill01): content: 3 files differ"
    assert not rule(www, "0 errors")["ok"]


def test_the_controller_ledger_counts_and_an_overdue_drill_is_amber() -> None:
    document = audit(fleet_facts={"web01": facts(), "drill01": facts("drill01", jobs={}, locks={})},
                     controller=[drill(age=8 * 86400)])
    www = dataset_of(document)
    assert www["drill"]["source"] == "controller"
    assert www["status"] == "amber"
    assert "last drill passed 8 d ago, drills must pass every 7 d" in www["reasons"]


def test_a_failed_integrity_check_is_red() -> None:
    broken = facts()
    broken["jobs"]["www-cloud"] = job("www-cloud", "cloud", 600, check_ok=False)
    www = dataset_of(audit(fleet_facts={"web01": broken, "drill01": facts("drill01", jobs={}, locks={}, drills=[drill()])}))
    assert www["status"] == "red"
    assert "last integrity check of www-cloud failed: pack 1a2b is damaged" in www["reasons"]


ARRAY_POLICY = {
    "restorable_targets": {"vtl": {"type": "tape_library", "driver": "directory", "path": "/srv/vtl", "slots": 8, "drives": 1,
                                   "media": {"type": "LTO8"}, "pools": {"weekly": {"retention_days": 30, "vault": True, "worm": True}}}},
    "restorable_datasets": {"db": {"tier": "array", "volumes": ["/srv/db"], "provider": "btrfs", "rpo": "15m",
                                   "retention": {"last": 4}, "export": {"library": "vtl", "pool": "weekly"}}},
}


def test_vaulted_cartridges_are_a_copy_of_their_own_and_marked() -> None:
    status = {"result": "success", "finished": ago(60), "rpo": {"source_seconds": 120, "tape_seconds": 600},
              "last_success": {"finished": ago(60)}, "job": {"tier": "array", "dataset": "db", "target": "vtl", "present": None}}
    cartridges = [{"barcode": "WK0001L8", "pool": "weekly", "location": "vault vault", "worm": True, "used_bytes": 10,
                   "retain_until": ago(-86400), "last_written": ago(3600)},
                  {"barcode": "WK0002L8", "pool": "weekly", "location": "slot 2", "worm": True, "used_bytes": 10,
                   "retain_until": ago(-86400), "last_written": ago(600)}]
    host_facts = facts("san01", jobs={"db": status}, locks={"vtl": {"kind": "worm_cartridge", "verified": True, "mode": "WORM",
                                                                    "days": None, "detail": "2 written WORM cartridge(s) protected"}},
                       tape={"vtl": {"cartridges": cartridges}})
    document = audit({"san01": copy.deepcopy(ARRAY_POLICY)}, {"san01": host_facts})
    db = dataset_of(document, "san01", "db")
    kinds = [(c["name"], c["kind"]) for c in db["copies"]]
    assert kinds == [("snapshots", "snapshots"), ("vtl", "tape"), ("vtl vault", "vault")]
    vault = db["copies"][2]
    assert vault["offsite"] and vault["immutable_verified"] and vault["age_seconds"] == 3600.0
    assert "vtl vault: 1 cartridge in the vault" in db["marks"]
    assert rule(db, "3 copies")["detail"] == "3 copies exist (production, snapshots and vtl)"
    assert rule(db, "1 off-site")["ok"]
    assert rule(db, "1 immutable or offline")["detail"] == "vtl: WORM read back; vtl vault: offline in the vault"
    assert db["copies"][1]["age_seconds"] == 660.0  # the tape's point is the run's end minus its measured age


def test_a_stopped_vm_stays_marked() -> None:
    policy = copy.deepcopy(POLICY)
    policy["restorable_datasets"] = {"vms": {"tier": "host", "vms": {"names": ["erp01"]}, "targets": ["nas"],
                                             "schedule": "hourly", "rpo": "1d", "retention": {"last": 3}}}
    status = job("vms", "nas", 600)
    status["job"]["tier"], status["job"]["dataset"] = "host", "vms"
    document = audit({"hv01": policy}, {"hv01": facts("hv01", jobs={"vms": status}, locks={}, vms={"erp01": "shut off", "other": "shut off"})})
    vms = dataset_of(document, "hv01", "vms")
    assert vms["marks"] == ["vm stopped: erp01"]


def test_a_disabled_dataset_is_left_out_and_an_unknown_tier_is_kept() -> None:
    policy = copy.deepcopy(POLICY)
    policy["restorable_datasets"]["old"] = dict(policy["restorable_datasets"]["www"], enabled=False)
    policy["restorable_datasets"]["tapeonly"] = {"tier": "mainframe", "rpo": "1d"}
    document = audit({"web01": policy}, {"web01": facts()})
    assert sorted(d["dataset"] for d in document["datasets"]) == ["tapeonly", "www"]
    assert dataset_of(document, name="tapeonly")["status"] == "amber"


def test_a_bad_duration_names_the_host_and_field() -> None:
    policy = copy.deepcopy(POLICY)
    policy["restorable_datasets"]["www"]["rpo"] = "soon"
    with pytest.raises(ValueError, match="host web01: restorable_datasets.www.rpo: expected a duration"):
        audit({"web01": policy}, {"web01": facts()})


def test_without_drills_the_rpo_trend_comes_from_the_backups() -> None:
    host_facts = facts()
    host_facts["jobs"]["www"]["history"] = [{"result": "success", "finished": ago(7200), "bytes_processed": 900},
                                            {"result": "failed", "finished": ago(3600)},
                                            {"result": "success", "finished": ago(600), "bytes_processed": 1000}]
    www = dataset_of(audit({"web01": copy.deepcopy(POLICY)}, {"web01": host_facts}))
    assert www["trend"]["rpo"] == [[ago(600), 6600.0]]
    assert www["trend"]["size"] == [[ago(7200), 900], [ago(600), 1000]]
    assert www["drill"] is None and "no drill restored this dataset yet" in www["reasons"]


CDP_POLICY = {
    "restorable_targets": {"replica01": {"type": "replica", "host": "replica01", "path": "/srv/replicas", "offsite": True},
                           "wal": {"type": "local", "path": "/srv/wal", "password": SECRET}},
    "restorable_datasets": {"pg": {"tier": "cdp", "source": {"type": "postgresql"}, "replica": "replica01", "wal_archive": "wal",
                                   "rpo": "15m", "retention": {"max_age": "7d"}}},
}


def test_cdp_copies_take_their_ages_from_the_run_that_measured_them() -> None:
    status = {"result": "success", "finished": ago(60), "last_success": {"finished": ago(60)},
              "rpo": {"source_seconds": 30, "replica_seconds": 1800, "archive_seconds": 20},
              "job": {"tier": "cdp", "dataset": "pg", "target": None, "present": None}}
    document = audit({"db01": copy.deepcopy(CDP_POLICY)}, {"db01": facts("db01", jobs={"pg": status}, locks={})})
    pg = dataset_of(document, "db01", "pg")
    ages = {c["name"]: (c["kind"], c["age_seconds"], c["status"]) for c in pg["copies"]}
    assert ages == {"replica01": ("replica", 1860.0, "red"), "wal": ("wal_archive", 80.0, "green")}
    assert "replica replica01: newest point is 31 min old, RPO is 15 min" in pg["reasons"]
    assert pg["status"] == "amber"  # the WAL archive still holds a point within the RPO
