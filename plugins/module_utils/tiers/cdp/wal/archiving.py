# -*- coding: utf-8 -*-
# Private to restorable.backup: how well the cluster archives (pg_stat_archiver and the ready
# files), the RPO that follows from it, and the heartbeat a points run writes.
"""The points run's view of archiving.

The RPO is the age of the newest archived WAL: a restore reaches no further. It is at risk when
archiving fails (the last failure is newer than the last success), when nothing was archived
yet, when the newest archived WAL is older than the RPO, or when a WAL file has waited longer
than the RPO to be archived (a lag: the archiver is slower than the writes).

Each run writes a heartbeat row (``restorable_heartbeat``: dataset, time) and, when nothing was
archived for longer than the job's interval, switches to a new WAL file (``pg_switch_wal()``) so
that the heartbeat reaches the archive: there is a recovery point every interval, and a restore
proves which time it reached by its newest heartbeat row.
"""
from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from typing import Any

from .server import PgServer, literal

HEARTBEAT_TABLE = "restorable_heartbeat"
# One row: the archiver's counters, the current WAL position, the ready files (pg_monitor may
# list them; without it the lag is unknown rather than the query failing).
STATUS_SQL = (
    "SELECT json_build_object("
    "'now', extract(epoch FROM clock_timestamp()), "
    "'archive_mode', current_setting('archive_mode'), "
    "'data_directory', CASE WHEN pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER') "
    "THEN current_setting('data_directory') END, "
    "'in_recovery', pg_is_in_recovery(), "
    "'last_archived_wal', a.last_archived_wal, "
    "'last_archived_time', extract(epoch FROM a.last_archived_time), "
    "'archived_count', a.archived_count, "
    "'last_failed_wal', a.last_failed_wal, "
    "'last_failed_time', extract(epoch FROM a.last_failed_time), "
    "'failed_count', a.failed_count, "
    "'current_lsn', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, "
    "'current_wal', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END, "
    "'segment_size', (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), "
    "'ready', CASE WHEN pg_has_role(current_user, 'pg_monitor', 'MEMBER') THEN (SELECT json_build_object("
    "'count', count(*), 'oldest', extract(epoch FROM min(modification))) FROM pg_ls_archive_statusdir() "
    "WHERE name LIKE '%.ready') END"
    ") FROM pg_stat_archiver a")


@dataclass
class ArchiverStatus:
    """pg_stat_archiver and the WAL position, times in seconds since the epoch (server clock)."""

    now: float
    archive_mode: str
    data_directory: str | None  # None: the role may not read it
    in_recovery: bool
    last_archived_wal: str | None
    last_archived_time: float | None
    archived_count: int
    last_failed_wal: str | None
    last_failed_time: float | None
    failed_count: int
    current_lsn: str | None
    current_wal: str | None
    segment_size: int
    ready_count: int | None
    oldest_ready: float | None

    @classmethod
    def read(cls, server: PgServer) -> "ArchiverStatus":
        row = server.row(STATUS_SQL)
        ready = row.pop("ready", None) or {}
        return cls(ready_count=ready.get("count"), oldest_ready=ready.get("oldest"), **row)

    @property
    def timeline(self) -> int | None:
        return int(self.current_wal[:8], 16) if self.current_wal else None

    @property
    def failing(self) -> bool:
        """The last attempt failed: no success since the last failure."""
        return self.last_failed_time is not None and (self.last_archived_time is None
                                                      or self.last_failed_time >= self.last_archived_time)

    def idle_seconds(self) -> float | None:
        """Seconds since a WAL file was last archived (None: never)."""
        return None if self.last_archived_time is None else max(0.0, self.now - self.last_archived_time)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for key in ("now", "last_archived_time", "last_failed_time", "oldest_ready"):
            document[key] = _iso(document[key])
        return document


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def assess_rpo(status: ArchiverStatus, rpo_seconds: float) -> dict[str, Any]:
    """{"archive_seconds", "lag_seconds", "at_risk", "reason"} of a status against the RPO."""
    archive_seconds = status.idle_seconds()
    lag_seconds = max(0.0, status.now - status.oldest_ready) if status.oldest_ready is not None else 0.0
    reasons = []
    if status.archive_mode == "off":
        reasons.append("archive_mode is off: nothing is archived")
    if status.failing:
        reasons.append("archiving fails: %d failure(s), the last of %s at %s" % (
            status.failed_count, status.last_failed_wal, _iso(status.last_failed_time)))
    if archive_seconds is None:
        reasons.append("no WAL file was archived yet")
    elif archive_seconds > rpo_seconds:
        reasons.append("the newest archived WAL (%s) is %.0fs old, more than the RPO of %.0fs" % (
            status.last_archived_wal, archive_seconds, rpo_seconds))
    if lag_seconds > rpo_seconds:
        reasons.append("%s WAL file(s) wait to be archived, the oldest for %.0fs, more than the RPO of %.0fs" % (
            status.ready_count, lag_seconds, rpo_seconds))
    return {"archive_seconds": None if archive_seconds is None else round(archive_seconds, 1),
            "lag_seconds": round(lag_seconds, 1), "rpo_seconds": rpo_seconds, "at_risk": bool(reasons),
            "reason": "; ".join(reasons)}


def heartbeat_statements(dataset: str, switch: bool) -> list[str]:
    """The statements of one heartbeat, each its own transaction: the row must be committed
    before the switch, or the switched-out file would not hold it."""
    statements = [
        "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, dataset text NOT NULL, "
        "at timestamptz NOT NULL)" % HEARTBEAT_TABLE,
        "INSERT INTO %s (dataset, at) VALUES (%s, now()) RETURNING json_build_object('id', id, "
        "'at', extract(epoch FROM at))" % (HEARTBEAT_TABLE, literal(dataset)),
    ]
    if switch:
        statements.append("SELECT json_build_object('switched_at', pg_switch_wal()::text)")
    return statements


def write_heartbeat(server: PgServer, dataset: str, switch: bool, database: str | None = None) -> dict[str, Any]:
    """Insert the heartbeat row (and switch WAL files); {"at", "id", "switched_at"}."""
    rows = server.rows(heartbeat_statements(dataset, switch), database)
    document: dict[str, Any] = {"switched_at": None}
    for row in rows:
        document.update(row)
    document["at"] = _iso(document["at"])
    return document


def heartbeat_query(dataset: str, target_epoch: float) -> str:
    """The restored heartbeat rows around a target time: the newest, how many come after it."""
    return ("SELECT json_build_object('newest', extract(epoch FROM max(at)), 'rows', count(*), "
            "'after', count(*) FILTER (WHERE at > to_timestamp(%r))) FROM %s WHERE dataset = %s" % (
                target_epoch, HEARTBEAT_TABLE, literal(dataset)))
