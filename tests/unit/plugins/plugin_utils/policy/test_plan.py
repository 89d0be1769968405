# -*- coding: utf-8 -*-
"""The plan's lines name what each dataset keeps and how often retention runs."""
from __future__ import annotations

from ansible_collections.restorable.backup.plugins.plugin_utils.policy.plan import plan_lines

POLICY = {
    "restorable_targets": {"nas": {"type": "local", "path": "/srv/backup"}},
    "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
    "restorable_datasets": {
        "www": {"tier": "agent", "paths": ["/var/www"], "targets": ["nas"], "schedule": "nightly",
                "retention": {"daily": 7, "weekly": 4, "prune_every": 3}},
        "etc": {"tier": "agent", "paths": ["/etc"], "targets": ["nas"], "schedule": "nightly",
                "retention": {"last": 5}},
    },
}


def keep_line(dataset: str) -> str:
    lines = plan_lines(POLICY)
    start = next(index for index, line in enumerate(lines) if line.startswith("dataset %s " % dataset))
    return next(line for line in lines[start:] if line.startswith("  keep: "))


def test_prune_cadence_is_not_shown_as_a_keep_rule():
    assert keep_line("www") == "  keep: daily 7, weekly 4, applied every 3 backups"


def test_without_a_cadence_only_the_rules():
    assert keep_line("etc") == "  keep: last 5"
