# -*- coding: utf-8 -*-
"""restic argument building, output parsing and error classification (no restic needed)."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.storage.restic import (
    ResticError, ResticRepository, classify_failure, error_detail, parse_backup_summary, restic_duration,
    retention_args)
from ansible_collections.restorable.backup.plugins.module_utils.common.process import ionice_prefix
from ansible_collections.restorable.backup.plugins.module_utils.common.process import CommandResult


def test_retention_args_in_gfs_order_without_zeros():
    assert retention_args({"yearly": 3, "daily": 7, "last": 3, "weekly": 0, "monthly": 12}) == [
        "--keep-last", "3", "--keep-daily", "7", "--keep-monthly", "12", "--keep-yearly", "3"]


def test_retention_max_age_becomes_keep_within():
    assert retention_args({"hourly": 24, "max_age": 14 * 86400}) == ["--keep-hourly", "24", "--keep-within", "14d"]


def test_empty_retention_is_no_policy():
    assert retention_args({}) == []
    assert retention_args({"last": 0}) == []


@pytest.mark.parametrize("seconds, text", [
    (86400, "1d"), (26 * 3600, "1d2h"), (3600, "1h"), (90 * 60, "2h"), (60, "1h"), (7 * 86400, "7d")])
def test_restic_duration_rounds_up_to_hours(seconds, text):
    assert restic_duration(seconds) == text


def test_ionice_prefix():
    assert ionice_prefix("best-effort", 7, "/usr/bin/ionice") == ["/usr/bin/ionice", "-c", "2", "-n", "7"]
    assert ionice_prefix("idle", 7, "/usr/bin/ionice") == ["/usr/bin/ionice", "-c", "3"]
    assert ionice_prefix("realtime", None, "/usr/bin/ionice") == ["/usr/bin/ionice", "-c", "1"]
    assert ionice_prefix("idle", None, None) == []
    assert ionice_prefix(None, 3, "/usr/bin/ionice") == []


SUMMARY = ('{"message_type":"summary","files_new":2,"files_changed":1,"files_unmodified":5,"dirs_new":1,'
           '"dirs_changed":0,"dirs_unmodified":2,"data_blobs":2,"tree_blobs":2,"data_added":1234,'
           '"total_files_processed":8,"total_bytes_processed":98765,"total_duration":1.25,"snapshot_id":"f8b51fc1"}')


def test_backup_summary_from_json_lines():
    out = '{"message_type":"status","percent_done":0.5}\nnot json\n' + SUMMARY + "\n"
    summary = parse_backup_summary(out)
    assert summary.snapshot_id == "f8b51fc1"
    assert (summary.files_new, summary.files_changed, summary.files_unmodified) == (2, 1, 5)
    assert summary.data_added == 1234 and summary.total_bytes_processed == 98765
    assert summary.total_duration == 1.25 and summary.errors == []


def test_backup_summary_collects_read_errors():
    out = ('{"message_type":"error","error":{"message":"open /x: permission denied"},"during":"archival",'
           '"item":"/x"}\n' + SUMMARY)
    assert parse_backup_summary(out).errors == ["/x: open /x: permission denied"]


def test_no_summary():
    assert parse_backup_summary("") is None


# Error output as restic 0.14 prints it.
WRONG_PASSWORD = "Fatal: wrong password or no key found\n"
NO_LOCAL_REPO = ("Fatal: unable to open config file: stat /srv/restic/config: no such file or directory\n"
                 "Is there a repository at the following location?\n/srv/restic\n")
NO_BUCKET = ("Fatal: unable to open config file: Stat: The specified bucket does not exist\n"
             "Is there a repository at the following location?\ns3:http://127.0.0.1:9000/nobucket/x\n")
REFUSED_AT_OPEN = ('Fatal: unable to open config file: Stat: Get "http://127.0.0.1:1/bucket/?location=": dial tcp '
                   '127.0.0.1:1: connect: connection refused\nIs there a repository at the following location?\n'
                   "s3:http://127.0.0.1:1/bucket\n")
REFUSED_MID_RUN = ('Save(<data/0a1b2c3d4e>) returned error, retrying after 552.330144ms: client.PutObject: Put '
                   '"http://127.0.0.1:9/b/data/0a/0a1b": dial tcp 127.0.0.1:9: connect: connection refused\n'
                   'Remove(<lock/457b68a77f>) returned error, retrying after 7.95s: client.RemoveObject: Delete '
                   '"http://127.0.0.1:9/b/locks/457b": dial tcp 127.0.0.1:9: connect: connection refused\n')
SFTP_DOWN = ("subprocess ssh: ssh: connect to host 127.0.0.1 port 2222: Connection refused\n"
             "Fatal: unable to open repo at sftp:backup@127.0.0.1:/srv/restic: unable to start the sftp session, "
             "error: EOF\n")
LOCKED = ("unable to create lock in backend: repository is already locked exclusively by PID 4242 on nas by root "
          "(UID 0, GID 0)\nlock was created at 2026-11-24 23:30:00 (1m0s ago)\n")
DENIED = "Fatal: unable to open config file: Stat: Access Denied.\nIs there a repository at the following location?\n"


@pytest.mark.parametrize("stderr, kind", [
    (WRONG_PASSWORD, ResticError.WRONG_PASSWORD), (NO_LOCAL_REPO, ResticError.NO_REPOSITORY),
    (NO_BUCKET, ResticError.NO_REPOSITORY), (REFUSED_AT_OPEN, ResticError.UNREACHABLE),
    (REFUSED_MID_RUN, ResticError.UNREACHABLE), (SFTP_DOWN, ResticError.UNREACHABLE), (LOCKED, ResticError.LOCKED),
    (DENIED, ResticError.ACCESS_DENIED), ("Fatal: something new\n", ResticError.FAILED)])
def test_classify_failure(stderr, kind):
    assert classify_failure(stderr) == kind


def test_error_detail_prefers_fatal_then_the_first_retry():
    assert error_detail(WRONG_PASSWORD) == "wrong password or no key found"
    assert error_detail(REFUSED_MID_RUN) == (
        'Save(<data/0a1b2c3d4e>) failed: client.PutObject: Put "http://127.0.0.1:9/b/data/0a/0a1b": dial tcp '
        '127.0.0.1:9: connect: connection refused')
    assert error_detail("x" * 1000, limit=10) == "x" * 10 + "..."


def repo(**kwargs) -> ResticRepository:
    return ResticRepository("s3:http://127.0.0.1:9000/bucket/host", "/etc/restorable/www.password",
                            env={"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret-key"},
                            **kwargs)


def test_messages_name_the_repository_and_the_problem():
    r = repo()
    wrong = r.error("backup", CommandResult(["restic"], 1, stderr=WRONG_PASSWORD))
    assert wrong.kind == ResticError.WRONG_PASSWORD
    assert str(wrong) == ("wrong password for the restic repository at s3:http://127.0.0.1:9000/bucket/host: "
                          "the password file /etc/restorable/www.password opens no key of it")
    missing = r.error("backup", CommandResult(["restic"], 1, stderr=NO_BUCKET))
    assert str(missing).startswith("no restic repository at s3:http://127.0.0.1:9000/bucket/host (not initialised")
    down = r.error("backup", CommandResult(["restic"], -2, stderr=REFUSED_MID_RUN, timed_out=True), timeout=600)
    assert down.kind == ResticError.UNREACHABLE
    assert str(down).endswith("connection refused; restic backup was stopped after 10m") and down.timed_out
    slow = r.error("check", CommandResult(["restic"], -2, stderr="", timed_out=True), timeout=7200)
    assert slow.kind == ResticError.TIMEOUT and str(slow) == "restic check did not finish within 2h"
    absent = r.error("backup", CommandResult(["restic"], 127, stderr="command not found: restic"))
    assert str(absent) == "restic is not installed: restic not found"


def test_secrets_never_in_argv_but_in_environment():
    r = repo(options=["s3.region=eu-central-1"], limit_upload_kbps=2048, limit_download_kbps=4096,
             cache_dir="/var/cache/restorable", command_prefix=["/usr/bin/ionice", "-c", "3"])
    argv = r.command(["backup", "--", "/srv"])
    assert argv == ["/usr/bin/ionice", "-c", "3", "restic", "-r", "s3:http://127.0.0.1:9000/bucket/host",
                    "-o", "s3.region=eu-central-1", "--cache-dir", "/var/cache/restorable",
                    "--limit-upload", "2048", "--limit-download", "4096", "backup", "--", "/srv"]
    assert not any("very-secret-key" in a or "AKIAEXAMPLE" in a for a in argv)
    env = r.environment()
    assert env["RESTIC_PASSWORD_FILE"] == "/etc/restorable/www.password"
    assert env["AWS_SECRET_ACCESS_KEY"] == "very-secret-key"


def test_inherited_restic_and_aws_variables_are_dropped(monkeypatch):
    monkeypatch.setenv("RESTIC_PASSWORD", "from-the-shell")
    monkeypatch.setenv("RESTIC_REPOSITORY", "/somewhere/else")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    env = ResticRepository("/srv/restic", "/etc/pw").environment()
    assert "RESTIC_PASSWORD" not in env and "RESTIC_REPOSITORY" not in env and "AWS_PROFILE" not in env


def test_secret_environment_values_are_redacted():
    assert repo().redact("Fatal: key very-secret-key rejected") == "Fatal: key *** rejected"
