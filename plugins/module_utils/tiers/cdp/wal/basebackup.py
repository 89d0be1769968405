# -*- coding: utf-8 -*-
# Private to restorable.backup: base backups of a CDP PostgreSQL dataset in its restic
# repository, and the retention that keeps whole chains (a kept base and every WAL file after it).
"""Base backups.

``pg_basebackup -D - -Ft -X none`` streams the whole cluster as one tar into the repository,
as ``postgresql/base.tar`` like the agent tier's basebackup profile, tagged with the dataset,
``pg-base`` and the backup's label. ``-X none`` rather than ``-X fetch``: the WAL the backup
needs (start to stop) is in the WAL store anyway, verified like all WAL, and restores need the
store for PITR in any case; ``fetch`` would copy it a second time and, worse, fails under write
load when the server recycles a segment before the end of a long backup (it collects the WAL
only at the end). With ``-X none`` the server does not end the backup before the stop segment
and the backup history file are archived; the run then reads that history file from the store
(start and stop LSN and WAL file, timeline) and checks that every segment from start to stop is
stored. Those facts go into a second, small snapshot beside the tar (``postgresql/base.json``,
tagged ``pg-base-meta``, ``base:<tar snapshot id>`` and one ``key:value`` tag per fact, so that
listing the snapshots lists the chain without reading a file). A tar without that snapshot
(a run that died in between) is no recovery point. The times are the server's clock just before
and just after the backup: a point-in-time restore compares them with commit times.

Retention applies the job's keep rules to the base backups (the newest is always kept), forgets
the others with their facts, then deletes from the WAL store every WAL file older than the start
segment of the oldest kept base backup (timeline history files always stay).
"""
from __future__ import annotations

import datetime
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from ....consistency.postgresql import QuiesceFailed, label_fields, wal_segments
from ....core.jobspec import DATASET_TAG_PREFIX
from ....core.retention import keep_by_rules
from ....drill.application import PG_BASE_TAR
from ....drill.engine import parse_time
from ....storage.repository import BackupSummary, Repository, RepositoryError
from .names import is_backup_history, is_history, is_wal_name, position, previous_segment, timeline_of
from .server import PgServer, ServerError
from .store import Store, StoreError

BASE_TAG = "pg-base"
META_TAG = "pg-base-meta"
META_STREAM = "postgresql/base.json"
HISTORY_WAIT = 60.0
FACTS = ("label", "timeline", "start_wal", "start_lsn", "stop_wal", "stop_lsn", "start_time", "stop_time",
         "segment_size")
CLOCK_SQL = ("SELECT json_build_object('now', extract(epoch FROM clock_timestamp()), "
             "'wal', pg_walfile_name(pg_current_wal_lsn()), "
             "'segment_size', (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'))")


class BaseBackupError(Exception):
    """A base backup could not be taken or listed; the message says why."""


@dataclass
class BaseBackup:
    """One base backup: its tar snapshot, its facts snapshot, and the facts."""

    id: str
    meta_id: str
    label: str
    timeline: int
    start_wal: str
    start_lsn: str
    stop_wal: str
    stop_lsn: str
    start_time: datetime.datetime
    stop_time: datetime.datetime
    segment_size: int

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def facts(self) -> dict[str, Any]:
        document = {key: value for key, value in asdict(self).items() if key in FACTS}
        document["start_time"] = iso_time(self.start_time)
        document["stop_time"] = iso_time(self.stop_time)
        return document

    def tags(self, dataset: str) -> list[str]:
        return [DATASET_TAG_PREFIX + dataset, META_TAG, "base:" + self.id] + [
            "%s:%s" % item for item in sorted(self.facts().items())]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.facts(), id=self.id, meta_id=self.meta_id)

    @classmethod
    def from_meta(cls, snapshot: dict[str, Any], tar_id: str) -> "BaseBackup":
        facts = dict(str(tag).split(":", 1) for tag in snapshot.get("tags") or [] if ":" in str(tag))
        try:
            return cls(tar_id, snapshot["id"], facts["label"], int(facts["timeline"]), facts["start_wal"],
                       facts["start_lsn"], facts["stop_wal"], facts["stop_lsn"], parse_time(facts["start_time"]),
                       parse_time(facts["stop_time"]), int(facts["segment_size"]))
        except (KeyError, ValueError) as exc:
            raise BaseBackupError("the facts snapshot %s of base backup %s are incomplete: %s" % (
                str(snapshot.get("id"))[:8], tar_id[:8], exc)) from None


def iso_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_time(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def wal_location(value: str) -> tuple[str, str]:
    """(LSN, WAL file) of `0/2000028 (file 000000010000000000000002)` in a backup history file."""
    lsn, sep, rest = value.partition(" (file ")
    if not sep or not rest.endswith(")"):
        raise BaseBackupError("unexpected WAL location %r in a backup history file" % value)
    return lsn.strip(), rest[:-1]


# -- listing ------------------------------------------------------------------------------------

def list_base_backups(repo: Repository, dataset: str) -> tuple[list[BaseBackup], list[dict[str, Any]]]:
    """(complete base backups oldest first, tar snapshots without facts) of a dataset."""
    snapshots = repo.snapshots(tags=[DATASET_TAG_PREFIX + dataset])
    tars = {snap["id"]: snap for snap in snapshots if BASE_TAG in (snap.get("tags") or [])}
    bases = []
    for snap in snapshots:
        if META_TAG not in (snap.get("tags") or []):
            continue
        base_id = next((str(t)[5:] for t in snap["tags"] if str(t).startswith("base:")), "")
        tar_id = next((i for i in tars if base_id and i.startswith(base_id)), None)
        if tar_id is not None:
            bases.append(BaseBackup.from_meta(snap, tar_id))
    referenced = {base.id for base in bases}
    orphans = [snap for tar_id, snap in tars.items() if tar_id not in referenced]
    return sorted(bases, key=lambda base: (base.stop_time, base.id)), orphans


# -- taking one ---------------------------------------------------------------------------------

def take_base_backup(repo: Repository, server: PgServer, store: Store, dataset: str, host: str,
                     timeout: float | None = None, history_wait: float = HISTORY_WAIT) -> tuple[BaseBackup, BackupSummary]:
    """Stream a base backup into repo and record its facts beside it (see the module docstring)."""
    label = "restorable-%s-%s" % (dataset, secrets.token_hex(6))
    before = server.row(CLOCK_SQL)
    summary = repo.backup_stream(PG_BASE_TAR, server.basebackup_argv(label), server.env(), host,
                                 tags=[DATASET_TAG_PREFIX + dataset, BASE_TAG, "label:" + label], timeout=timeout)
    try:
        after = server.row(CLOCK_SQL)
        base = describe_backup(summary.snapshot_id or "", label, before, after,
                               find_backup_history(store, before["wal"], label, history_wait))
        require_wal(store, base)
        facts = json.dumps(dict(base.facts(), id=base.id, dataset=dataset), sort_keys=True)
        meta = repo.backup_stream(META_STREAM, ["printf", "%s\n", facts], {}, host, tags=base.tags(dataset),
                                  timeout=timeout)
    except (BaseBackupError, ServerError, StoreError, RepositoryError):
        try:  # without its facts the tar is no recovery point
            repo.forget_points([summary.snapshot_id or ""], prune=False)
        except RepositoryError:
            pass  # the failure to report is the first; retention removes the tar later
        raise
    base.meta_id = meta.snapshot_id or ""
    return base, summary


def describe_backup(tar_id: str, label: str, before: dict[str, Any], after: dict[str, Any],
                    fields: dict[str, str]) -> BaseBackup:
    """The facts of a base backup from its backup history file and the server's clock around it."""
    start_lsn, start_wal = wal_location(fields.get("START WAL LOCATION", ""))
    stop_lsn, stop_wal = wal_location(fields.get("STOP WAL LOCATION", ""))
    timeline = int(fields["START TIMELINE"]) if fields.get("START TIMELINE") else timeline_of(start_wal)
    return BaseBackup(tar_id, "", label, timeline, start_wal, start_lsn, stop_wal, stop_lsn, epoch_time(before["now"]),
                      epoch_time(after["now"]), int(before["segment_size"]))


def find_backup_history(store: Store, since: str, label: str, wait: float) -> dict[str, str]:
    """The fields of the backup history file of label, archived after segment since."""
    deadline = time.monotonic() + wait
    seen: set[str] = set()
    while True:
        for name in store.list(since):
            if is_backup_history(name) and name not in seen:
                seen.add(name)
                fields = label_fields(store.read(name).decode("utf-8", "replace"))
                if fields.get("LABEL") == label:
                    return fields
        if time.monotonic() > deadline:
            raise BaseBackupError("the backup history file of %s did not reach %s within %.0fs: is archive_command "
                                  "working?" % (label, store.describe(), wait))
        time.sleep(0.5)


def require_wal(store: Store, base: BaseBackup) -> None:
    """Every segment from the backup's start to its stop must be stored."""
    try:
        needed = wal_segments(base.start_wal, base.stop_wal, base.segment_size)
    except QuiesceFailed as exc:
        raise BaseBackupError(str(exc)) from None
    stored = set(store.list(previous_segment(needed[0], base.segment_size)))
    missing = [name for name in needed if name not in stored]
    if missing:
        raise BaseBackupError("base backup %s needs WAL segment(s) %s, which %s does not hold" % (
            base.label, ", ".join(missing[:5]), store.describe()))


# -- retention ----------------------------------------------------------------------------------

def wal_before(names: Sequence[str], floor: str, segment_size: int) -> list[str]:
    """The WAL files no base backup starting at segment floor (or later) needs: segments, partial
    and backup history files of positions before floor's, on any timeline. History files stay."""
    limit = position(floor, segment_size)
    return [name for name in names if is_wal_name(name) and not is_history(name)
            and position(name[:24], segment_size) < limit]


def apply_retention(repo: Repository, store: Store, dataset: str, rules: dict[str, Any], prune: bool = True,
                    on_floor: Callable[[str], None] | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Keep rules over the base backups, then the WAL only forgotten ones needed.

    on_floor(segment) is called with the oldest kept start segment before any WAL is deleted
    (the continuity state records it first, so a crash in between never looks like a gap)."""
    bases, orphans = list_base_backups(repo, dataset)
    if not bases:
        return {"kept": 0, "forgot": [], "wal_deleted": 0, "floor": None}
    keep = keep_by_rules([(base.id, base.stop_time) for base in bases], rules) | {bases[-1].id}
    dropped = [base for base in bases if base.id not in keep]
    # A tar without facts from before the newest complete base backup is a run that died.
    stale = [snap["id"] for snap in orphans if parse_time(snap["time"]) < bases[-1].start_time]
    forget = [point for base in dropped for point in (base.id, base.meta_id)] + stale
    if forget:
        repo.forget_points(forget, prune=prune, timeout=timeout)
    kept = [base for base in bases if base.id in keep]
    floor = min(kept, key=lambda base: position(base.start_wal, base.segment_size))
    if on_floor is not None:
        on_floor(floor.start_wal)
    doomed = wal_before(store.list(), floor.start_wal, floor.segment_size)
    store.delete(doomed)
    return {"kept": len(kept), "forgot": [base.short_id for base in dropped] + [i[:8] for i in stale],
            "wal_deleted": len(doomed), "floor": floor.start_wal}
