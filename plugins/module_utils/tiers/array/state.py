# -*- coding: utf-8 -*-
# Private to restorable.backup: what the array tier remembers between runs of a dataset, in
# <status_dir>/<dataset>.array.json: the snapshots counted since the last export, the points due
# for export that are not on tape yet, and the last exported point with its chain and position
# (the parent of the next incremental `btrfs send -p`).
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ...common.fileio import atomic_write_json, read_json

STATE_FORMAT = 1
STATE_SUFFIX = ".array.json"


def state_path(status_dir: str, dataset: str) -> str:
    return os.path.join(status_dir, dataset + STATE_SUFFIX)


@dataclass
class Exported:
    """A point on tape: the chain it belongs to and its position in it (1: the full)."""

    point: str
    chain: str
    position: int

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "chain": self.chain, "position": self.position}


@dataclass
class ExportState:
    path: str
    since_export: int = 0  # snapshots taken since a point was last made due
    pending: list[str] = field(default_factory=list)  # due for export, oldest first
    last: Exported | None = None

    @classmethod
    def load(cls, path: str) -> "ExportState":
        """The state file; an unreadable one starts afresh (the next export is then a full one)."""
        try:
            document = read_json(path) or {}
        except ValueError:
            document = {}
        state = cls(path, int(document.get("since_export") or 0), [str(p) for p in document.get("pending") or []])
        last = document.get("last_exported")
        if isinstance(last, dict) and last.get("point") and last.get("chain"):
            state.last = Exported(str(last["point"]), str(last["chain"]), int(last.get("position") or 1))
        return state

    def count_snapshot(self, point: str, every: int) -> bool:
        """Count this run's snapshot; make it due when it is the every-th since the last due one."""
        self.since_export += 1
        if self.since_export >= every:
            self.since_export = 0
            if point not in self.pending:
                self.pending.append(point)
            return True
        return False

    def exported(self, done: Exported) -> None:
        self.last = done
        self.pending = [point for point in self.pending if point != done.point]

    def forget(self, points: set[str]) -> None:
        """Points that no longer exist locally cannot be exported any more."""
        self.pending = [point for point in self.pending if point not in points]

    def save(self) -> None:
        atomic_write_json(self.path, {"format": STATE_FORMAT, "since_export": self.since_export,
                                      "pending": list(self.pending),
                                      "last_exported": self.last.to_dict() if self.last else None}, mode=0o600)
