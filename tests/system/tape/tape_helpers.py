# -*- coding: utf-8 -*-
"""Helpers of the tape library system tests: a movable clock, library configurations, streams."""
from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

MB = 1000 * 1000
START = datetime.datetime(2026, 12, 3, 18, 0, tzinfo=datetime.timezone.utc)


class Clock:
    """The library's `now`: starts at START, moves only when a test says so (plus 1 µs a call, so
    stamps stay distinct as real time's are)."""

    def __init__(self, start: datetime.datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime.datetime:
        self.moment += datetime.timedelta(microseconds=1)
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += datetime.timedelta(**delta)


def library_config(name: str, path: Path, driver: str = "directory", slots: int = 8, drives: int = 2,
                   capacity_bytes: int = 2 * MB, pools: dict | None = None, **extra: Any) -> dict:
    """A library configuration document as apply writes it (directory driver: state_dir = path)."""
    document = {"format": 1, "name": name, "driver": driver, "slots": slots, "drives": drives,
                "media": {"type": "LTO-8", "capacity_bytes": capacity_bytes},
                "pools": pools or {"daily": {"retention_days": 7, "barcode_prefix": "DA", "worm": False,
                                             "vault": True}},
                "vault": {"destination": "ironmountain-fra"}}
    if driver == "directory":
        document.update(path=str(path), state_dir=str(path))
    document.update(extra)
    return document


def write_config(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    return path


def stream_meta(group: str, point: str, base: str | None = None, volume_index: int = 0) -> dict:
    return {"group": group, "point": point, "volume": "/srv/vol%d" % volume_index, "volume_index": volume_index,
            "kind": "incremental" if base else "full", "base": base, "chain": "c-" + group, "position": 1}


def export_point(library, group: str, point: str, data: bytes | Path, base: str | None = None,
                 pool: str = "daily") -> dict:
    """One stream written and its point committed, as the array tier exports a snapshot."""
    meta = stream_meta(group, point, base)
    if isinstance(data, Path):
        with open(data, "rb", buffering=0) as source:
            record = library.write_stream(pool, meta, source)
    else:
        record = library.write_stream(pool, meta, io.BytesIO(data))
    library.commit_point({"group": group, "point": point, "time": point, "kind": meta["kind"], "chain": meta["chain"],
                          "position": 1, "base": base, "pool": pool, "streams": [record["id"]],
                          "manifest": {"group": group, "backup_label": "START WAL LOCATION: 0/2000028"}})
    return record


def read_all(library, stream_id: str) -> bytes:
    sink = io.BytesIO()
    library.read_stream(stream_id, sink)
    return sink.getvalue()


def attributes(path: str) -> str:
    """lsattr's flag column, independent of the library's own ioctl reading."""
    out = subprocess.run(["lsattr", "-d", path], capture_output=True, text=True, check=True).stdout
    return out.split()[0]


def catalog_document(library) -> dict:
    with open(library.catalog.path, encoding="utf-8") as handle:
        return json.load(handle)


def flip_byte(path: str, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        value = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([value ^ 0x40]))
        handle.flush()
        os.fsync(handle.fileno())
