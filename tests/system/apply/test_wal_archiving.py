# -*- coding: utf-8 -*-
"""restorable.backup.wal_archiving on a real PostgreSQL 15 through ansible-playbook: check mode
changes nothing; the first run places the archiver's files for the cluster's OS user, sets the
archiving settings and says a restart is needed (it never restarts); a second run changes
nothing; once the operator restarted, a WAL segment reaches the local store with its checksum,
through the repository directory (0700, root's) the module let the cluster's user pass through."""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import stat
import sys
import time
from pathlib import Path

import pytest
import yaml

from apply_helpers import PlaybookRun, run_ansible
from fleet.inventory import ansible_bin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "databases"))

from db_helpers import PgCluster, chown_tree, pg_initdb, pg_start, rmtree_quiet, shared_tmpdir  # noqa: E402

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
PLAYBOOK = """
- hosts: db01
  gather_facts: false
  tasks:
    - name: Archive the WAL of the cluster
      restorable.backup.wal_archiving:
        clusters: "{{ wal_clusters }}"
        root: "{{ wal_root }}"
        python: "{{ wal_python }}"
      register: wal
    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ wal | to_json }}"
        dest: "{{ wal_result }}"
        mode: "0600"
      check_mode: false
      changed_when: false
"""


@pytest.fixture
def cluster():
    """A fresh cluster without archiving (settings on the command line would override ALTER SYSTEM)."""
    if os.geteuid() != 0:
        pytest.skip("the cluster runs as postgres: root is needed")
    root = shared_tmpdir("restorable-wal-module-")
    chown_tree(root, "postgres")
    pg_initdb(root / "data", root)
    servers = [pg_start(root, root / "data")]
    yield root, servers
    for server in servers:
        server.stop()
    rmtree_quiet(root)


def run(tmp_path: Path, clusters: list, root: Path, *args: str) -> tuple[PlaybookRun, dict]:
    result = tmp_path / ("result-%d.json" % len(list(tmp_path.glob("result-*.json"))))
    (tmp_path / "inv.yml").write_text(yaml.safe_dump({"all": {"hosts": {"db01": dict(LOCAL)}}}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({"wal_clusters": clusters, "wal_root": str(root),
                                                    "wal_python": "/usr/bin/python3", "wal_result": str(result)}))
    ran = run_ansible([ansible_bin("ansible-playbook"), "-i", tmp_path / "inv.yml", tmp_path / "play.yml",
                       "-e", "@%s" % (tmp_path / "vars.json"), *args])
    assert ran.returncode == 0, ran.describe()
    return ran, json.loads(result.read_text())


def settings_of(server: PgCluster) -> dict:
    out = server.psql("SELECT name || '=' || setting FROM pg_settings WHERE name IN "
                      "('archive_mode', 'archive_command', 'archive_timeout')")
    return dict(line.split("=", 1) for line in out.split("\n") if line)


def test_the_module_sets_up_archiving_reports_the_restart_and_a_segment_arrives(cluster, tmp_path):
    root, servers = cluster
    host_root = root / "host"
    repository = root / "repositories" / "db01"
    repository.mkdir(parents=True, mode=0o700)  # as restic creates it
    store = repository / "wal" / "db01" / "pgmain"
    env_file = host_root / "etc/restorable/wal/pgmain.env"
    entry = {"dataset": "pgmain", "data_directory": str(root / "data"), "port": servers[0].port, "archive_timeout": 60,
             "archiver_config": str(host_root / "etc/restorable/wal/pgmain.json"),
             "store": {"type": "local", "path": str(store)},
             "files": [{"path": str(env_file), "content": "UNUSED_SECRET=wal-module-secret-4d1f\n"}]}

    check, result = run(tmp_path, [entry], host_root, "--check")
    assert result["changed"] and not store.exists() and not env_file.exists()
    assert settings_of(servers[0])["archive_mode"] == "off"
    assert "wal-module-secret-4d1f" not in check.stdout

    first, result = run(tmp_path, [entry], host_root, "--diff")
    assert result["changed"] and result["restart_needed"] == [str(root / "data")]
    assert "wal-module-secret-4d1f" not in first.stdout + first.stderr
    postgres = pwd.getpwnam("postgres")
    assert (env_file.stat().st_uid, stat.S_IMODE(env_file.stat().st_mode)) == (postgres.pw_uid, 0o600)
    assert (store.stat().st_uid, stat.S_IMODE(store.stat().st_mode)) == (postgres.pw_uid, 0o700)
    assert stat.S_IMODE(repository.stat().st_mode) == 0o701  # passable, not listable by others
    config = json.loads(Path(entry["archiver_config"]).read_text())
    assert config["dataset"] == "pgmain" and config["store"] == entry["store"]
    live = settings_of(servers[0])
    assert live["archive_timeout"] == "60" and live["archive_mode"] == "off"  # reloaded, not restarted

    again, result = run(tmp_path, [entry], host_root)
    assert not result["changed"], result["actions"]
    assert result["restart_needed"] == [str(root / "data")]  # still pending
    assert "changed=0" in again.stdout

    servers[0].stop()  # the operator's restart
    servers.append(pg_start(root, root / "data"))
    after = servers[-1]
    live = settings_of(after)
    assert live["archive_mode"] == "on" and "archive-wal" in live["archive_command"]
    segment = after.psql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip()
    after.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS n; SELECT pg_switch_wal();")
    deadline = time.monotonic() + 60
    while not (store / segment).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (store / segment).exists(), "segment %s was not archived: %s" % (segment, after.log_path.read_text()[-2000:])
    digest = hashlib.sha256((store / segment).read_bytes()).hexdigest()
    assert (store / (segment + ".sha256")).read_text().split()[0] == digest

    entry["port"] = after.port
    _final, result = run(tmp_path, [entry], host_root)
    assert not result["changed"] and result["restart_needed"] == []
