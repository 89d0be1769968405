# -*- coding: utf-8 -*-
"""Which files of the configuration directory the job module may remove: its own job
configurations (restic tiers name a repository, btrfs CDP jobs their tier), nothing else."""
from __future__ import annotations

import json

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.converge.jobs import _is_job_config


@pytest.mark.parametrize("document, ours", [
    ({"format": 1, "dataset": "www", "repository": {"url": "/srv/restic"}}, True),
    ({"format": 1, "dataset": "files", "tier": "cdp", "options": {"source": {"type": "btrfs"}}}, True),
    ({"format": 1, "dataset": "db", "tier": "array", "options": {"volumes": ["/srv/db"]}}, True),
    ({"format": 1, "dataset": "files", "tier": "agent"}, False),
    ({"dataset": "files", "tier": "cdp"}, False),
    (["format", "dataset", "repository"], False),
])
def test_only_job_configurations_are_ours(tmp_path, document, ours):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(document))
    assert _is_job_config(str(path)) is ours


def test_unreadable_files_are_not_ours(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    assert _is_job_config(str(path)) is False
