# -*- coding: utf-8 -*-
"""Scheduled restore drills on a separate drill host, installed by restorable.backup.apply.

On the sshd fleet: host1 serves an SFTP repository, host2 backs its files up to it, host3 is the
drill host of host2's drill. Each host has its own agent_root. apply must put the drill's timer,
configuration and copies of host2's repository credentials on host3 only (0600, idempotent,
nothing written in check mode); the unit's ExecStart, run on host3 as the timer runs it, must
restore host2's backup into host3's sandbox without anything of host2's root (its secrets are
moved away meanwhile) and keep the evidence on host3. Dropping the drill from the inventory
unschedules it and removes the credentials.
"""
from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from secrets import token_hex

import pytest
import yaml

from fleet.inventory import REPO, ansible_bin, ansible_env, write_inventory

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apply"))
from apply_helpers import exec_start, parse_recap  # noqa: E402  (the apply tests' helpers)

DRILL_UNIT = "restorable-drill-host2-weekly"
CALENDAR = "Sun *-*-* 06:00:00"


def playbook(inventory: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory), "--forks", "10",
                           "restorable.backup.%s" % name, *args], capture_output=True, text=True, check=False,
                          cwd=REPO, env=ansible_env(), stdin=subprocess.DEVNULL, timeout=300)


def keyscan(address: str, port: int) -> str:
    result = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(port), address],
                            capture_output=True, text=True, timeout=30, check=False)
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert lines, result.stderr
    return "\n".join(lines)


class Scenario:
    """The policy of the three hosts and where each host keeps its things."""

    def __init__(self, fleet, workdir: Path) -> None:
        self.fleet = fleet
        self.workdir = workdir
        self.sandbox = fleet["host3"].data_dir / "drill-sandbox"
        server = fleet["host1"]
        self.sftp_dir = server.data_dir / "sched-sftp"
        self.target = {
            "type": "sftp", "host": server.address, "port": server.port, "user": "root",
            "path": str(self.sftp_dir) + "/{{ inventory_hostname }}",
            "password": "{{ lookup('ansible.builtin.password', '%s/password', length=32, chars=['ascii_letters', 'digits']) }}"
                        % workdir,
            "ssh_private_key": server.client.key.private.read_text(),
            "known_hosts": keyscan(server.address, server.port),
        }

    def root(self, host: str) -> Path:
        return self.fleet[host].data_dir / "sched" / "root"

    def data(self) -> Path:
        return self.fleet["host2"].data_dir / "sched-data"

    def inventory(self, calendar: str | None = CALENDAR, with_drill: bool = True) -> Path:
        drill = {"datasets": ["files"], "drill_host": "host3", "sandbox": str(self.sandbox),
                 "sample": {"mode": "files", "files": 3}}
        if calendar:
            drill["calendar"] = calendar
        policy = {
            "agent_root": "{{ fleet_data_dir }}/sched/root",
            "agent_scheduler": "systemd",
            "restorable_targets": {"nas": self.target},
            "restorable_schedules": {"hourly": {"calendar": "hourly"}},
            "restorable_datasets": {},
        }
        path = self.fleet.write_inventory(self.workdir / "inventory.yml", extra_vars=policy)
        document = yaml.safe_load(path.read_text())
        host2 = document["all"]["children"]["fleet"]["hosts"]["host2"]
        host2["restorable_datasets"] = {"files": {
            "tier": "agent", "paths": ["{{ fleet_data_dir }}/sched-data"], "targets": ["nas"], "schedule": "hourly",
            "rpo": "1h", "rto": "10m", "retention": {"last": 3}}}
        if with_drill:
            host2["restorable_drills"] = {"weekly": drill}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path


def units_below(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "etc/systemd/system").glob("restorable-drill-*"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def scenario(ssh_fleet, tmp_path_factory) -> Scenario:
    made = Scenario(ssh_fleet, tmp_path_factory.mktemp("drill-schedule"))
    data = made.data()
    data.mkdir(parents=True, exist_ok=True)
    for index in range(6):
        (data / ("file-%d.txt" % index)).write_text("host2 %d\n" % index * 50)
    yield made
    for host in ("host1", "host2", "host3"):
        shutil.rmtree(ssh_fleet[host].data_dir / "sched", ignore_errors=True)
    shutil.rmtree(made.sftp_dir, ignore_errors=True)
    shutil.rmtree(made.sandbox, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)


def test_apply_schedules_the_drill_on_the_drill_host_only(scenario: Scenario) -> None:
    inventory = scenario.inventory()
    for name in ("apply", "backup"):
        run = playbook(inventory, name)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    b_root = scenario.root("host3")
    assert units_below(b_root) == [DRILL_UNIT + ".service", DRILL_UNIT + ".timer"]
    assert units_below(scenario.root("host1")) == [] and units_below(scenario.root("host2")) == []
    timer = (b_root / "etc/systemd/system" / (DRILL_UNIT + ".timer")).read_text().splitlines()
    assert "OnCalendar=%s" % CALENDAR in timer and "Persistent=true" in timer
    config = b_root / "etc/restorable/drills/host2-weekly.json"
    assert mode(config) == 0o600
    secrets = sorted((b_root / "etc/restorable/secrets/drills").iterdir())
    assert [p.name for p in secrets] == ["host2-nas.key", "host2-nas.known_hosts", "host2-nas.password"]
    assert all(mode(p) == 0o600 for p in secrets)
    assert (b_root / "etc/restorable/secrets/drills/host2-nas.key").read_text() == scenario.target["ssh_private_key"]
    text = config.read_text()
    password = (scenario.workdir / "password").read_text().strip()
    assert password not in text and "PRIVATE KEY" not in text, "secrets are in files, never in the configuration"
    assert str(scenario.root("host2")) not in text.replace(str(scenario.root("host2") / "var/lib"), ""), \
        "the drill host's configuration must not point into the source host's files"
    # The runtime of the drill job is installed on the drill host.
    assert (b_root / "usr/local/lib/restorable/restorable_agent/runtime/drill_cli.py").is_file()

    again = playbook(inventory, "apply")
    assert again.returncode == 0, again.stdout[-4000:]
    assert {host: counts["changed"] for host, counts in parse_recap(again.stdout).items()} == {
        "host1": 0, "host2": 0, "host3": 0}, again.stdout[-3000:]

    before = {p: p.read_bytes() for p in (b_root / "etc").rglob("*") if p.is_file()}
    checked = playbook(scenario.inventory(calendar="Sat *-*-* 05:00:00"), "apply", "--check")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert parse_recap(checked.stdout)["host3"]["changed"] > 0, "check mode reports the new calendar"
    assert {p: p.read_bytes() for p in (b_root / "etc").rglob("*") if p.is_file()} == before, "check mode wrote"


def test_the_timer_command_drills_host2_on_host3_without_host2_files(scenario: Scenario) -> None:
    b_root = scenario.root("host3")
    command = exec_start(b_root / "etc/systemd/system" / (DRILL_UNIT + ".service"))
    a_secrets = scenario.root("host2") / "etc/restorable/secrets"
    hidden = a_secrets.with_name("secrets.away")
    a_secrets.rename(hidden)  # host3 must not need anything host2 keeps
    try:
        run = scenario.fleet["host3"].run(command, check=False, timeout=300)
    finally:
        hidden.rename(a_secrets)
    assert run.returncode == 0, run.stdout + run.stderr
    evidence = b_root / "var/lib/restorable/drills"
    records = [json.loads(line) for line in (evidence / "ledger.jsonl").read_text().splitlines()]
    assert len(records) == 1
    (record,) = records
    assert record["result"] == "passed", record
    assert (record["source_host"], record["drill_host"], record["drill"]) == ("host2", "host3", "weekly")
    assert record["restore_path"].startswith(str(scenario.sandbox) + "/")
    assert record["sample"]["restored_files"] == 4  # 3 sampled files and the canary
    layers = {l["name"]: l["status"] for l in record["layers"]}
    assert layers["integrity"] == layers["content"] == layers["restore"] == "ok", layers
    # The backup's status (with its canary token) lives on host2 only: host3 checks that the
    # restored canary is host2's, of this dataset, written as the point was taken.
    freshness = next(l for l in record["layers"] if l["name"] == "freshness")
    assert freshness["status"] == "ok" and "token recorded only on the source host" in freshness["message"], freshness
    cases = list(ET.parse(evidence / "junit.xml").getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == ["files on host2"] and not list(cases[0].iter("failure"))
    assert "host2" in (evidence / "report.html").read_text()
    assert (evidence / "report.md").is_file()
    assert not scenario.sandbox.exists() or not any(scenario.sandbox.iterdir()), "the restore is removed again"
    # node_exporter's textfile of the drill, in the drill host's metrics directory (docs/monitoring.md)
    metrics = (b_root / "var/lib/restorable/metrics/restorable_drill_host2-weekly.prom").read_text()
    labels = 'host="host3",source_host="host2",dataset="files",drill="weekly",tier="agent"'
    assert 'restorable_drill_last_result{%s,result="passed"} 1\n' % labels in metrics
    assert "restorable_drill_last_pass_timestamp_seconds{%s} " % labels in metrics


def test_a_failing_drill_exits_non_zero_and_is_recorded(scenario: Scenario) -> None:
    b_root = scenario.root("host3")
    password = b_root / "etc/restorable/secrets/drills/host2-nas.password"
    original = password.read_text()
    wrong = "not-the-password-" + token_hex(8)
    password.write_text(wrong + "\n")
    try:
        run = scenario.fleet["host3"].run(exec_start(b_root / "etc/systemd/system" / (DRILL_UNIT + ".service")),
                                          check=False, timeout=300)
    finally:
        password.write_text(original)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 of 1 dataset drill(s) of host2-weekly failed" in run.stderr
    last = json.loads((b_root / "var/lib/restorable/drills/ledger.jsonl").read_text().splitlines()[-1])
    assert last["result"] == "failed"
    assert wrong not in json.dumps(last) and wrong not in run.stdout + run.stderr
    junit = ET.parse(b_root / "var/lib/restorable/drills/junit.xml").getroot()
    assert len(list(junit.iter("failure"))) >= 1
    # The drill host's status answers with the newest result of the drill.
    query = subprocess.run([str(ansible_bin("ansible")), "-i", str(scenario.inventory()), "host3", "-m",
                            "restorable.backup.status_info", "-a", "root=%s" % b_root, "-o"],
                           capture_output=True, text=True, check=False, cwd=REPO, env=ansible_env(), timeout=120)
    assert query.returncode == 0, query.stdout + query.stderr
    (drill,) = json.loads(query.stdout.split("=>", 1)[1])["drills"]
    assert (drill["source_host"], drill["drill"], drill["result"]) == ("host2", "weekly", "failed")
    assert drill["failed_layers"] and wrong not in query.stdout


def test_dropping_the_drill_unschedules_it_and_removes_the_credentials(scenario: Scenario) -> None:
    run = playbook(scenario.inventory(with_drill=False), "apply")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    b_root = scenario.root("host3")
    assert units_below(b_root) == []
    assert not (b_root / "etc/restorable/drills/host2-weekly.json").exists()
    assert list((b_root / "etc/restorable/secrets/drills").iterdir()) == []
    # The evidence stays.
    assert (b_root / "var/lib/restorable/drills/ledger.jsonl").is_file()


def test_cross_host_drill_from_s3_on_demand_and_scheduled(moto_server, tmp_path: Path) -> None:
    """Two inventory hosts on this machine (own roots): src backs up to its prefix of an S3 bucket,
    drillhost restores it with copies of src's keys, from the playbook and from its timer's command."""
    host_root = str(tmp_path / "hosts") + "/{{ inventory_hostname }}"
    sandbox = tmp_path / "sandbox"
    common = {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "agent_root": host_root + "/root", "agent_scheduler": "cron",
        "restorable_targets": {"cloud": {
            "type": "s3", "endpoint": moto_server.endpoint, "bucket": "drill-cross-host", "prefix": "fleet",
            "region": moto_server.region, "access_key_id": moto_server.access_key,
            "secret_access_key": moto_server.secret_key, "password": "s3-drill-" + token_hex(8)}},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
        "restorable_datasets": {},
    }
    dataset = {"tier": "agent", "paths": [host_root + "/data"], "targets": ["cloud"], "schedule": "hourly",
               "rpo": "1h", "retention": {"last": 3}}
    drill = {"datasets": ["app"], "drill_host": "drillhost", "calendar": "*-*-* 04:00:00", "sandbox": str(sandbox)}
    hosts = {"src": {"restorable_datasets": {"app": dataset}, "restorable_drills": {"nightly": drill}}, "drillhost": {}}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"vars": common, "hosts": hosts}}))
    data = tmp_path / "hosts/src/data"
    data.mkdir(parents=True)
    for index in range(4):
        (data / ("row-%d.csv" % index)).write_text("%d,src\n" % index * 20)
    for name in ("apply", "backup"):
        run = playbook(inventory, name)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    b_root = tmp_path / "hosts/drillhost/root"
    env_file = b_root / "etc/restorable/secrets/drills/src-cloud.env"
    assert mode(env_file) == 0o600 and moto_server.secret_key in env_file.read_text()
    cron = (b_root / "etc/cron.d/restorable-drill-src-nightly").read_text()
    assert not (tmp_path / "hosts/src/root/etc/cron.d/restorable-drill-src-nightly").exists()

    evidence = tmp_path / "evidence"
    run = playbook(inventory, "drill", "-e", "drill_evidence_dir=%s" % evidence)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    (on_demand,) = [json.loads(line) for line in (evidence / "ledger.jsonl").read_text().splitlines()]
    assert (on_demand["result"], on_demand["source_host"], on_demand["drill_host"]) == ("passed", "src", "drillhost")

    # The cron line's command, exactly as cron's /bin/sh runs it.
    line = [l for l in cron.splitlines() if l.startswith("0 4 * * *")][0]
    command = line.split(" root ", 1)[1].replace("\\%", "%")
    scheduled = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=300, check=False)
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    (record,) = [json.loads(l) for l in (b_root / "var/lib/restorable/drills/ledger.jsonl").read_text().splitlines()]
    assert (record["result"], record["drill_host"]) == ("passed", "drillhost")
    assert record["recovery_point"]["id"] == on_demand["recovery_point"]["id"], "both paths restore the same point"
    assert {l["name"]: l["status"] for l in record["layers"]}["integrity"] == "ok"


def test_systemd_runs_the_drill_service_on_a_real_systemd_host(systemd_host, tmp_path: Path) -> None:
    """A host that drills its own dataset (no drill_host) under real systemd: the timer is enabled
    and active after apply, and the service systemd starts drills with the backup's status
    (freshness checked against the canary token the backup recorded)."""
    systemd_host.run("rm -rf /srv/drilldata /var/lib/restorable/drills && mkdir -p /srv/drilldata && "
                     "for i in 1 2 3; do echo line $i > /srv/drilldata/f$i.txt; done")
    policy = {
        "agent_root": "/",
        "restorable_targets": {"disk": {"type": "local", "path": "/srv/drill-repo",
                                        "password": "systemd-drill-" + token_hex(8)}},
        "restorable_schedules": {"daily": {"calendar": "*-*-* 03:00:00"}},
        "restorable_datasets": {"srvdata": {"tier": "agent", "paths": ["/srv/drilldata"], "targets": ["disk"],
                                            "schedule": "daily", "rpo": "26h", "retention": {"last": 3}}},
        "restorable_drills": {"selfcheck": {"datasets": ["srvdata"], "calendar": "*-*-* 05:00:00"}},
    }
    inventory = write_inventory(tmp_path / "inventory.yml", [systemd_host], extra_vars=policy)
    for name in ("apply", "backup"):
        run = playbook(inventory, name)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    unit = "restorable-drill-%s-selfcheck" % systemd_host.name
    for query in ("is-enabled", "is-active"):
        assert systemd_host.run(["systemctl", query, unit + ".timer"], check=False).returncode == 0, query
    verify = systemd_host.run(["systemd-analyze", "verify", "/etc/systemd/system/%s.service" % unit,
                               "/etc/systemd/system/%s.timer" % unit], check=False)
    assert verify.returncode == 0, verify.stderr
    started = systemd_host.run(["systemctl", "start", "--wait", unit + ".service"], check=False, timeout=300)
    assert started.returncode == 0, started.stderr + systemd_host.run(["journalctl", "-u", unit], check=False).stdout
    ledger = systemd_host.run(["cat", "/var/lib/restorable/drills/ledger.jsonl"]).stdout
    (record,) = [json.loads(line) for line in ledger.splitlines()]
    assert record["result"] == "passed", record
    assert {l["name"]: l["status"] for l in record["layers"]}["freshness"] == "ok"
    assert systemd_host.run(["stat", "-c", "%a", "/etc/restorable/drills/%s-selfcheck.json" % systemd_host.name]).stdout.strip() == "600"
