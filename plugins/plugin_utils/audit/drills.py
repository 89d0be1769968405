# -*- coding: utf-8 -*-
# Private to restorable.backup: the last drill that restored a dataset, from the controller's
# evidence ledger and from the scheduled-drill ledger of every drill host (their facts).
from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from .copies import moment


class DrillIndex:
    """Drill records by (source host, dataset), each with where it was read."""

    def __init__(self, controller: Iterable[dict[str, Any]], facts: Mapping[str, dict[str, Any]]) -> None:
        self._by_dataset: dict[tuple[str, str], list[tuple[str, int, dict[str, Any], str]]] = {}
        order = 0
        for record in controller:
            order = self._add(record, "controller", order)
        for host in sorted(facts):
            for record in (facts[host] or {}).get("drills") or []:
                order = self._add(record, "drill host", order)
        for runs in self._by_dataset.values():
            runs.sort(key=lambda item: (item[0], item[1]))

    def _add(self, record: Any, source: str, order: int) -> int:
        if isinstance(record, dict) and record.get("dataset"):
            when = record.get("finished") or record.get("started") or ""
            self._by_dataset.setdefault((record.get("source_host") or "", record["dataset"]), []).append(
                (when, order, record, source))
        return order + 1

    def history(self, host: str, dataset: str) -> list[tuple[dict[str, Any], str]]:
        """Every record of the dataset, oldest first (a record without a time counts as oldest)."""
        return [(record, source) for _when, _order, record, source in self._by_dataset.get((host, dataset), [])]

    def last(self, host: str, dataset: str, max_age: int, now: datetime.datetime) -> dict[str, Any] | None:
        """The audit document's drill entry of the newest record, or None when no drill restored it."""
        runs = self.history(host, dataset)
        if not runs:
            return None
        record, source = runs[-1]
        finished = moment(record.get("finished") or record.get("started"))
        rto = record.get("rto") or {}
        rpo = record.get("rpo") or {}
        return {"drill": record.get("drill"), "result": record.get("result"), "finished": record.get("finished"),
                "age_seconds": round((now - finished).total_seconds(), 1) if finished else None,
                "max_age_seconds": max_age, "drill_host": record.get("drill_host"),
                "rto_seconds": rto.get("seconds"), "rto_target_seconds": rto.get("target_seconds"),
                "rpo_seconds": rpo.get("seconds"), "rpo_target_seconds": rpo.get("target_seconds"), "source": source,
                "failed_layers": [_layer_text(layer) for layer in record.get("layers") or [] if layer.get("status") == "failed"],
                "reason": record.get("reason") or ""}


def _layer_text(layer: dict[str, Any], limit: int = 160) -> str:
    """'content: 3 files differ', the message cut to one readable line."""
    message = " ".join(str(layer.get("message") or "").split())
    if len(message) > limit:
        message = message[:limit - 3].rstrip() + "..."
    return "%s: %s" % (layer.get("name"), message) if message else str(layer.get("name"))
