# -*- coding: utf-8 -*-
"""Fleet-wide controller work pauses the cycle collector and always restores it."""
from __future__ import annotations

import gc

import pytest

from ansible_collections.restorable.backup.plugins.plugin_utils.heap import cycle_collection_paused
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator


def test_the_collector_is_paused_inside_and_back_after_an_error():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with cycle_collection_paused():
            assert not gc.isenabled()
            raise RuntimeError("planning failed")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off():
    gc.disable()
    try:
        with cycle_collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_validation_runs_with_the_collector_paused(monkeypatch):
    seen = []
    monkeypatch.setattr(FleetValidator, "validate_host", lambda self, *args: seen.append(gc.isenabled()) or [])
    FleetValidator().validate({"web01": {}, "web02": {}})
    assert seen == [False, False] and gc.isenabled()
