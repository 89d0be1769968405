# -*- coding: utf-8 -*-
"""The application layer of drills against real PostgreSQL 15 and MariaDB backups taken by the
real runner: the restored backup starts in a scratch server in the sandbox, passes the built-in
integrity check and the profile's SQL checks, and the server is gone afterwards. Injected
faults: a check query that is false, a data directory copied without quiescing (WAL left out),
a mariabackup stream cut in half."""
from __future__ import annotations

import json
import os

import yaml

# The session fixtures are used by name.
from app_fixtures import mariadb_drill_backups, pg_drill_backups  # noqa: F401  pylint: disable=unused-import
from app_fixtures import rmtree_quiet, server_processes, shared_tmpdir
from test_drill_playbook import playbook

PLAYBOOK_PG_PASSWORD = "drill-playbook-pg-secret-4f1c0e"

APPLICATION = ["integrity", "content", "application"]


def layer(record: dict, name: str) -> dict:
    return next(item for item in record["layers"] if item["name"] == name)


def drill(source, kind: str, settings: dict, **overrides) -> dict:
    """One drill of source with the application layer; its sandbox must leave no server behind."""
    sandbox_root = shared_tmpdir("restorable-drill-app-")
    sandbox = sandbox_root / "sandbox"
    try:
        record = source.drill(sandbox, checks=APPLICATION, rto="10m", application={"type": kind, kind: settings},
                              **overrides)
        assert server_processes(sandbox) == [], "a scratch server survived the drill"
        pid = layer(record, "application")["details"].get("server_pid")
        assert pid is None or not os.path.exists("/proc/%d" % pid), "the scratch server %d still runs" % pid
        assert not sandbox.exists(), "the drill left its sandbox behind"
        return record
    finally:
        rmtree_quiet(sandbox_root)


def test_pg_dump_under_load_drills_ok_with_checks(pg_drill_backups):
    source = pg_drill_backups.sources["dump"]
    checks = ["select count(*) = 2000 from seed", "select count(*) > 0 from rows_under_load",
              "select count(*) = max(n) and min(n) = 1 from rows_under_load"]  # gap-free: one snapshot
    record = drill(source, "postgresql", {"mode": "dump", "checks": checks})
    app = layer(record, "application")
    assert record["result"] == "passed", record["reason"]
    assert app["status"] == "ok", app
    details = app["details"]
    assert {"postgres", "app"} <= set(details["databases"])
    assert details["checks_database"] == "app"
    assert [(c["query"], c["result"], c["ok"]) for c in details["checks"]] == [(q, "t", True) for q in checks]
    assert details["integrity_check"] == "pg_amcheck --all" and details["stopped"] is True
    assert 0 < details["start_seconds"] < app["seconds"]
    assert set(details["streams"]) >= {"postgresql/globals.sql", "postgresql/app.dump", "postgresql/postgres.dump"}
    # RTO is the restore plus the application's start and checks.
    restore = layer(record, "restore")["seconds"]
    assert abs(record["rto"]["seconds"] - (restore + app["seconds"])) < 0.01


def test_pg_failing_check_query_fails_the_application_layer(pg_drill_backups):
    source = pg_drill_backups.sources["dump"]
    failing = "select count(*) > 1000000 from seed"
    record = drill(source, "postgresql", {"mode": "dump", "databases": ["app"],
                                          "checks": ["select true", failing]})
    app = layer(record, "application")
    assert record["result"] == "failed"
    assert app["status"] == "failed" and failing in app["message"], app
    assert [c["ok"] for c in app["details"]["checks"]] == [True, False]


def test_pg_base_backup_reaches_consistency_and_passes(pg_drill_backups):
    source = pg_drill_backups.sources["basebackup"]
    record = drill(source, "postgresql", {"mode": "basebackup", "checks": ["select count(*) = 2000 from seed"],
                                          "databases": ["app"]})
    app = layer(record, "application")
    assert app["status"] == "ok", app
    assert "app" in app["details"]["databases"] and app["details"]["checks"][0]["ok"] is True


def test_pg_crash_copy_without_wal_will_not_start(pg_drill_backups):
    """The issue's injected failure: a data directory copied as files under load, pg_wal omitted."""
    source = pg_drill_backups.sources["crash"]
    record = drill(source, "postgresql", {"mode": "backup_api", "checks": ["select true"]})
    app = layer(record, "application")
    assert layer(record, "content")["status"] == "ok"  # the files came back intact ...
    assert app["status"] == "failed", app  # ... but they are not a database that starts
    assert "did not start" in app["message"] and "server log:" in app["message"], app
    assert "pg_wal" in app["message"] or "checkpoint" in app["message"], app


def test_mariabackup_stream_drills_ok_with_check_table(mariadb_drill_backups):
    source = mariadb_drill_backups.sources["good"]
    record = drill(source, "mariadb", {"mode": "mariabackup", "checks": [
        "select count(*) = 2000 from app.seed", "select count(*) > 0 from app.rows_under_load"]})
    app = layer(record, "application")
    assert record["result"] == "passed", record["reason"]
    assert app["status"] == "ok", app
    details = app["details"]
    assert details["databases"] == ["app"] and details["tables_checked"] == 2
    assert details["integrity_check"] == "CHECK TABLE"
    assert [c["result"] for c in details["checks"]] == ["1", "1"]


def test_mariadb_failing_check_query_fails(mariadb_drill_backups):
    source = mariadb_drill_backups.sources["good"]
    failing = "select max(id) from app.seed where id < 0"
    record = drill(source, "mariadb", {"checks": [failing]})
    app = layer(record, "application")
    assert app["status"] == "failed" and failing in app["message"] and "NULL" in app["message"], app


def test_mariadb_truncated_stream_fails(mariadb_drill_backups):
    source = mariadb_drill_backups.sources["truncated"]
    record = drill(source, "mariadb", {"checks": ["select 1"]})
    app = layer(record, "application")
    assert record["result"] == "failed"
    assert app["status"] == "failed", app
    assert "streams" in app["details"] and app["details"].get("checks") is None, app


def test_point_without_streams_fails_clearly(pg_drill_backups):
    """A dump profile drilled against a run that stored no stream (the crash-copy dataset)."""
    source = pg_drill_backups.sources["crash"]
    record = drill(source, "postgresql", {"mode": "dump"})
    app = layer(record, "application")
    assert app["status"] == "failed" and "no postgresql stream" in app["message"], app


def test_drill_playbook_checks_the_postgresql_backup_without_its_password(pg_drill_backups):
    """apply, backup and drill playbooks: the drill gets mode, databases and checks, never the password."""
    root = shared_tmpdir("restorable-drill-pgplay-")
    try:
        cluster = pg_drill_backups.cluster
        (root / "data").mkdir()
        (root / "data" / "notes.txt").write_text("notes\n")
        host_vars = {
            "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "agent_root": str(root / "host"), "vault_pg_password": PLAYBOOK_PG_PASSWORD,
            "restorable_targets": {"repo": {"type": "local", "path": str(root / "repository"),
                                            "password": "{{ lookup('ansible.builtin.password', '%s/restic', length=32, "
                                                        "chars=['ascii_letters', 'digits']) }}" % root}},
            "restorable_schedules": {"hourly": {"calendar": "hourly"}},
            "restorable_compliance": {"plaintext_secrets": "error", "rule_3_2_1_1_0": "ignore"},
            "restorable_consistency_profiles": {"pg": {"type": "postgresql", "on_failure": "fail", "postgresql": {
                "mode": "dump", "host": str(cluster.socket_dir), "port": cluster.port, "user": "postgres",
                "password": "{{ vault_pg_password }}", "databases": ["app"],
                "checks": ["select count(*) = 2000 from seed"]}}},
            "restorable_datasets": {"db": {"tier": "agent", "paths": [str(root / "data")], "targets": ["repo"],
                                           "schedule": "hourly", "consistency": "pg", "retention": {"last": 3},
                                           "rto": "15m", "rpo": "1h"}},
            "restorable_drills": {"db-check": {"datasets": ["db"], "sandbox": str(root / "sandbox"),
                                               "checks": ["integrity", "content", "application"]}},
        }
        inventory = root / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"pghost": host_vars}}}))
        evidence = root / "evidence"
        for name, args in (("apply", ()), ("backup", ()), ("drill", ("-vvv", "-e", "drill_evidence_dir=%s" % evidence))):
            run = playbook(inventory, name, *args)
            assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert PLAYBOOK_PG_PASSWORD not in run.stdout + run.stderr
        ledger = (evidence / "ledger.jsonl").read_text()
        assert PLAYBOOK_PG_PASSWORD not in ledger
        record = json.loads(ledger.splitlines()[-1])
        app = layer(record, "application")
        assert app["status"] == "ok", app
        assert app["details"]["databases"] == ["app"] and app["details"]["checks"][0]["ok"] is True
        assert server_processes(root / "sandbox") == [] and not (root / "sandbox").exists()
    finally:
        rmtree_quiet(root)
