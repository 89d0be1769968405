# -*- coding: utf-8 -*-
"""The shipped monitoring files against the real tools: promtool checks and unit-tests the alert
rules; a real prometheus-node-exporter (textfile collector) and a real Prometheus (1 s scrape and
evaluation, the shipped rules) read the metrics that real runs wrote. A backup made stale on
purpose (a real restic run of the Runner with its clock set hours back) fires the RPO alert; a
fresh one does not. The same for a failed and a passed drill."""
from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions
from ansible_collections.restorable.backup.plugins.module_utils.drill.metrics import write_drill_metrics
from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import runner_for

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "monitoring" / "prometheus" / "restorable-rules.yml"
RULES_TEST = ROOT / "monitoring" / "prometheus" / "restorable-rules.test.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "restorable-dashboard.json"
DEADLINE = 45.0  # seconds a poll may wait for Prometheus; a failure, never a measurement
RPO = 3600


def tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail("%s is not installed: apt-get install --no-install-recommends prometheus prometheus-node-exporter" % name)
    return path


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass():
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_every_dashboard_expression_is_valid_promql(tmp_path):
    """Each panel's query, its variables set to 'all', checked by promtool as a recording rule."""
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": "dashboard:panel_%d" % index, "expr": re.sub(r"\$\w+", ".*", expr)} for index, expr in enumerate(expressions)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


class Prometheus:
    def __init__(self, port: int, textfile_dir: Path) -> None:
        self.url = "http://127.0.0.1:%d" % port
        self.textfile_dir = textfile_dir

    def get(self, path: str, **params: str) -> dict:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            document = json.load(response)
        assert document["status"] == "success", document
        return document["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def alerts(self, state: str | None = None, **labels: str) -> list[dict]:
        """Active alerts (pending or firing; state picks one) whose labels include labels."""
        return [alert for alert in self.get("/api/v1/alerts")["alerts"] if state in (None, alert["state"])
                and all(alert["labels"].get(k) == v for k, v in labels.items())]

    def last_evaluation(self) -> float:
        """When the restorable rule group was last evaluated (Unix time)."""
        group = next(g for g in self.get("/api/v1/rules")["groups"] if g["name"] == "restorable")
        whole = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", group["lastEvaluation"]).group(1)
        return datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()


def stop(process: subprocess.Popen) -> None:
    """Stop a process this module started, by its PID (the conftest of another directory may own
    the name `conftest` when the whole suite runs, so its helper is not imported here)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def poll(check, what: str):
    """check() until it returns something true; fail with what after DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("after %.0f s: %s" % (DEADLINE, what))
        time.sleep(0.5)


def evaluated_after_seen(prometheus: Prometheus, expr: str) -> None:
    """Wait until expr has samples and the rules were evaluated after they were scraped."""
    seen = float(poll(lambda: prometheus.query(expr), "no sample of %s" % expr)[0]["value"][0])
    poll(lambda: prometheus.last_evaluation() > seen + 1, "the rules were not evaluated after %s was scraped" % expr)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, net):
    """node_exporter (textfile collector on a directory of its own) and Prometheus with the shipped
    rules, on free loopback ports, started once and stopped by PID."""
    root = tmp_path_factory.mktemp("monitoring")
    textfiles = root / "textfiles"
    textfiles.mkdir()
    exporter_port, prometheus_port = net.free_port(), net.free_port()
    logs = [open(root / "node-exporter.log", "wb"), open(root / "prometheus.log", "wb")]
    exporter = subprocess.Popen([tool("prometheus-node-exporter"), "--web.listen-address=127.0.0.1:%d" % exporter_port,
                                 "--collector.disable-defaults", "--collector.textfile",
                                 "--collector.textfile.directory=%s" % textfiles],
                                stdout=logs[0], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    config = root / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "node", "static_configs": [{"targets": ["127.0.0.1:%d" % exporter_port]}]}]}))
    server = subprocess.Popen([tool("prometheus"), "--config.file=%s" % config, "--web.listen-address=127.0.0.1:%d" % prometheus_port,
                               "--storage.tsdb.path=%s" % (root / "tsdb")],
                              stdout=logs[1], stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        net.wait_for_port(exporter_port, 15, exporter)
        net.wait_for_port(prometheus_port, 30, server)
        yield Prometheus(prometheus_port, textfiles)
    finally:
        stop(server)
        stop(exporter)
        for log in logs:
            log.close()


def backup(restic_local_repo, tmp_path: Path, textfiles: Path, dataset: str, hours_ago: float):
    """A real run of the Runner (a tiny local restic job) whose clock reads hours_ago in the past:
    its status and metrics say the last success ended then."""
    data = tmp_path / dataset
    data.mkdir()
    (data / "file.txt").write_text("content of %s\n" % dataset)
    config = JobConfig(dataset=dataset, repository=str(restic_local_repo.path), password_file=str(restic_local_repo.password_file),
                       paths=[str(data)], host="web01", status_dir=str(tmp_path / "status"), metrics_dir=str(textfiles),
                       rpo_seconds=RPO)
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours_ago)
    record = runner_for(config, RunOptions(ignore_window=True, ignore_load=True), now=lambda: when).run()
    assert record.result == "success", record.reason
    return record


def test_a_stale_backup_fires_the_rpo_alert_and_a_fresh_one_does_not(prometheus, restic_local_repo, tmp_path):
    backup(restic_local_repo, tmp_path, prometheus.textfile_dir, "www-stale", hours_ago=3)
    backup(restic_local_repo, tmp_path, prometheus.textfile_dir, "www-fresh", hours_ago=0)
    alert = poll(lambda: prometheus.alerts(alertname="RestorableBackupRPOBreached", dataset="www-stale", state="firing"),
                 "RestorableBackupRPOBreached did not fire for www-stale")[0]
    assert alert["labels"]["host"] == "web01" and alert["labels"]["severity"] == "critical"
    assert "www-stale" in alert["annotations"]["summary"] and float(alert["value"]) > 3 * 3600 - 60
    evaluated_after_seen(prometheus, 'restorable_backup_rpo_target_seconds{dataset="www-fresh"}')
    assert prometheus.alerts(dataset="www-fresh") == []
    tiers = prometheus.query('restorable_job_info{dataset=~"www-.*"}')
    assert {sample["metric"]["tier"] for sample in tiers} == {"agent"} and len(tiers) == 2
    assert [sample["value"][1] for sample in prometheus.query("node_textfile_scrape_error")] == ["0"]


def test_a_failed_drill_fires_and_a_passed_one_does_not(prometheus):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def record(dataset: str, result: str) -> dict:
        return {"drill": "weekly", "dataset": dataset, "tier": "agent", "source_host": "web01", "drill_host": "vault01",
                "finished": now, "result": result, "bytes": 1024, "rto": {"seconds": 3.2, "target_seconds": 900},
                "rpo": {"seconds": 60, "target_seconds": RPO}}
    records = [record("www", "failed"), record("db", "passed")]
    write_drill_metrics(str(prometheus.textfile_dir), "web01-weekly", records, records, max_age_seconds=7 * 86400)
    alert = poll(lambda: prometheus.alerts(alertname="RestorableDrillFailed", dataset="www", state="firing"),
                 "RestorableDrillFailed did not fire for www")[0]
    assert alert["labels"]["source_host"] == "web01" and alert["labels"]["drill"] == "weekly"
    # the failed one never passed: overdue too; the passed one is neither
    poll(lambda: prometheus.alerts(alertname="RestorableDrillOverdue", dataset="www", state="firing"),
         "RestorableDrillOverdue did not fire for www, which never passed")
    evaluated_after_seen(prometheus, 'restorable_drill_last_pass_timestamp_seconds{dataset="db"}')
    assert prometheus.alerts(dataset="db") == []
    rto = prometheus.query('restorable_drill_rto_seconds{dataset="db"}')
    assert [sample["value"][1] for sample in rto] == ["3.2"]
