# -*- coding: utf-8 -*-
"""The recorded RTO is the restore's own time: restic's verification in the same command is
timed separately and reported by the content layer."""
from __future__ import annotations

import time
from pathlib import Path

from drill_helpers import Source


def layer(record: dict, name: str) -> dict:
    return next(item for item in record["layers"] if item["name"] == name)


def test_rto_leaves_out_restics_verification(source: Source, tmp_path: Path) -> None:
    began = time.monotonic()
    record = source.drill(tmp_path / "sandbox", checks=["content"])
    wall = time.monotonic() - began
    assert record["result"] == "passed", record
    restore, content = layer(record, "restore"), layer(record, "content")
    assert content["seconds"] > 0, "restic reported no verification time"
    assert record["rto"]["seconds"] == round(restore["seconds"], 3)
    # Restore and verification are parts of one restic command inside the drill.
    assert restore["seconds"] + content["seconds"] < wall
    assert content["details"]["verified_files"] == record["files"]
