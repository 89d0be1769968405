# -*- coding: utf-8 -*-
"""RTO counts the restore, not the verification restic runs in the same command."""
from __future__ import annotations

import os

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.storage.restic import go_duration_seconds
from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import (
    OK, DrillEngine, DrillSpec, Layer, RecoveryPoint, RestoreDriver, RestoreStats, parse_time)

POINT_TIME = parse_time("2026-11-25T05:00:00Z")


@pytest.mark.parametrize("text, seconds", [
    ("26ms", 0.026), ("1.5s", 1.5), ("1m2.5s", 62.5), ("1h0m3s", 3603.0), ("750µs", 0.00075), ("0s", 0.0)])
def test_go_durations_as_restic_prints_them(text, seconds):
    assert go_duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "12", "1.5x", "s1"])
def test_not_a_go_duration(text):
    assert go_duration_seconds(text) is None


class TimedDriver(RestoreDriver):
    """Restores one file and says its restore alone took restore_seconds."""

    tier = "fake"

    def __init__(self, restore_seconds):
        self.restore_seconds = restore_seconds

    def points(self):
        return [RecoveryPoint("p1", POINT_TIME)]

    def restore(self, point, target, sample):
        with open(os.path.join(target, "f"), "w", encoding="utf-8") as handle:
            handle.write("data")
        return RestoreStats(seconds=self.restore_seconds)

    def verify_layers(self, point, target, checks):
        return [Layer("content", OK, "verified", 7.0)]


class Clock:
    """A monotonic clock that advances 100 s at every reading."""

    def __init__(self):
        self.value = 0.0

    def __call__(self):
        self.value += 100.0
        return self.value


def run(tmp_path, restore_seconds):
    spec = DrillSpec(drill="d", dataset="www", tier="fake", source_host="web", drill_host="web",
                     sandbox=str(tmp_path / "sandbox"), protected_paths=[], checks=["content"], rto_seconds=50.0)
    return DrillEngine(spec, TimedDriver(restore_seconds), now=lambda: POINT_TIME, monotonic=Clock()).run()


def test_rto_is_the_restore_time_the_driver_measured(tmp_path):
    record = run(tmp_path, 2.5)
    assert record["rto"]["seconds"] == 2.5
    assert record["rto"]["met"] is True
    restore = [layer for layer in record["layers"] if layer["name"] == "restore"][0]
    assert restore["seconds"] == 2.5


def test_without_a_driver_figure_the_engine_clock_counts(tmp_path):
    record = run(tmp_path, None)
    assert record["rto"]["seconds"] == 100.0
    assert record["rto"]["met"] is False
