# -*- coding: utf-8 -*-
"""archive-wal and restore-wal as PostgreSQL runs them: the exit codes it reads, one line on
stderr for a failure, silence for a file that is not archived, and the command line reaching
them through the agent's main command."""
from __future__ import annotations

import json

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.runtime import cli, wal_cli
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiver import (
    ArchiverConfigError, archiver_document, load_archiver_config)

SEG = "000000010000000000000007"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "pgmain.json"
    path.write_text(json.dumps(archiver_document("pgmain", {"type": "local", "path": str(tmp_path / "store")})))
    (tmp_path / "pg_wal").mkdir()
    (tmp_path / "pg_wal" / SEG).write_bytes(b"w" * 8192)
    return str(path)


def test_archive_then_restore_through_the_agents_command_line(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # PostgreSQL runs both in the data directory: %p is relative
    assert cli.main(["archive-wal", "--config", config, "pg_wal/" + SEG, SEG]) == 0
    assert cli.main(["archive-wal", "--config", config, "pg_wal/" + SEG, SEG]) == 0, "a retry after a crash"
    assert cli.main(["restore-wal", "--config", config, SEG, "pg_wal/RECOVERYXLOG"]) == 0
    assert (tmp_path / "pg_wal" / "RECOVERYXLOG").read_bytes() == b"w" * 8192
    assert capsys.readouterr() == ("", "")


def test_other_content_under_an_archived_name_is_refused_with_one_line(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert wal_cli.main(["archive-wal", "--config", config, "pg_wal/" + SEG, SEG]) == 0
    (tmp_path / "pg_wal" / SEG).write_bytes(b"v" * 8192)
    assert wal_cli.main(["archive-wal", "--config", config, "pg_wal/" + SEG, SEG]) == 1
    err = capsys.readouterr().err
    assert err.startswith("restorable-agent archive-wal: error: WAL file %s was not archived: " % SEG)
    assert "already with other content" in err and err.count("\n") == 1


def test_a_file_that_is_not_archived_exits_1_quietly(config, tmp_path, capsys):
    assert wal_cli.main(["restore-wal", "--config", config, "00000002.history", str(tmp_path / "h")]) == 1
    assert capsys.readouterr() == ("", "")


def test_a_damaged_file_stops_recovery_rather_than_ending_it(config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    wal_cli.main(["archive-wal", "--config", config, "pg_wal/" + SEG, SEG])
    with open(tmp_path / "store" / SEG, "r+b") as handle:
        handle.write(b"x")
    assert wal_cli.main(["restore-wal", "--config", config, SEG, "pg_wal/RECOVERYXLOG"]) == 126
    assert "does not match its checksum" in capsys.readouterr().err
    assert not (tmp_path / "pg_wal" / "RECOVERYXLOG").exists()


def test_an_unusable_configuration_or_store_fails_archiving(tmp_path, capsys):
    assert wal_cli.main(["archive-wal", "--config", str(tmp_path / "none.json"), "p", SEG]) == 1
    assert "archiver configuration %s cannot be read" % (tmp_path / "none.json") in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "dataset": "d", "store": {"type": "local"}}))
    assert wal_cli.main(["restore-wal", "--config", str(bad), SEG, "x"]) == 126
    assert "store.path is required for a local store" in capsys.readouterr().err


def test_usage_errors_exit_2():
    assert wal_cli.main(["archive-wal", "pg_wal/" + SEG, SEG]) == 2
    assert wal_cli.main(["restore-wal", "--config"]) == 2


def test_the_configuration_format_is_checked(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"format": 2, "dataset": "d", "store": {"type": "local", "path": "/x"}}))
    with pytest.raises(ArchiverConfigError, match="format 2 is not supported"):
        load_archiver_config(str(path))
    path.write_text(json.dumps({"format": 1, "dataset": "d", "store": {"type": "local", "path": "/x"}, "key": 1}))
    with pytest.raises(ArchiverConfigError, match="unknown option key"):
        load_archiver_config(str(path))
