# -*- coding: utf-8 -*-
"""The PostgreSQL CDP source's options, the RPO it reports, the heartbeat it writes, and the
archiving settings it asks PostgreSQL for (ALTER SYSTEM, never a restart)."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.postgres_source import PostgresSource
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal import settings
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiving import (
    ArchiverStatus, assess_rpo, heartbeat_statements)

STORE = {"type": "local", "path": "/srv/repo/wal/db01/pgmain"}


def job(**options) -> JobConfig:
    wanted = {"source": {"type": "postgresql", "data_directory": "/var/lib/postgresql/15/main", "port": 5433},
              "interval_minutes": 1, "archiver_config": "/etc/restorable/wal/pgmain.json", "wal_store": STORE}
    wanted.update(options)
    return JobConfig.from_dict({"dataset": "pgmain", "tier": "cdp", "repository": {"url": "/srv/repo", "password_file": "/p"},
                                "options": wanted})


def test_options_are_read_with_their_defaults():
    source = PostgresSource(job())
    assert (source.action, source.rpo, source.port, source.user, source.database) == ("points", 300, 5433, None, None)
    assert source.store_settings == STORE and source.data_directory == "/var/lib/postgresql/15/main"
    assert PostgresSource(job(rpo="10m", action="base_backup")).rpo == 600


@pytest.mark.parametrize("options, message", [
    ({"action": "snapshot"}, r"options\.action: expected one of points, base_backup, got 'snapshot'"),
    ({"wal_store": {"type": "local"}}, r"options\.wal_store\.path is required for a local store"),
    ({"archiver_config": None}, r"options\.archiver_config is required"),
    ({"source": {"type": "postgresql"}}, r"options\.source\.data_directory is required"),
    ({"source": {"type": "postgresql", "data_directory": "/d", "socket": "/run"}}, r"options\.source: unknown option socket"),
    ({"interval_minutes": 0}, r"options\.interval_minutes: at least 1"),
    ({"replica": {}}, r"options: unknown option replica"),
])
def test_a_wrong_option_is_named(options, message):
    with pytest.raises(ConfigError, match=message):
        PostgresSource(job(**options))


def status(**values) -> ArchiverStatus:
    fields = {"now": 1000.0, "archive_mode": "on", "data_directory": "/srv/pg", "in_recovery": False, "last_archived_wal": "000000010000000000000009",
              "last_archived_time": 990.0, "archived_count": 9, "last_failed_wal": None, "last_failed_time": None,
              "failed_count": 0, "current_lsn": "0/A000100", "current_wal": "00000001000000000000000A",
              "segment_size": 16 << 20, "ready_count": 0, "oldest_ready": None}
    fields.update(values)
    return ArchiverStatus(**fields)


def test_a_healthy_archiver_puts_nothing_at_risk():
    assert assess_rpo(status(), 300) == {"archive_seconds": 10.0, "lag_seconds": 0.0, "rpo_seconds": 300,
                                         "at_risk": False, "reason": ""}


def test_failing_archiving_puts_the_rpo_at_risk_at_once():
    rpo = assess_rpo(status(last_failed_wal="00000001000000000000000A", last_failed_time=995.0, failed_count=3), 300)
    assert rpo["at_risk"] and rpo["reason"].startswith("archiving fails: 3 failure(s), the last of 00000001000000000000000A")
    recovered = assess_rpo(status(last_failed_time=980.0, failed_count=3), 300)
    assert not recovered["at_risk"], "archived again since the failure"


def test_an_old_newest_wal_or_a_long_wait_puts_it_at_risk():
    assert "more than the RPO of 300s" in assess_rpo(status(last_archived_time=600.0), 300)["reason"]
    lagging = assess_rpo(status(ready_count=12, oldest_ready=500.0), 300)
    assert lagging["lag_seconds"] == 500.0 and "12 WAL file(s) wait to be archived" in lagging["reason"]
    assert assess_rpo(status(last_archived_wal=None, last_archived_time=None), 300)["reason"] == \
        "no WAL file was archived yet"


def test_the_heartbeat_is_committed_before_the_switch():
    statements = heartbeat_statements("pg'main", switch=True)
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS restorable_heartbeat")
    assert "VALUES ('pg''main', now())" in statements[1]
    assert statements[2].startswith("SELECT json_build_object('switched_at', pg_switch_wal()")
    assert len(heartbeat_statements("pgmain", switch=False)) == 2


# -- archiving settings ----------------------------------------------------------------------------

def test_archive_timeout_follows_the_rpo_and_the_interval():
    assert settings.archive_timeout_for(300, 1) == 60
    assert settings.archive_timeout_for(600, 15) == 300
    assert settings.archive_timeout_for(None, 5) == 300
    assert settings.archive_timeout_for(30, 1) == 60, "at least a minute"


def test_the_commands_find_the_agent_by_pythonpath_and_quote_paths():
    command = settings.archive_command("/etc/restorable/wal/pg main.json", "/usr/local/lib/restorable")
    assert command == ("PYTHONPATH=/usr/local/lib/restorable python3 -S -m restorable_agent.runtime.wal_cli "
                       "archive-wal --config '/etc/restorable/wal/pg main.json' %p %f")
    assert settings.restore_command("/etc/w/100%.json", "/opt/r").endswith("--config /etc/w/100%%.json %f %p")


class FakeServer:
    """pg_settings and pg_file_settings as a dict; ALTER SYSTEM writes the file value."""

    def __init__(self, active: dict) -> None:
        self.active = dict(active)
        self.file: dict = {}
        self.statements: list = []

    def rows(self, sql):
        return [{"name": name, "setting": value, "configured": self.file.get(name),
                 "pending_restart": name in ("archive_mode", "wal_level") and self.file.get(name, value) != value}
                for name, value in sorted(self.active.items())]

    def execute(self, statements, database=None):
        self.statements += statements
        for statement in statements:
            if statement.startswith("ALTER SYSTEM SET "):
                name, value = statement[len("ALTER SYSTEM SET "):].split(" = ", 1)
                self.file[name] = value.strip("'").replace("''", "'")
                if name not in ("archive_mode", "wal_level"):
                    self.active[name] = self.file[name]
        return []


def test_archiving_is_configured_with_alter_system_and_the_restart_is_left_to_the_operator():
    server = FakeServer({"wal_level": "replica", "archive_mode": "off", "archive_command": "(disabled)",
                         "archive_library": "", "archive_timeout": "0"})
    checked = settings.configure_archiving(server, "archive it", 60, check_mode=True)
    assert checked["changed"] and checked["restart_needed"] and server.statements == []
    assert checked["changes"] == ["archive_command", "archive_mode", "archive_timeout"]
    applied = settings.configure_archiving(server, "archive it", 60)
    assert applied["changed"] and applied["restart_needed"] and applied["pending_restart"] == ["archive_mode"]
    assert "ALTER SYSTEM SET archive_command = 'archive it'" in server.statements
    assert server.statements[-1] == "SELECT pg_reload_conf()"
    assert applied["before"]["archive_mode"] == "off" and applied["after"]["archive_mode"] == "on"
    assert "restarts" in applied["message"]
    again = settings.configure_archiving(server, "archive it", 60)
    assert not again["changed"] and again["restart_needed"], "still pending until PostgreSQL restarts"
    server.active["archive_mode"] = "on"  # restarted
    assert settings.configure_archiving(server, "archive it", 60)["restart_needed"] is False
