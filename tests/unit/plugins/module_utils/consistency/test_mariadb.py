# -*- coding: utf-8 -*-
"""MariaDB profile: option file, argv building, modes (no server needed)."""
from __future__ import annotations

import os

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    QuiesceFailed, profile_from_config)
from ansible_collections.restorable.backup.plugins.module_utils.consistency.mariadb import (
    MariaDBProfile, option_file_text, option_value, parse_gtid_position)

SECRET = 'se"cr\\et-9a1b'


def make(tmp_path, **settings) -> MariaDBProfile:
    config = {"type": "mariadb", "mariadb": {"socket": "/run/mysqld/mysqld.sock", "user": "backup",
                                             "password": SECRET, **settings}}
    profile = profile_from_config(config, str(tmp_path / "staging"))
    assert isinstance(profile, MariaDBProfile)
    return profile


def test_option_values_are_quoted_and_escaped():
    assert option_value(SECRET) == '"se\\"cr\\\\et-9a1b"'
    with pytest.raises(QuiesceFailed):
        option_value("a\nb")


def test_option_file_holds_only_what_is_given():
    assert option_file_text("backup", None, "/run/s.sock") == '[client]\nuser="backup"\nsocket="/run/s.sock"\n'
    assert option_file_text(None, None, None) == "[client]\n"


def test_mariabackup_stream_takes_credentials_from_a_private_option_file(tmp_path):
    profile = make(tmp_path)
    sources = profile.streams()
    assert [source.name for source in sources] == ["mariadb/backup.xbstream"]
    argv = sources[0].argv
    assert argv[0] == "mariabackup"
    assert argv[1].startswith("--defaults-extra-file=")  # mariabackup demands it first
    assert argv[2:4] == ["--backup", "--stream=xbstream"]
    option_file = argv[1].split("=", 1)[1]
    target = argv[4].split("=", 1)[1]
    assert argv[4].startswith("--target-dir=") and os.path.isdir(target)
    assert os.path.dirname(target) == os.path.dirname(option_file)
    assert os.stat(option_file).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(option_file)).st_mode & 0o777 == 0o700
    with open(option_file, encoding="utf-8") as handle:
        assert handle.read() == option_file_text("backup", SECRET, "/run/mysqld/mysqld.sock")
    assert not any("cr" in arg and "et-9a1b" in arg for arg in argv)
    assert not any(key.startswith("MYSQL") for key in sources[0].env)
    profile.cleanup()
    assert not os.path.exists(option_file) and not os.path.exists(target)


def test_lock_session_client_has_no_secret_and_reads_the_option_file_first(tmp_path):
    profile = make(tmp_path, mode="read_lock")
    argv = profile.client_argv()
    assert argv[0] == "mariadb" and argv[1].startswith("--defaults-extra-file=")
    assert "--batch" in argv and "--unbuffered" in argv and "--skip-column-names" in argv
    assert not any("et-9a1b" in arg for arg in argv)
    profile.cleanup()


def test_caller_mysql_password_never_reaches_clients(tmp_path, monkeypatch):
    monkeypatch.setenv("MYSQL_PWD", "leaked")
    assert "MYSQL_PWD" not in make(tmp_path).client_env()


def test_read_lock_mode_has_no_streams(tmp_path):
    with pytest.raises(QuiesceFailed, match="read_lock"):
        make(tmp_path, mode="read_lock").streams()


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(QuiesceFailed, match="mode"):
        make(tmp_path, mode="dump")


def test_gtid_position_is_recorded_when_there_is_one():
    assert parse_gtid_position(["0-1-42"]) == {"gtid_binlog_pos": "0-1-42"}
    assert parse_gtid_position([""]) == {}
    assert parse_gtid_position(["NULL"]) == {}
    assert parse_gtid_position([]) == {}
