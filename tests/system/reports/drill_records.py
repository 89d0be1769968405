# -*- coding: utf-8 -*-
"""Drill records as the drill engine writes them (format 1), for a week of nightly runs of two
datasets: web01's www (a 249-byte index and its tree, restored in about half a second against
a 15 min RTO) and db01's orders (PostgreSQL, one run failed its content check)."""
from __future__ import annotations

import datetime
from typing import Any

UTC = datetime.timezone.utc
FIRST = datetime.datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
RTO_WWW = (0.42, 0.55, 0.48, 0.61, 0.5, 0.47, 0.5)  # seconds, one a night
RPO_WWW = (1510.0, 2230.0, 1890.0, 2710.0, 1260.0, 3010.0, 2400.0)


def iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _layers(rto: float, failed: str | None = None) -> list[dict[str, Any]]:
    names = ("sandbox", "recovery_point", "integrity", "restore", "freshness", "content", "rto")
    messages = {"sandbox": "fresh sandbox /var/tmp/restorable-drill", "recovery_point": "point chosen: latest",
                "integrity": "restic check --read-data-subset 5% passed", "restore": "restored 12 files",
                "freshness": "newest file is 41 min old", "content": "12 of 12 sampled files match", "rto": "within RTO"}
    return [{"name": name, "status": "failed" if name == failed else "ok",
             "message": "3 of 12 sampled files differ" if name == failed else messages[name],
             "seconds": round(rto * 0.6, 3) if name == "restore" else 0.01} for name in names]


def record(night: int, dataset: str = "www", host: str = "web01", rto: float | None = None,
           rpo: float | None = None, failed: str | None = None, size: int = 249) -> dict[str, Any]:
    started = FIRST + datetime.timedelta(days=night)
    rto = RTO_WWW[night] if rto is None else rto
    rpo = RPO_WWW[night] if rpo is None else rpo
    return {
        "format": 1, "drill": "nightly", "dataset": dataset, "tier": "agent", "source_host": host, "drill_host": "drill01",
        "run_id": "%s-%s-0000%04d" % (dataset, started.strftime("%Y%m%dT%H%M%SZ"), night), "started": iso(started),
        "finished": iso(started + datetime.timedelta(seconds=rto + 1)), "result": "failed" if failed else "passed",
        "reason": "%s failed" % failed if failed else "", "sandbox": "/var/tmp/restorable-drill", "restore_path": None,
        "recovery_point": {"id": "9f3c2a%010d" % night, "short_id": "9f3c2a%02d" % night, "time": iso(started - datetime.timedelta(seconds=rpo))},
        "newest_point": None, "files": 12, "bytes": size, "throughput_bytes_per_second": round(size / (rto * 0.6), 1),
        "rto": {"seconds": rto, "target_seconds": 900, "met": True},
        "rpo": {"seconds": rpo, "target_seconds": 3600, "met": rpo <= 3600},
        "layers": _layers(rto, failed),
    }


def nights() -> list[tuple[datetime.datetime, list[dict[str, Any]]]]:
    """(the time each run's evidence is written, its records) for seven nights."""
    runs = []
    for night in range(len(RTO_WWW)):
        orders = record(night, "orders", "db01", rto=38.0 + night, rpo=300.0 + 20 * night,
                        failed="content" if night == 4 else None, size=(3 << 30) + night * (40 << 20))
        runs.append((FIRST + datetime.timedelta(days=night, minutes=5), [record(night), orders]))
    return runs
