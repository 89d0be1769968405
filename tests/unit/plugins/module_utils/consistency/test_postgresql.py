# -*- coding: utf-8 -*-
"""PostgreSQL profile: argv building, passfile, label parsing, session framing (no server needed)."""
from __future__ import annotations

import base64
import json
import os
import sys

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency import postgresql
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    QuiesceFailed, profile_from_config)
from ansible_collections.restorable.backup.plugins.module_utils.consistency.postgresql import (
    PostgreSQLProfile, check_database_name, label_fields, parse_database_list, parse_stop_line,
    passfile_line, restore_files, stream_name)
from ansible_collections.restorable.backup.plugins.module_utils.consistency.sql import SqlSession

SECRET = "pa:ss\\word-7f3e"
LABEL = ("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nCHECKPOINT LOCATION: 0/3000060\n"
         "BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-25 00:10:15 UTC\nLABEL: restorable\n"
         "START TIMELINE: 1\n")


def make(tmp_path, **settings) -> PostgreSQLProfile:
    config = {"type": "postgresql", "postgresql": {"host": "127.0.0.1", "port": 5433, "user": "backup",
                                                   "password": SECRET, **settings}}
    profile = profile_from_config(config, str(tmp_path / "staging"))
    assert isinstance(profile, PostgreSQLProfile)
    return profile


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_passfile_escapes_colon_and_backslash():
    assert passfile_line("backup", SECRET) == "*:*:*:backup:pa\\:ss\\\\word-7f3e\n"


@pytest.mark.parametrize("password", ["a\nb", "a\rb"])
def test_passfile_refuses_line_breaks(password):
    with pytest.raises(QuiesceFailed):
        passfile_line("backup", password)


@pytest.mark.parametrize("name", ["host=evil password=x", "postgresql://u:p@h/db", "", "a\0b"])
def test_database_names_that_pg_dump_would_read_as_connection_strings_are_refused(name):
    with pytest.raises(QuiesceFailed):
        check_database_name(name)


def test_database_list_is_nul_separated():
    assert parse_database_list("app\0my db\0with\nnewline\0\n") == ["app", "my db", "with\nnewline"]
    assert parse_database_list("") == []


def test_stream_names_cannot_escape_the_postgresql_folder():
    assert stream_name("app") == "postgresql/app.dump"
    assert stream_name("a/../b") == "postgresql/a%2F..%2Fb.dump"
    assert stream_name("..") == "postgresql/%2E%2E.dump"


def test_dump_streams_carry_the_password_only_in_a_private_passfile(tmp_path):
    profile = make(tmp_path, databases=["app", "second"])
    sources = profile.streams()
    assert [source.name for source in sources] == ["postgresql/globals.sql", "postgresql/app.dump",
                                                   "postgresql/second.dump"]
    assert sources[1].argv == ["pg_dump", "-Fc", "-h", "127.0.0.1", "-p", "5433", "-U", "backup", "--no-password",
                               "-d", "app"]
    assert sources[0].argv[:3] == ["pg_dumpall", "--globals-only", "--no-role-passwords"]
    passfile = sources[0].env["PGPASSFILE"]
    assert os.stat(passfile).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(passfile)).st_mode & 0o777 == 0o700
    with open(passfile, encoding="utf-8") as handle:
        assert handle.read() == passfile_line("backup", SECRET)
    for source in sources:
        assert not any(SECRET in arg or "word-7f3e" in arg for arg in source.argv)
        assert "PGPASSWORD" not in source.env
        assert SECRET not in source.describe()
    profile.cleanup()
    assert not os.path.exists(passfile)


def test_caller_environment_does_not_leak_into_clients(tmp_path, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "leaked")
    monkeypatch.setenv("PGHOST", "elsewhere")
    env = make(tmp_path, databases=["app"]).streams()[0].env
    assert "PGPASSWORD" not in env and "PGHOST" not in env


def test_basebackup_is_one_tar_on_stdout_with_fetched_wal(tmp_path):
    sources = make(tmp_path, mode="basebackup").streams()
    assert [source.name for source in sources] == ["postgresql/base.tar"]
    argv = sources[0].argv
    assert argv[:6] == ["pg_basebackup", "-D", "-", "-Ft", "-X", "fetch"]
    assert SECRET not in " ".join(argv)


def test_backup_api_mode_has_no_streams(tmp_path):
    with pytest.raises(QuiesceFailed, match="backup_api"):
        make(tmp_path, mode="backup_api").streams()


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(QuiesceFailed, match="mode"):
        make(tmp_path, mode="snapshot")


def test_peer_authentication_runs_clients_as_the_role_s_os_user(tmp_path, monkeypatch):
    monkeypatch.setattr(postgresql.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgresql.pwd, "getpwnam", lambda name: object())
    config = {"type": "postgresql", "postgresql": {"host": "/run/postgresql", "user": "postgres",
                                                   "databases": ["app"]}}
    profile = profile_from_config(config, str(tmp_path))
    sources = profile.streams()
    assert sources[1].argv[:5] == ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    assert "PGPASSFILE" not in sources[1].env
    assert profile.psql_argv()[5] == "psql"


def test_no_setpriv_with_a_password_or_without_root(tmp_path, monkeypatch):
    monkeypatch.setattr(postgresql.pwd, "getpwnam", lambda name: object())
    monkeypatch.setattr(postgresql.os, "geteuid", lambda: 0)
    assert make(tmp_path).run_as_prefix() == []
    monkeypatch.setattr(postgresql.os, "geteuid", lambda: 1000)
    config = {"type": "postgresql", "postgresql": {"user": "postgres"}}
    assert profile_from_config(config, str(tmp_path)).run_as_prefix() == []


def test_stop_line_is_decoded():
    parsed = parse_stop_line("0/3000100|000000010000000000000003|on|%s|\n" % b64(LABEL))
    assert parsed == {"stop_lsn": "0/3000100", "stop_wal_file": "000000010000000000000003", "archive_mode": "on",
                      "backup_label": LABEL, "tablespace_map": ""}
    parsed = parse_stop_line("0/5000000||off|%s|%s" % (b64(LABEL), b64("16390 /srv/ts\n")))
    assert parsed["tablespace_map"] == "16390 /srv/ts\n" and parsed["stop_wal_file"] == ""


@pytest.mark.parametrize("line", ["", "0/1", "0/1|w|on|!!notbase64|", "|w|on|%s|" % b64("x"), "0/1|%s|" % b64("x")])
def test_bad_stop_lines_are_refused(line):
    with pytest.raises(QuiesceFailed):
        parse_stop_line(line)


STOP = "00000001000000000000000D"


@pytest.mark.parametrize("last, archived", [
    ("", False),
    ("00000001000000000000000C", False),
    (STOP, True),
    ("00000001000000000000000E", True),
    ("00000002000000000000000D", True),  # a later timeline
    ("00000001000000000000000C.00000028.backup", False),  # an older backup's history file
    ("00000001000000000000000D.00000028.backup", True),  # this backup's: ready after the stop segment
    ("00000001000000000000000D.partial", False),
    ("00000001000000000000000E.partial", True),
    ("00000002.history", False),
])
def test_stop_segment_archived_from_the_archiver_s_last_file(last, archived):
    assert postgresql.wal_archived(last, STOP) is archived


def test_no_stop_segment_name_is_never_archived():
    assert postgresql.wal_archived(STOP, "") is False


def test_label_fields_and_restore_files():
    assert label_fields(LABEL)["LABEL"] == "restorable"
    assert label_fields(LABEL)["START WAL LOCATION"].startswith("0/3000028")
    record = json.dumps({"backup_label": LABEL, "tablespace_map": "", "stop_lsn": "0/1"})
    assert restore_files(record) == {"backup_label": LABEL}
    record = json.dumps({"backup_label": LABEL, "tablespace_map": "16390 /srv/ts\n"})
    assert restore_files(record) == {"backup_label": LABEL, "tablespace_map": "16390 /srv/ts\n"}
    with pytest.raises(ValueError):
        restore_files("not json")


ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)\n    sys.stdout.flush()\n"


def test_session_returns_the_lines_before_the_marker():
    session = SqlSession([sys.executable, "-c", ECHO], {}, "echo", lambda marker: marker)
    session.start()
    try:
        assert session.query("one\ntwo", "MARK", 10) == ["one", "two"]
        assert session.query("three", "MARK2", 10) == ["three"]
    finally:
        assert session.close() == 0


def test_session_that_dies_is_reported_with_its_stderr():
    died = "import sys\nsys.stderr.write('FATAL: no such role\\n')\nsys.exit(2)\n"
    session = SqlSession([sys.executable, "-c", died], {}, "psql", lambda marker: marker)
    session.start()
    with pytest.raises(QuiesceFailed, match="psql (ended|is not running).*exit code 2.*no such role"):
        session.query("select 1", "MARK", 10)
    session.close()


def test_session_that_does_not_answer_times_out():
    silent = "import sys, time\nsys.stdin.readline()\ntime.sleep(30)\n"
    session = SqlSession([sys.executable, "-c", silent], {}, "psql", lambda marker: marker)
    session.start()
    with pytest.raises(QuiesceFailed, match="did not answer within 0.3s"):
        session.query("select 1", "MARK", 0.3)
    session.kill()
    assert not session.alive()


def test_session_errors_are_redacted():
    leaky = "import sys\nsys.stderr.write('password %s rejected\\n' % 'hunter2-secret')\nsys.exit(1)\n"
    session = SqlSession([sys.executable, "-c", leaky], {}, "psql", lambda marker: marker,
                         redact=lambda text: text.replace("hunter2-secret", "***"))
    session.start()
    with pytest.raises(QuiesceFailed) as raised:
        session.query("x", "MARK", 10)
    assert "hunter2-secret" not in str(raised.value) and "***" in str(raised.value)


# -- completing a snapshot (files only: a fake data directory and its snapshot) -----------------
SEGMENT = 1024 * 1024  # initdb --wal-segsize=1


def test_wal_segments_cross_a_log_boundary():
    assert postgresql.wal_segments("0000000100000000000000FE", "000000010000000100000001", 16 * 1024 * 1024) == [
        "0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000", "000000010000000100000001"]
    assert postgresql.wal_segments("000000010000000000000FFE", "000000010000000100000000", SEGMENT)[-2:] == [
        "000000010000000000000FFF", "000000010000000100000000"]
    with pytest.raises(QuiesceFailed, match="one timeline"):
        postgresql.wal_segments("000000010000000000000005", "000000020000000000000006", SEGMENT)
    with pytest.raises(QuiesceFailed, match="power of two"):
        postgresql.wal_segments("000000010000000000000005", "000000010000000000000006", 3000)


def test_start_wal_file_from_the_label():
    assert postgresql.start_wal_file(LABEL) == "000000010000000000000003"
    with pytest.raises(QuiesceFailed, match="no start WAL file"):
        postgresql.start_wal_file("LABEL: x\n")


def fake_cluster(root, wal_names) -> None:
    (root / "global").mkdir(parents=True)
    (root / "global" / "pg_control").write_bytes(b"c")
    (root / "PG_VERSION").write_text("15\n")
    (root / "pg_wal").mkdir()
    (root / "postmaster.pid").write_text("1\n")
    for name in wal_names:
        (root / "pg_wal" / name).write_bytes(name.encode().ljust(SEGMENT, b"\0"))


def stop_label(stop_wal_file="000000010000000000000004") -> str:
    return json.dumps({"backup_label": LABEL, "tablespace_map": "", "stop_wal_file": stop_wal_file,
                       "stop_lsn": "0/4000100"})


def test_complete_snapshot_copies_wal_then_writes_the_label(tmp_path):
    live, snap = tmp_path / "vol", tmp_path / "snap"
    fake_cluster(live / "15" / "main", ["000000010000000000000003", "000000010000000000000004"])
    fake_cluster(snap / "15" / "main", ["000000010000000000000003"])
    (snap / "15" / "main" / "pg_wal" / "000000010000000000000003").write_bytes(b"older")
    record = postgresql.FreezeRecord("postgresql", label=stop_label())
    make(tmp_path).complete_snapshot({str(live): str(snap)}, record)
    data = snap / "15" / "main"
    assert (data / "backup_label").read_text() == LABEL and not (data / "tablespace_map").exists()
    assert not (data / "postmaster.pid").exists() and (live / "15" / "main" / "postmaster.pid").exists()
    for name in ("000000010000000000000003", "000000010000000000000004"):
        assert (data / "pg_wal" / name).read_bytes() == (live / "15" / "main" / "pg_wal" / name).read_bytes()
        assert oct((data / "pg_wal" / name).stat().st_mode & 0o777) == "0o600"


def test_complete_snapshot_fails_when_a_segment_is_gone_and_writes_no_label(tmp_path):
    live, snap = tmp_path / "vol", tmp_path / "snap"
    fake_cluster(live, ["000000010000000000000003"])
    fake_cluster(snap, [])
    record = postgresql.FreezeRecord("postgresql", label=stop_label("000000010000000000000005"))
    with pytest.raises(QuiesceFailed, match="000000010000000000000004 .* is gone"):
        make(tmp_path).complete_snapshot({str(live): str(snap)}, record)
    assert not (snap / "backup_label").exists()


def test_complete_snapshot_refuses_a_pg_wal_outside_the_snapshot(tmp_path):
    live, snap = tmp_path / "vol", tmp_path / "snap"
    fake_cluster(live, ["000000010000000000000003", "000000010000000000000004"])
    fake_cluster(snap, [])
    (snap / "pg_wal").rmdir()
    (snap / "pg_wal").symlink_to(live / "pg_wal")  # writing there would write into the live server
    with pytest.raises(QuiesceFailed, match="symbolic link"):
        make(tmp_path).complete_snapshot({str(live): str(snap)}, postgresql.FreezeRecord("postgresql", label=stop_label()))


def test_data_directory_found_once_or_named(tmp_path):
    fake_cluster(tmp_path / "snap" / "a", [])
    fake_cluster(tmp_path / "snap" / "b", [])
    profile = make(tmp_path)
    with pytest.raises(QuiesceFailed, match="found 2"):
        profile.snapshot_data_directory({"/srv/pg": str(tmp_path / "snap")})
    named = make(tmp_path, data_directory="/srv/pg/b")
    assert named.snapshot_data_directory({"/srv/logs": "/x", "/srv/pg": str(tmp_path / "snap")}) == (
        "/srv/pg/b", str(tmp_path / "snap" / "b"))


def test_nothing_to_complete_without_a_label(tmp_path):
    make(tmp_path).complete_snapshot({"/nonexistent": "/nonexistent"}, postgresql.FreezeRecord("postgresql"))


def test_pg_wal_linked_into_another_volume_of_the_group_is_that_volume_s_snapshot(tmp_path):
    data_snap, wal_snap = tmp_path / "snap" / "pg", tmp_path / "snap" / "pgwal"
    fake_cluster(data_snap / "data", [])
    (data_snap / "data" / "pg_wal").rmdir()
    (data_snap / "data" / "pg_wal").symlink_to("/srv/pgwal/wal")  # initdb -X: absolute, production's path
    (wal_snap / "wal").mkdir(parents=True)
    snapshots = {"/srv/pg": str(data_snap), "/srv/pgwal": str(wal_snap)}
    assert postgresql.snapshot_wal_directory(str(data_snap / "data"), snapshots) == str(wal_snap / "wal")


def test_pg_wal_of_its_own_is_the_snapshot_s_directory(tmp_path):
    fake_cluster(tmp_path / "snap", [])
    assert postgresql.snapshot_wal_directory(str(tmp_path / "snap"), {"/srv/pg": str(tmp_path / "snap")}) == \
        str(tmp_path / "snap" / "pg_wal")


def test_pg_wal_linked_outside_the_group_is_refused_naming_it(tmp_path):
    fake_cluster(tmp_path / "snap", [])
    (tmp_path / "snap" / "pg_wal").rmdir()
    (tmp_path / "snap" / "pg_wal").symlink_to("/srv/pgwalx/wal")  # a sibling with a common prefix is not inside
    with pytest.raises(QuiesceFailed, match="links to /srv/pgwalx/wal, outside the snapshotted volumes"):
        postgresql.snapshot_wal_directory(str(tmp_path / "snap"), {"/srv/pg": str(tmp_path / "snap"),
                                                                   "/srv/pgwal": str(tmp_path / "walsnap")})
