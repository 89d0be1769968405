# -*- coding: utf-8 -*-
"""Dump streams piped into restic with no temporary copy (restic backup --stdin), as the
consistency profiles of file-level tiers use them, and what happens when the producer fails."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.storage.restic import ResticError, ResticRepository

# 8 MiB of deterministic bytes, then the producer's exit status.
PRODUCER = ("import sys, hashlib\n"
            "block = hashlib.sha256(b'restorable').digest() * 32768\n"
            "for _n in range(8): sys.stdout.buffer.write(block)\n"
            "sys.stdout.flush(); sys.exit(int(sys.argv[1]))\n")
EXPECTED = hashlib.sha256(hashlib.sha256(b"restorable").digest() * 32768 * 8).hexdigest()


@pytest.fixture
def repository(restic_local_repo) -> ResticRepository:
    return ResticRepository(str(restic_local_repo.path), str(restic_local_repo.password_file))


def _snapshots(restic_local_repo, tag: str) -> list:
    listed = restic_local_repo.restic("snapshots", "--json", "--tag", tag)
    return json.loads(listed.stdout)


def test_a_stream_is_stored_whole_under_its_name(repository, restic_local_repo):
    summary = repository.backup_stream("postgresql/app.dump", [sys.executable, "-c", PRODUCER, "0"], {},
                                       host="stream-host", tags=["dataset:streams", "stream:postgresql/app.dump"])
    assert summary.snapshot_id
    raw = subprocess.run(["restic", "-r", str(restic_local_repo.path), "dump", summary.snapshot_id, "/postgresql/app.dump"],
                         env=restic_local_repo.env(), capture_output=True, check=True)
    assert hashlib.sha256(raw.stdout).hexdigest() == EXPECTED


def test_a_failing_producer_leaves_no_recovery_point(repository, restic_local_repo):
    with pytest.raises(ResticError) as failed:
        repository.backup_stream("postgresql/broken.dump", [sys.executable, "-c", PRODUCER + "\n", "3"], {},
                                 host="stream-host", tags=["dataset:broken-stream"])
    assert failed.value.kind == ResticError.SOURCE_FAILED
    assert "stream postgresql/broken.dump" in str(failed.value) and "exited 3" in str(failed.value)
    assert _snapshots(restic_local_repo, "dataset:broken-stream") == []


def test_a_missing_producer_is_named(repository):
    with pytest.raises(ResticError) as failed:
        repository.backup_stream("x.dump", ["/nonexistent/pg_dump"], {}, host="stream-host", tags=["dataset:missing"])
    assert failed.value.kind == ResticError.SOURCE_FAILED
    assert "pg_dump" in str(failed.value)
