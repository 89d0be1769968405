# -*- coding: utf-8 -*-
"""The application layer reads a point's streams only through RestoredData: an in-memory
implementation stands in for the tier's storage, and the checks load what it holds."""
from __future__ import annotations

import datetime
import io
import os
import stat
import subprocess
import tarfile
from typing import Sequence

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.drill import application
from ansible_collections.restorable.backup.plugins.module_utils.drill.application import (
    PostgreSQLApplicationCheck, database_layer)
from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import (
    FAILED, OK, DrillError, Layer, RecoveryPoint)
from ansible_collections.restorable.backup.plugins.module_utils.drill.restored import CheckFailed, RestoredData

POINT = RecoveryPoint("abcdef0123456789", datetime.datetime(2026, 11, 24, 1, 0, tzinfo=datetime.timezone.utc),
                      "abcdef01")


class InMemoryStreams(RestoredData):
    """Streams held in memory; pipe() feeds them to the real consumer command."""

    def __init__(self, streams: dict[str, bytes], listing_error: str = "") -> None:
        self.streams = streams
        self.listing_error = listing_error
        self.calls: list[tuple] = []

    def names(self) -> list[str]:
        self.calls.append(("names",))
        if self.listing_error:
            raise DrillError(self.listing_error)
        return sorted(self.streams)

    def text(self, name: str) -> str:
        self.calls.append(("text", name))
        return self.streams[name].decode("utf-8")

    def pipe(self, name: str, consumer: Sequence[str], env: dict[str, str], what: str) -> None:
        self.calls.append(("pipe", name, list(consumer), what))
        result = subprocess.run(list(consumer), input=self.streams[name], env=env, capture_output=True, check=False)
        if result.returncode != 0:
            raise CheckFailed("%s: exit code %d" % (what, result.returncode))

    def origins(self) -> dict[str, str]:
        return {name: "memory" for name in self.streams}


class RecordingCheck:
    """Stands in for a check class: records what database_layer hands it."""

    seen: list[tuple] = []

    def __init__(self, settings: dict, scratch: str, timeout: float | None) -> None:
        self.settings = settings

    def check(self, streams: RestoredData | None, restored_root: str) -> Layer:
        RecordingCheck.seen.append((self.settings, streams, restored_root))
        names = streams.names() if streams is not None else []
        return Layer("application", OK, "checked %d stream(s)" % len(names))


@pytest.fixture(name="recording")
def fixture_recording(monkeypatch):
    RecordingCheck.seen = []
    monkeypatch.setitem(application.CHECKS, "postgresql", RecordingCheck)
    monkeypatch.setitem(application.CHECKS, "mariadb", RecordingCheck)
    return RecordingCheck


def test_the_layer_hands_the_streams_to_the_check_and_records_their_origins(tmp_path, recording):
    streams = InMemoryStreams({"mariadb/backup.xbstream": b"xb"})
    layer = database_layer(streams, {"type": "mariadb", "mariadb": {"checks": ["select 1"]}}, POINT, str(tmp_path), 30)
    assert layer.status == OK and layer.message == "checked 1 stream(s)"
    assert layer.details["streams"] == {"mariadb/backup.xbstream": "memory"}
    assert recording.seen == [({"checks": ["select 1"]}, streams, str(tmp_path))]


def test_streams_that_cannot_be_listed_fail_the_layer(tmp_path, recording):
    streams = InMemoryStreams({}, listing_error="repository is locked")
    layer = database_layer(streams, {"type": "postgresql"}, POINT, str(tmp_path), 30)
    assert layer.status == FAILED and layer.message == "cannot list the run's streams: repository is locked"
    assert recording.seen == []


def test_a_point_without_streams_fails_the_layer(tmp_path, recording):
    layer = database_layer(InMemoryStreams({}), {"type": "mariadb"}, POINT, str(tmp_path), 30)
    assert layer.status == FAILED
    assert layer.message == "point abcdef01 has no mariadb stream beside it: was the run consistent?"
    assert recording.seen == []


def test_backup_api_reads_no_stream(tmp_path, recording):
    streams = InMemoryStreams({"postgresql/globals.sql": b""})
    layer = database_layer(streams, {"type": "postgresql", "postgresql": {"mode": "backup_api"}}, POINT,
                           str(tmp_path), 30)
    assert layer.status == OK and "streams" not in layer.details
    assert streams.calls == [] and recording.seen[0][1] is None


def pg_check(tmp_path, mode: str, bindir: str = "/pg/bin") -> PostgreSQLApplicationCheck:
    check = PostgreSQLApplicationCheck({"mode": mode}, str(tmp_path / "restore" / ".restorable-application"),
                                       timeout=30, bindir=bindir)
    check.as_root = False
    check.prepare_scratch()
    return check


def test_a_base_backup_unpacks_from_the_stream_into_the_scratch_data_directory(tmp_path):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        version = tarfile.TarInfo("PG_VERSION")
        version.size = 3
        tar.addfile(version, io.BytesIO(b"15\n"))
    streams = InMemoryStreams({"postgresql/base.tar": archive.getvalue()})
    check = pg_check(tmp_path, "basebackup")
    check.unpack_base_backup(streams)
    assert (tmp_path / "restore" / ".restorable-application" / "data" / "PG_VERSION").read_text() == "15\n"
    assert streams.calls == [("names",), ("pipe", "postgresql/base.tar", ["tar", "-x", "-f", "-", "-C", check.path("data")],
                                          "unpacking the base backup")]


def test_dumps_load_from_the_streams_into_their_consumers(tmp_path, monkeypatch):
    # pg_restore stands in as a script that keeps what it is fed, by database.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    restore = bindir / "pg_restore"
    restore.write_text('#!/bin/sh\ncat > "%s/loaded-$3"\n' % tmp_path)
    restore.chmod(restore.stat().st_mode | stat.S_IXUSR)
    streams = InMemoryStreams({"postgresql/globals.sql": b"CREATE ROLE postgres;\nCREATE ROLE app;\n",
                               "postgresql/app.dump": b"PGDMP app", "postgresql/postgres.dump": b"PGDMP postgres"})
    check = pg_check(tmp_path, "dump", str(bindir))
    commands = []
    monkeypatch.setattr(check, "command", lambda argv, what: commands.append(what))
    dumps = check.dump_streams(streams)
    assert check.load_dumps(streams, dumps) == ["app", "postgres"]
    assert (tmp_path / "loaded-app").read_bytes() == b"PGDMP app"
    assert (tmp_path / "loaded-postgres").read_bytes() == b"PGDMP postgres"
    with open(check.path("globals.sql"), encoding="utf-8") as handle:
        assert handle.read() == "CREATE ROLE app;\n"  # the scratch cluster's superuser exists already
    assert commands == ["loading postgresql/globals.sql", "creating database app"]
    assert [call[0:2] for call in streams.calls] == [
        ("names",), ("text", "postgresql/globals.sql"), ("pipe", "postgresql/app.dump"),
        ("pipe", "postgresql/postgres.dump")]


def test_a_consumer_that_fails_names_its_step(tmp_path, monkeypatch):
    streams = InMemoryStreams({"postgresql/globals.sql": b"", "postgresql/app.dump": b"not a dump"})
    check = pg_check(tmp_path, "dump", str(tmp_path / "no-bin"))
    monkeypatch.setattr(check, "command", lambda argv, what: None)
    monkeypatch.setattr(check, "restore_argv", lambda database: ["false"])
    with pytest.raises(CheckFailed, match="^pg_restore of database app: exit code 1$"):
        check.load_dumps(streams, check.dump_streams(streams))
    assert os.path.exists(check.path("globals.sql"))
