# -*- coding: utf-8 -*-
"""Application checks of drills: which streams belong to a run, and the commands, SQL and
verdicts of the PostgreSQL and MariaDB scratch servers (the servers themselves run in the
system tests)."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency.postgresql import stream_name
from ansible_collections.restorable.backup.plugins.module_utils.drill.application import (
    CHECKS, SOCKET_PATH_MAX, MariaDBApplicationCheck, PostgreSQLApplicationCheck, check_settings,
    check_table_problems, check_table_statements, database_of_stream, first_field, globals_for_scratch,
    truthy, version_key)
from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import parse_time
from ansible_collections.restorable.backup.plugins.module_utils.tiers.agent.streams import stream_of, streams_of_run


def snap(ident: str, when: str, stream: str | None = None) -> dict:
    tags = ["dataset:db"] + (["stream:%s" % stream] if stream else [])
    return {"id": ident, "time": when, "tags": tags}


RUNS = [
    snap("files1", "2026-11-24T01:00:00Z"),
    snap("glob1", "2026-11-24T01:00:05Z", "postgresql/globals.sql"),
    snap("app1", "2026-11-24T01:00:06Z", "postgresql/app.dump"),
    snap("files2", "2026-11-24T02:00:00Z"),
    snap("glob2", "2026-11-24T02:00:05Z", "postgresql/globals.sql"),
    snap("app2", "2026-11-24T02:00:07.5Z", "postgresql/app.dump"),
    snap("app2b", "2026-11-24T02:00:09Z", "postgresql/app.dump"),
]


def test_streams_belong_to_the_run_of_their_file_snapshot():
    assert streams_of_run(RUNS, parse_time("2026-11-24T01:00:00Z")) == {
        "postgresql/globals.sql": "glob1", "postgresql/app.dump": "app1"}
    # The newest run: no later file snapshot bounds it; the first stream of each name counts.
    assert streams_of_run(RUNS, parse_time("2026-11-24T02:00:00Z")) == {
        "postgresql/globals.sql": "glob2", "postgresql/app.dump": "app2"}
    # A run that stored no stream (a failed dump) finds none, not the next run's.
    assert streams_of_run(RUNS[:1] + RUNS[3:], parse_time("2026-11-24T01:00:00Z")) == {}


def test_stream_of_reads_the_stream_tag():
    assert stream_of(snap("x", "2026-11-24T01:00:00Z", "mariadb/backup.xbstream")) == "mariadb/backup.xbstream"
    assert stream_of(snap("x", "2026-11-24T01:00:00Z")) is None


@pytest.mark.parametrize("database", ["app", "with/slash", "..", "."])
def test_database_of_stream_inverts_the_profile_stream_name(database):
    assert database_of_stream(stream_name(database)) == database


def test_database_of_stream_ignores_other_streams():
    assert database_of_stream("postgresql/globals.sql") is None
    assert database_of_stream("postgresql/base.tar") is None


def test_globals_drop_only_the_scratch_superuser_creation():
    text = "CREATE ROLE backup;\nALTER ROLE backup WITH LOGIN;\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\n"
    assert globals_for_scratch(text) == ("CREATE ROLE backup;\nALTER ROLE backup WITH LOGIN;\n"
                                         "ALTER ROLE postgres WITH SUPERUSER;\n")


@pytest.mark.parametrize("value,expected", [
    ("t", True), ("true", True), ("1", True), ("42", True), ("2.5", True), ("yes", True),
    ("f", False), ("0", False), ("", False), (None, False), ("NULL", False), ("no", False), ("0.0", False)])
def test_truthy_first_columns(value, expected):
    assert truthy(value) is expected


def test_first_field_of_the_first_row():
    assert first_field("t\0x\nf\0y\n", "\0") == "t"
    assert first_field("1\tfoo\n", "\t") == "1"
    assert first_field("", "\t") is None


def test_check_table_statements_quote_and_batch():
    statements = check_table_statements([("app", "seed"), ("we`ird", "t 1"), ("app", "z")], batch=2)
    assert statements == ["CHECK TABLE `app`.`seed`, `we``ird`.`t 1`;", "CHECK TABLE `app`.`z`;"]
    assert check_table_statements([]) == []


def test_check_table_problems_from_batch_output():
    output = ("app.seed\tcheck\tstatus\tOK\n"
              "app.broken\tcheck\terror\tCorrupt\n"
              "app.broken\tcheck\tstatus\tOperation failed\n"
              "app.mem\tcheck\tnote\tThe storage engine for the table doesn't support check\n"
              "app.old\tcheck\tstatus\tTable is already up to date\n")
    assert check_table_problems(output) == ["app.broken: Corrupt", "app.broken: Operation failed"]


def test_check_settings_never_carry_a_password():
    profile = {"type": "postgresql", "postgresql": {"mode": "dump", "password": "s3cret", "user": "backup",
                                                    "databases": ["app"], "checks": ["select true"]}}
    assert check_settings(profile, "postgresql") == {"mode": "dump", "databases": ["app"], "checks": ["select true"]}
    assert check_settings({"type": "mariadb"}, "mariadb") == {}


def test_version_key_orders_installed_postgresql_versions():
    paths = ["/usr/lib/postgresql/9.6/bin/postgres", "/usr/lib/postgresql/15/bin/postgres",
             "/usr/lib/postgresql/13/bin/postgres"]
    assert max(paths, key=version_key) == "/usr/lib/postgresql/15/bin/postgres"


def pg_check(scratch: str = "/sandbox/run-1/.restorable-application", **settings) -> PostgreSQLApplicationCheck:
    check = PostgreSQLApplicationCheck(settings, scratch, timeout=30, bindir="/pg/bin")
    check.as_root = True
    return check


def test_postgresql_commands():
    check = pg_check(mode="dump")
    scratch = check.scratch
    assert check.run_as() == ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    assert check.initdb_argv() == ["/pg/bin/initdb", "-D", scratch + "/data", "-U", "postgres", "--auth=trust",
                                   "-E", "UTF8", "--locale=C", "--no-sync"]
    connection = ["-h", scratch + "/run", "-p", str(check.port), "-U", "postgres"]
    assert check.restore_argv("app") == ["/pg/bin/pg_restore", "--exit-on-error", "-d", "app"] + connection
    assert check.amcheck_argv() == ["/pg/bin/pg_amcheck", "--all", "--install-missing"] + connection
    assert check.psql("app") == ["/pg/bin/psql", "-X", "-q", "-A", "-t", "-z", "-v", "ON_ERROR_STOP=1"] + \
        connection + ["-d", "app"]
    check.as_root = False
    assert check.run_as() == []


def test_postgresql_server_listens_on_its_socket_only_and_never_archives():
    check = pg_check()
    argv = check.server_argv()
    assert argv[:3] == ["/pg/bin/postgres", "-D", check.scratch + "/data"]
    settings = dict(argv[i + 1].split("=", 1) for i in range(3, len(argv), 2))
    assert all(argv[i] == "-c" for i in range(3, len(argv), 2))
    assert settings["listen_addresses"] == "" and settings["archive_mode"] == "off"
    assert settings["unix_socket_directories"] == check.scratch + "/run"
    assert settings["port"] == str(check.port)
    # Its own configuration: a restored postgresql.conf (archive_command, ports) never applies.
    assert settings["config_file"] == check.scratch + "/postgresql.conf"
    assert settings["hba_file"] == check.scratch + "/pg_hba.conf"
    assert check.stop_signal == signal.SIGQUIT


def test_postgresql_checks_run_in_the_profiles_first_database():
    assert pg_check(databases=["shop", "app"]).check_database(["app", "postgres", "shop"]) == "shop"
    assert pg_check().check_database(["postgres", "app"]) == "app"
    assert pg_check().check_database(["postgres"]) == "postgres"


def test_mariadb_commands():
    check = MariaDBApplicationCheck({"checks": ["select 1"]}, "/sandbox/r/.restorable-application", timeout=30)
    check.as_root = True
    scratch = check.scratch
    assert check.extract_argv() == ["mbstream", "-x", "-C", scratch + "/data"]
    assert check.prepare_argv() == ["mariabackup", "--no-defaults", "--prepare", "--target-dir=%s/data" % scratch]
    argv = check.server_argv()
    assert argv[:2] == ["mariadbd", "--no-defaults"]
    assert {"--skip-networking", "--skip-grant-tables", "--skip-slave-start", "--skip-log-bin"} <= set(argv)
    assert "--socket=%s/run/mysqld.sock" % scratch in argv and "--datadir=%s/data" % scratch in argv
    assert not any(arg.startswith(("--port", "--bind-address")) for arg in argv)
    assert check.client()[:3] == ["mariadb", "--no-defaults", "--socket=%s/run/mysqld.sock" % scratch]
    assert check.run_as()[:2] == ["setpriv", "--reuid=mysql"]
    assert check.stop_signal == signal.SIGKILL


def test_run_queries_report_each_result_and_name_the_false_ones():
    check = MariaDBApplicationCheck({"checks": ["q1", "q2", "q3", "q4"]}, "/s")
    answers = {"q1": "1", "q2": "0", "q3": "", "q4": None}
    problems = check.run_queries(answers.get)
    assert problems == ["check query 'q2' returned '0'", "check query 'q3' returned NULL",
                        "check query 'q4' returned no row"]
    assert [item["ok"] for item in check.details["checks"]] == [True, False, False, False]


def test_a_socket_too_deep_for_sun_path_moves_to_a_private_directory(tmp_path):
    deep = tmp_path / ("d" * (SOCKET_PATH_MAX - len(str(tmp_path)))) / ".restorable-application"
    check = MariaDBApplicationCheck({}, str(deep))
    check.as_root = False
    check.prepare_scratch()
    try:
        assert not check.run_dir.startswith(str(deep))
        assert oct(os.stat(check.run_dir).st_mode & 0o777) == oct(0o700)
    finally:
        os.rmdir(check.run_dir)
    short = tempfile.mkdtemp(prefix="r", dir="/tmp")
    try:
        shallow = MariaDBApplicationCheck({}, os.path.join(short, ".restorable-application"))
        shallow.as_root = False
        shallow.prepare_scratch()
        assert shallow.run_dir == os.path.join(short, ".restorable-application", "run")
    finally:
        shutil.rmtree(short)


def test_the_checks_by_profile_type():
    assert CHECKS == {"postgresql": PostgreSQLApplicationCheck, "mariadb": MariaDBApplicationCheck}
