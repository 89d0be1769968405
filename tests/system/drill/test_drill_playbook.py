# -*- coding: utf-8 -*-
"""restorable.backup.drill end to end: apply, back up, drill, evidence; on one machine.

Three inventory hosts share this machine as the demo's do (connection local, each with its own
agent_root): web1 drills on drillbox and passes, web2's drill points its sandbox into its own
data (after the policy was applied) and must be refused on the drill host, so the playbook fails while still writing the evidence of both.
"""
from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from fleet.inventory import REPO, ansible_bin, ansible_env


def inventory(root: Path, bad_sandbox: bool = True) -> Path:
    host_root = str(root / "hosts") + "/{{ inventory_hostname }}"
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "agent_root": host_root + "/root",
        "restorable_targets": {"repo": {
            "type": "local", "path": str(root / "repositories") + "/{{ inventory_hostname }}",
            "password": "{{ lookup('ansible.builtin.password', '%s/secrets/password', length=32, "
                        "chars=['ascii_letters', 'digits']) }}" % root}},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
        "restorable_compliance": {"plaintext_secrets": "error"},
    }

    def dataset(name: str) -> dict:
        return {"tier": "agent", "paths": [host_root + "/data"], "targets": ["repo"], "schedule": "hourly",
                "rpo": "1h", "rto": "15m", "retention": {"last": 5}}
    hosts = {
        "web1": {"restorable_datasets": {"www": dataset("www")},
                 "restorable_drills": {"www-check": {
                     "datasets": ["www"], "drill_host": "drillbox", "sandbox": str(root / "sandbox"),
                     "sample": {"mode": "percent", "percent": 50}, "checks": ["integrity", "freshness", "content", "custom"],
                     "commands": [{"argv": ["test", "-d", "{sandbox}"], "timeout": "10s"}]}}},
        "web2": {"restorable_datasets": {"app": dataset("app")},
                 "restorable_drills": {"app-check": {
                     "datasets": ["app"],
                     "sandbox": (str(root / "hosts/web2/data/sandbox") if bad_sandbox else str(root / "sandbox"))}}},
        "drillbox": {"restorable_datasets": {}},
    }
    path = root / "inventory.yml"
    path.write_text(yaml.safe_dump({"all": {"vars": common, "hosts": hosts}}))
    return path


def playbook(inventory_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory_path),
                           "restorable.backup.%s" % name, *args], capture_output=True, text=True, check=False,
                          cwd=REPO, env=ansible_env(ANSIBLE_CALLBACKS_ENABLED="restorable.backup.drill_summary"),
                          stdin=subprocess.DEVNULL, timeout=300)


def test_drill_playbook_keeps_evidence_and_fails_on_a_refused_sandbox(tmp_path: Path) -> None:
    for host in ("web1", "web2"):
        data = tmp_path / "hosts" / host / "data"
        data.mkdir(parents=True)
        for index in range(10):
            (data / ("file-%d.txt" % index)).write_text("%s %d\n" % (host, index))
    for name in ("apply", "backup"):
        run = playbook(inventory(tmp_path, bad_sandbox=False), name)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    # Validation (part of apply) refuses such a sandbox; the drill host refuses it again by itself.
    inv = inventory(tmp_path)
    evidence = tmp_path / "evidence"
    run = playbook(inv, "drill", "-e", "drill_evidence_dir=%s" % evidence)
    assert run.returncode != 0, run.stdout[-4000:]
    assert "1 of 2 dataset drill(s) failed" in run.stdout, run.stdout[-4000:]
    # The summary callback's table.
    assert "RESTORE DRILLS: 2 dataset drill(s), 1 failed" in run.stdout
    assert "refusing to restore: sandbox %s/hosts/web2/data/sandbox is inside protected path" % tmp_path in run.stdout
    assert not (tmp_path / "hosts/web2/data/sandbox").exists()

    records = [json.loads(line) for line in (evidence / "ledger.jsonl").read_text().splitlines()]
    by_dataset = {r["dataset"]: r for r in records}
    assert by_dataset["www"]["result"] == "passed", by_dataset["www"]
    assert by_dataset["www"]["drill_host"] == "drillbox"
    assert by_dataset["www"]["sample"]["restored_files"] == 6  # 5 of 10 and the canary
    assert {l["name"]: l["status"] for l in by_dataset["www"]["layers"]}["custom"] == "ok"
    assert by_dataset["app"]["result"] == "failed"
    suite = ET.parse(evidence / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"www on web1", "app on web2"}
    assert cases["www on web1"].find("failure") is None
    assert [f.get("type") for f in cases["app on web2"].findall("failure")] == ["sandbox"]

    # A second run adds to the ledger; the trends draw both runs.
    inv = inventory(tmp_path, bad_sandbox=False)
    run = playbook(inv, "drill", "-e", "drill_evidence_dir=%s" % evidence)
    assert run.returncode == 0, run.stdout[-4000:]
    assert len((evidence / "ledger.jsonl").read_text().splitlines()) == 4
    report = (evidence / "report.html").read_text()
    assert report.count("<svg") == 6 and "last 2 runs" in report  # RTO, RPO and restored size per dataset

    # Extra vars choose the datasets and the recovery point of a run.
    run = playbook(inv, "drill", "-e", "drill_evidence_dir=%s" % evidence, "-e", "drill_datasets=app")
    assert run.returncode == 0, run.stdout[-4000:]
    records = [json.loads(line) for line in (evidence / "ledger.jsonl").read_text().splitlines()]
    assert [r["dataset"] for r in records[4:]] == ["app"]
    run = playbook(inv, "drill", "-e", "drill_evidence_dir=%s" % evidence, "-e", "drill_names=www-check",
                   "-e", json.dumps({"drill_recovery_point": {"choice": "at", "at": "2000-01-01T00:00:00Z"}}))
    assert run.returncode != 0, run.stdout[-4000:]
    records = [json.loads(line) for line in (evidence / "ledger.jsonl").read_text().splitlines()]
    assert [(r["dataset"], r["result"]) for r in records[5:]] == [("www", "failed")]
    assert "no recovery point matches" in records[5]["reason"]
