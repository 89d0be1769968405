# -*- coding: utf-8 -*-
"""The two kinds of profiles: each type declares the kinds it implements, and a tier asking for a
kind a type does not implement is refused before anything is built, naming the type."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.consistency import base
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import (
    FreezingProfile, QuiesceFailed, StreamingProfile, freezing_profile_from_config, profile_from_config,
    streaming_profile_from_config)

CONFIGS = {
    "postgresql": {"type": "postgresql"},
    "mariadb": {"type": "mariadb"},
    "sqlite": {"type": "sqlite", "sqlite": {"databases": ["/srv/app.db"]}},
    "fsfreeze": {"type": "fsfreeze", "fsfreeze": {"mountpoints": ["/srv/data"]}},
    "custom": {"type": "custom", "pre": [{"argv": ["true"]}]},
    "none": {"type": "none"},
}
STREAMING = ["postgresql", "mariadb", "sqlite", "custom", "none"]
FREEZING = ["postgresql", "mariadb", "sqlite", "fsfreeze", "custom", "none"]


def test_every_type_declares_its_kinds(tmp_path):
    for name, config in CONFIGS.items():
        profile = profile_from_config(config, str(tmp_path))
        assert isinstance(profile, StreamingProfile) == (name in STREAMING), name
        assert isinstance(profile, FreezingProfile) == (name in FREEZING), name


@pytest.mark.parametrize("name", STREAMING)
def test_streaming_types_are_built_for_file_level_tiers(tmp_path, name):
    profile = streaming_profile_from_config(CONFIGS[name], str(tmp_path), str(tmp_path))
    assert isinstance(profile, StreamingProfile) and profile.kind == name


@pytest.mark.parametrize("name", FREEZING)
def test_freezing_types_are_built_for_snapshot_tiers(tmp_path, name):
    profile = freezing_profile_from_config(CONFIGS[name], str(tmp_path), str(tmp_path))
    assert isinstance(profile, FreezingProfile) and profile.kind == name


def test_a_type_that_only_freezes_is_refused_as_streaming_naming_it(tmp_path):
    with pytest.raises(QuiesceFailed) as refused:
        streaming_profile_from_config(CONFIGS["fsfreeze"], str(tmp_path))
    assert str(refused.value) == ("profile type fsfreeze cannot make consistent copies or dumps for a repository "
                                  "(file-level tiers)")


def test_a_type_that_only_streams_is_refused_as_freezing_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(base.PROFILE_TYPES, "dumper", ("base", "StreamingProfile"))
    assert isinstance(streaming_profile_from_config({"type": "dumper"}, str(tmp_path)), StreamingProfile)
    with pytest.raises(QuiesceFailed) as refused:
        freezing_profile_from_config({"type": "dumper"}, str(tmp_path))
    assert str(refused.value) == "profile type dumper cannot freeze the application around a snapshot (snapshot tiers)"


def test_the_kind_is_checked_before_the_profile_is_built(tmp_path):
    # fsfreeze without mountpoints would fail to build: the kind is the reason given.
    with pytest.raises(QuiesceFailed, match="profile type fsfreeze cannot make consistent copies"):
        streaming_profile_from_config({"type": "fsfreeze"}, str(tmp_path))


@pytest.mark.parametrize("factory", [streaming_profile_from_config, freezing_profile_from_config])
def test_unknown_types_are_refused_by_both_kinds(tmp_path, factory):
    with pytest.raises(QuiesceFailed, match="unknown consistency profile type 'tape'"):
        factory({"type": "tape"}, str(tmp_path))
