# -*- coding: utf-8 -*-
"""Freshness on a drill host without the source's status: the restored canary must be the
dataset's own, written as its recovery point was taken."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from drill_helpers import HOST, Source


def freshness(record: dict) -> dict:
    return next(item for item in record["layers"] if item["name"] == "freshness")


def cross_host(source: Source, sandbox: Path) -> dict:
    # What a drill host knows: where the canary lives, not the token the backup recorded.
    canary = source.status()["canary_path"]
    return source.drill(sandbox, status={}, canary_path=canary, checks=["freshness"])


def test_canary_of_the_point_passes_without_the_token(source: Source, tmp_path: Path) -> None:
    layer = freshness(cross_host(source, tmp_path / "sandbox"))
    assert layer["status"] == "ok", layer
    assert "token recorded only on the source host" in layer["message"]


def test_a_point_holding_a_stale_canary_fails(source: Source, tmp_path: Path) -> None:
    canary = Path(source.status()["canary_path"])
    document = json.loads(canary.read_text())
    # A copy taken from stale data: its canary is two hours older than the point.
    document["written"] = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")
    canary.write_text(json.dumps(document))
    source.restic("backup", "--host", HOST, "--tag", "dataset:%s" % source.dataset, str(source.data), str(canary))
    record = cross_host(source, tmp_path / "sandbox")
    layer = freshness(record)
    assert record["result"] == "failed" and layer["status"] == "failed", layer
    assert layer["message"].startswith("stale canary: written ") and "before the point's backup started" in layer["message"]


def test_a_canary_of_another_dataset_fails(source: Source, tmp_path: Path) -> None:
    canary = Path(source.status()["canary_path"])
    document = json.loads(canary.read_text())
    document["dataset"] = "other"
    canary.write_text(json.dumps(document))
    source.restic("backup", "--host", HOST, "--tag", "dataset:%s" % source.dataset, str(source.data), str(canary))
    layer = freshness(cross_host(source, tmp_path / "sandbox"))
    assert layer["status"] == "failed" and "belongs to other on %s" % HOST in layer["message"], layer
