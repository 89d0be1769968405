# -*- coding: utf-8 -*-
"""restorable.backup.audit over SSH on a real fleet (3 sshd hosts, restic backups by the
collection's own playbooks, moto S3 with Object Lock, audit3 the drill host of every host).

Made wrong on purpose before the audit: audit1's backups stopped 3 h 10 min ago (its status is
aged, as time passing would), audit2's local repository is deleted and its scheduled drill on
audit3 then fails, audit3's bucket has no Object Lock though its policy declares one. Then one audit judges them all,
and a second one runs with audit1's sshd down."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from audit_helpers import EVIDENCE_BUCKET, UNLOCKED_BUCKET, age_status, run_scheduled_drills


@pytest.fixture(scope="module")
def audited(audit_fleet):
    shutil.rmtree(audit_fleet.local_repo("audit2"))
    drills = run_scheduled_drills(audit_fleet)
    assert len(drills) == 3, [d.stderr for d in drills]
    for job in ("files", "files-cloud"):
        age_status(audit_fleet.status_path("audit1", job), 3 * 3600 + 600)
    run, document = audit_fleet.audit("report")
    return run, document, audit_fleet.workdir / "report"


def dataset(document: dict, host: str) -> dict:
    return next(d for d in document["datasets"] if d["host"] == host and d["dataset"] == "files")


def rule(entry: dict, name: str) -> dict:
    return next(r for r in entry["rules"] if r["rule"] == name)


def test_a_stale_dataset_fails_the_audit_naming_it(audited) -> None:
    run, document, report = audited
    assert run.returncode != 0
    files = dataset(document, "audit1")
    assert files["status"] == "red"
    assert files["reasons"][0].startswith("newest point is 3 h 10 min old, RPO is 1 h"), files["reasons"]
    assert "audit1/files (newest point is 3 h 10 min old" in run.stdout
    assert "RED   audit1/files (agent)" in run.stdout  # the one-line summary the playbook prints
    failures = [case for case in ET.parse(report / "junit.xml").getroot().iter("testcase")
                if case.get("name") == "files: newest point within RPO" and case.find("failure") is not None]
    assert [c.get("classname") for c in failures if "audit1" in c.get("classname")] == ["restorable.audit.audit1.files"]
    assert (report / "audit.html").read_text().count("audit1") >= 1


def test_a_copy_deleted_from_one_target_lowers_the_score(audited) -> None:
    _run, document, _report = audited
    files = dataset(document, "audit2")
    disk = next(c for c in files["copies"] if c["name"] == "disk")
    assert disk["status"] == "red" and "does not exist" in disk["reason"]
    three = rule(files, "3 copies")
    assert not three["ok"] and three["detail"].endswith("disk is missing"), three
    healthy = dataset(document, "audit1")  # stale, but both copies still exist
    assert rule(healthy, "3 copies")["ok"] and rule(healthy, "2 media kinds")["ok"]
    assert int(files["score"][0]) < int(healthy["score"][0])


def test_an_object_lock_missing_from_a_bucket_is_found(audited) -> None:
    _run, document, _report = audited
    unlocked = dataset(document, "audit3")
    cloud = next(c for c in unlocked["copies"] if c["name"] == "cloud")
    assert cloud["immutable_verified"] is False
    immutable = rule(unlocked, "1 immutable or offline")
    assert not immutable["ok"]
    assert immutable["detail"] == "cloud: lock not verified (bucket %s has no Object Lock)" % UNLOCKED_BUCKET
    assert unlocked["status"] == "amber"
    locked = next(c for c in dataset(document, "audit1")["copies"] if c["name"] == "cloud")
    assert locked["immutable_verified"] is True, locked  # read back from objects the backups wrote
    assert rule(dataset(document, "audit1"), "1 immutable or offline")["ok"]


def test_a_drill_failed_on_a_drill_host_shows_in_the_audit(audited) -> None:
    _run, document, _report = audited
    files = dataset(document, "audit2")
    assert files["status"] == "red"
    drill = files["drill"]
    assert (drill["result"], drill["source"], drill["drill_host"], drill["drill"]) == ("failed", "drill host", "audit3", "nightly")
    assert any(r.startswith("last drill failed (drill host drill nightly on audit3)") for r in files["reasons"]), files["reasons"]
    passed = dataset(document, "audit3")["drill"]
    assert passed["result"] == "passed" and passed["age_seconds"] < passed["max_age_seconds"]


def test_an_unreachable_host_is_reported_not_dropped(audited, audit_fleet) -> None:
    with audit_fleet.fleet.down("audit1"):
        run, document = audit_fleet.audit("report-down")
    host = next(h for h in document["hosts"] if h["host"] == "audit1")
    assert host["reachable"] is False and host["message"].startswith("unreachable"), host
    files = dataset(document, "audit1")
    assert files["marks"] == ["host unreachable"]
    assert document["summary"]["unreachable"] == 1 and document["summary"]["datasets"] == 3
    assert "audit1/files" in run.stdout
    # The other hosts are judged all the same.
    assert dataset(document, "audit2")["status"] == "red"


def test_limit_narrows_the_audit_and_tags_split_it(audited, audit_fleet) -> None:
    run, document = audit_fleet.audit("report-limit", "--limit", "audit3")
    assert run.returncode == 0, run.stdout[-3000:]  # audit3 alone is amber, not red
    assert [h["host"] for h in document["hosts"]] == ["audit3"]
    assert [d["host"] for d in document["datasets"]] == ["audit3"]
    facts_only = audit_fleet.playbook("audit", "--tags", "facts", "-e", "audit_dir=%s" % (audit_fleet.workdir / "tags"))
    assert facts_only.returncode == 0 and "Collect what each host observes" in facts_only.stdout
    assert "Judge every declared dataset" not in facts_only.stdout and not (audit_fleet.workdir / "tags").exists()


def test_the_audit_reads_the_evidence_bucket_instead_of_the_hosts(audited, audit_fleet, moto_server) -> None:
    bucket = {"endpoint": moto_server.endpoint, "bucket": EVIDENCE_BUCKET, "access_key_id": "audit-access-key",
              "secret_access_key": "audit-secret-key"}
    with audit_fleet.fleet.down("audit1", "audit2", "audit3"):  # nothing is asked of the hosts
        run, document = audit_fleet.audit("report-bucket", "-e", "audit_source=bucket",
                                          "-e", json.dumps({"audit_bucket": bucket}))
    assert document["source"] == "bucket"
    assert [h["reachable"] for h in document["hosts"]] == [True, True, True], document["hosts"]
    drill = dataset(document, "audit2")["drill"]
    assert (drill["result"], drill["drill_host"]) == ("failed", "audit3")  # shipped by the drill host
    assert dataset(document, "audit2")["status"] == "red" and run.returncode != 0
    assert "audit-access-key" not in run.stdout and "audit-secret-key" not in run.stdout
