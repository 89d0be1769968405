# -*- coding: utf-8 -*-
"""The agent tier with a PostgreSQL consistency profile, end to end through the playbooks:
apply places the database password as a private file, the backup pipes pg_dump into restic
(one snapshot per database), and the dump restores into a sandbox that passes pg_amcheck with
a gap-free prefix of the rows committed under write load."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from db_helpers import APP_DB
from fleet.inventory import ansible_bin, ansible_env
from test_postgresql_consistency import amcheck, rows_prefix

HOST = "pg-agent"
RESTIC_PASSWORD = "agent-pg-restic-password-81c2"


def _inventory(root: Path, pg_source) -> Path:
    data = root / "data"
    data.mkdir(parents=True)
    (data / "config.txt").write_text("application configuration\n")
    inventory = {"all": {"hosts": {HOST: None}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "agent_root": str(root / "hostroot"),
        "vault_restic_password": RESTIC_PASSWORD, "vault_pg_password": pg_source.password,
        "restorable_targets": {"disk": {"type": "local", "path": str(root / "repo"),
                                        "password": "{{ vault_restic_password }}"}},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
        "restorable_consistency_profiles": {"pg": {
            "type": "postgresql", "on_failure": "fail",
            "postgresql": {"mode": "dump", "host": "127.0.0.1", "port": pg_source.port, "user": pg_source.role,
                           "password": "{{ vault_pg_password }}"}}},
        "restorable_datasets": {"db": {"tier": "agent", "paths": [str(data)], "targets": ["disk"],
                                       "schedule": "hourly", "consistency": "pg", "retention": {"last": 3}}},
        "restorable_compliance": {"rule_3_2_1_1_0": "ignore", "plaintext_secrets": "error"},
    }}}
    path = root / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def _play(playbook: str, inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory), playbook, "-v"],
                          env=ansible_env(), capture_output=True, text=True, timeout=600, check=False)


def test_apply_and_backup_stream_pg_dump_into_restic(pg_source, pg_write_load, pg_sandbox, tmp_path):
    root = tmp_path / "agent"
    inventory = _inventory(root, pg_source)
    applied = _play("restorable.backup.apply", inventory)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    secret = root / "hostroot/etc/restorable/secrets/consistency-pg.password"
    assert secret.read_text().strip() == pg_source.password
    assert oct(secret.stat().st_mode & 0o777) == oct(0o600)
    config = json.loads((root / "hostroot/etc/restorable/db.json").read_text())
    assert pg_source.password not in json.dumps(config)

    load = pg_write_load("agent_rows")
    load.wait_for(200)
    committed_before = load.committed
    backed_up = _play("restorable.backup.backup", inventory)
    committed_after = load.stop()
    output = backed_up.stdout + backed_up.stderr
    assert backed_up.returncode == 0, output
    assert pg_source.password not in output and RESTIC_PASSWORD not in output

    status = json.loads((root / "hostroot/var/lib/restorable/db.json").read_text())
    assert status["result"] == "success", status
    consistency = status["consistency"]
    assert (consistency["profile"], consistency["consistent"], consistency["reason"]) == ("postgresql", True, "")
    assert 0 < consistency["seconds"] < status["duration_seconds"]  # the dumps' window
    streams = {s["name"]: s for s in status["streams"]}
    assert {"postgresql/globals.sql", "postgresql/app.dump"} <= set(streams)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    env["RESTIC_PASSWORD"] = RESTIC_PASSWORD
    restore = pg_sandbox.new_root()
    for name in ("postgresql/globals.sql", "postgresql/app.dump"):
        target = restore / Path(name).name
        with open(target, "wb") as handle:
            dumped = subprocess.run(["restic", "-r", str(root / "repo"), "dump", streams[name]["snapshot_id"], "/" + name],
                                    env=env, stdout=handle, stderr=subprocess.PIPE, check=False)
        assert dumped.returncode == 0, dumped.stderr
        os.chmod(target, 0o644)
    sandbox = pg_sandbox()
    sandbox.run(["psql", "-X", "-q", "-f", restore / "globals.sql"])
    sandbox.run(["pg_restore", "--exit-on-error", "-C", "-d", "postgres", restore / "app.dump"])
    amcheck(sandbox)
    assert sandbox.psql("SELECT count(*) FROM seed", db=APP_DB) == "2000"
    rows = rows_prefix(sandbox, "agent_rows")
    assert committed_before <= rows <= committed_after, (committed_before, rows, committed_after)
