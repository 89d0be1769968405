# -*- coding: utf-8 -*-
"""restorable.backup.drill over SSH on the 3-host fleet: every host's dataset is restored on
host3 (the drill host), each under its own agent_root, with the evidence on the controller."""
from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from fleet.inventory import REPO, ansible_bin, ansible_env


def playbook(inventory: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory), "--forks", "10",
                           "restorable.backup.%s" % name, *args], capture_output=True, text=True, check=False,
                          cwd=REPO, env=ansible_env(), stdin=subprocess.DEVNULL, timeout=300)


def test_fleet_drills_on_a_drill_host(ssh_fleet, tmp_path: Path) -> None:
    for host in ssh_fleet:
        data = Path(host.data_dir) / "drill-data"
        data.mkdir(parents=True, exist_ok=True)
        for index in range(5):
            (data / ("%s-%d.txt" % (host.name, index))).write_text("%s %d\n" % (host.name, index) * 100)
    sandbox = tmp_path / "sandbox"
    policy = {
        "agent_root": "{{ fleet_data_dir }}/drill-root",
        "restorable_targets": {"repo": {
            "type": "local", "path": "{{ fleet_data_dir }}/drill-repository",
            "password": "{{ lookup('ansible.builtin.password', '%s/password', length=32, "
                        "chars=['ascii_letters', 'digits']) }}" % tmp_path}},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
        "restorable_datasets": {"files": {
            "tier": "agent", "paths": ["{{ fleet_data_dir }}/drill-data"], "targets": ["repo"],
            "schedule": "hourly", "rpo": "1h", "rto": "10m", "retention": {"last": 3, "daily": 7}}},
        "restorable_drills": {"nightly": {
            "datasets": ["files"], "drill_host": "host3", "sandbox": str(sandbox),
            "recovery_point": {"choice": "random", "within_days": 1, "seed": 3},
            "sample": {"mode": "files", "files": 2}}},
    }
    inventory = ssh_fleet.write_inventory(tmp_path / "inventory.yml", extra_vars=policy)
    for name in ("apply", "backup"):
        run = playbook(inventory, name)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    evidence = tmp_path / "evidence"
    run = playbook(inventory, "drill", "-e", "drill_evidence_dir=%s" % evidence)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for host in ("host1", "host2", "host3"):
        assert "%s -> host3" % host in run.stdout or host == "host3"
    records = [json.loads(line) for line in (evidence / "ledger.jsonl").read_text().splitlines()]
    assert sorted(r["source_host"] for r in records) == ["host1", "host2", "host3"]
    for record in records:
        assert record["result"] == "passed", record
        assert record["drill_host"] == "host3"
        assert record["sample"]["restored_files"] == 3  # 2 files and the canary
        assert {l["name"]: l["status"] for l in record["layers"]}["freshness"] == "ok"
    assert len(list(ET.parse(evidence / "junit.xml").getroot().iter("testcase"))) == 3
    assert not sandbox.exists() or not any(sandbox.iterdir())
