# -*- coding: utf-8 -*-
"""The agent tier's RestoredData: a run's streams found once in the repository and read by name."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.drill.application import DEFAULT_TIMEOUT
from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import DrillError, parse_time
from ansible_collections.restorable.backup.plugins.module_utils.drill.restored import RestoredData
from ansible_collections.restorable.backup.plugins.module_utils.storage.repository import RepositoryError
from ansible_collections.restorable.backup.plugins.module_utils.tiers.agent.streams import RunStreams

POINT_TIME = parse_time("2026-11-24T01:00:00Z")
SNAPSHOTS = [
    {"id": "files1" + "0" * 58, "time": "2026-11-24T01:00:00Z", "tags": ["dataset:db"]},
    {"id": "glob1" + "0" * 59, "time": "2026-11-24T01:00:05Z", "tags": ["dataset:db", "stream:postgresql/globals.sql"]},
]


class FakeRepository:
    """What RunStreams asks of a repository: its snapshots and a file of one."""

    def __init__(self, error: RepositoryError | None = None) -> None:
        self.error = error
        self.listed: list[dict] = []
        self.read: list[tuple] = []

    def snapshots(self, host: str, tags: list[str]) -> list[dict]:
        self.listed.append({"host": host, "tags": tags})
        if self.error is not None:
            raise self.error
        return SNAPSHOTS

    def read_file(self, point_id: str, path: str, timeout: float) -> str:
        self.read.append((point_id, path, timeout))
        return "CREATE ROLE app;\n"


def test_the_streams_of_the_run_are_listed_once_and_read_by_name():
    repo = FakeRepository()
    streams = RunStreams(repo, "db", "db01", POINT_TIME, None)
    assert isinstance(streams, RestoredData)
    assert streams.names() == ["postgresql/globals.sql"]
    assert streams.origins() == {"postgresql/globals.sql": "glob1000"}
    assert streams.text("postgresql/globals.sql") == "CREATE ROLE app;\n"
    assert repo.listed == [{"host": "db01", "tags": ["dataset:db"]}]
    assert repo.read == [(SNAPSHOTS[1]["id"], "/postgresql/globals.sql", DEFAULT_TIMEOUT)]


def test_a_repository_that_cannot_list_is_a_drill_error():
    streams = RunStreams(FakeRepository(RepositoryError(RepositoryError.LOCKED, "the repository is locked")), "db", "db01",
                         POINT_TIME, 30)
    with pytest.raises(DrillError, match="^the repository is locked$"):
        streams.names()
