# -*- coding: utf-8 -*-
# Private to restorable.backup: the streams of an agent run, read back from its repository.
"""The agent tier's :class:`~...drill.restored.RestoredData`: a run's dump streams in restic.

The runner backs up a run's files first, then pipes each stream of its consistency profile into
the repository as a snapshot of its own, tagged ``stream:<name>`` (see ``core/runner.py``).
:class:`RunStreams` finds the streams of the run a recovery point belongs to and reads each
with ``restic dump``, straight into the command that loads it.
"""
from __future__ import annotations

import datetime
from typing import Any, Sequence

from ...core.jobspec import DATASET_TAG_PREFIX
from ...drill.application import DEFAULT_TIMEOUT, describe_failure
from ...drill.engine import DrillError, parse_time
from ...drill.restored import CheckFailed, RestoredData
from ...storage.repository import Repository, RepositoryError

STREAM_TAG_PREFIX = "stream:"


def stream_of(snapshot: dict[str, Any]) -> str | None:
    """The stream name a snapshot carries in its tags, None for a run's file snapshot."""
    for tag in snapshot.get("tags") or []:
        if str(tag).startswith(STREAM_TAG_PREFIX):
            return str(tag)[len(STREAM_TAG_PREFIX):]
    return None


def streams_of_run(snapshots: Sequence[dict[str, Any]], point_time: datetime.datetime) -> dict[str, str]:
    """{stream name: snapshot id} of the run whose file snapshot was taken at point_time.

    A run backs up its files first, then each stream: the run's streams are the first of each
    name taken at or after its file snapshot and before the next run's file snapshot.
    """
    timed = []
    for snap in snapshots:
        try:
            timed.append((parse_time(snap["time"]), snap))
        except (KeyError, ValueError):
            continue
    later_points = [when for when, snap in timed if stream_of(snap) is None and when > point_time]
    boundary = min(later_points) if later_points else None
    found: dict[str, tuple] = {}
    for when, snap in sorted(timed, key=lambda item: item[0]):
        name = stream_of(snap)
        if name is None or when < point_time or (boundary is not None and when >= boundary):
            continue
        found.setdefault(name, (when, snap["id"]))
    return {name: item[1] for name, item in found.items()}


class RunStreams(RestoredData):
    """The streams one run stored beside its recovery point, listed on first use."""

    def __init__(self, repo: Repository, dataset: str, host: str, point_time: datetime.datetime,
                 timeout: float | None) -> None:
        self.repo = repo
        self.dataset = dataset
        self.host = host
        self.point_time = point_time
        self.timeout = float(timeout or DEFAULT_TIMEOUT)
        self._snapshots: dict[str, str] | None = None

    def snapshots(self) -> dict[str, str]:
        """{stream name: snapshot id}, listed once: the layer lists them, then the check reads them."""
        if self._snapshots is None:
            try:
                listed = self.repo.snapshots(host=self.host, tags=[DATASET_TAG_PREFIX + self.dataset])
            except RepositoryError as exc:
                raise DrillError(exc.message) from None
            self._snapshots = streams_of_run(listed, self.point_time)
        return self._snapshots

    def names(self) -> list[str]:
        return sorted(self.snapshots())

    def origins(self) -> dict[str, str]:
        return {name: snapshot[:8] for name, snapshot in self.snapshots().items()}

    def text(self, name: str) -> str:
        try:
            return self.repo.read_file(self.snapshots()[name], "/" + name, timeout=self.timeout)
        except RepositoryError as exc:
            raise CheckFailed("restic dump of stream %s: %s" % (name, exc.message)) from None

    def pipe(self, name: str, consumer: Sequence[str], env: dict[str, str], what: str) -> None:
        try:
            result = self.repo.pipe_file(self.snapshots()[name], "/" + name, consumer, env, timeout=self.timeout)
        except RepositoryError as exc:
            raise CheckFailed("stream %s: %s" % (name, exc.message)) from None
        if not result.ok:
            raise CheckFailed("%s: %s" % (what, describe_failure(result)))
