# -*- coding: utf-8 -*-
"""A scheduled drill's configuration may carry an evidence section: its records join the host's chain."""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.evidence.ledger import Ledger
from ansible_collections.restorable.backup.plugins.module_utils.runtime import drill_cli


def write_private(path, document) -> str:
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)
    return str(path)


def test_drill_records_are_chained_into_the_drill_hosts_ledger(tmp_path):
    env = tmp_path / "evidence.env"
    env.write_text("AWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=s\n")
    env.chmod(0o600)
    evidence = {"ledger": str(tmp_path / "ledger.jsonl"), "endpoint": "http://127.0.0.1:1", "bucket": "ev",
                "env_file": str(env), "retention_days": 7, "host": "drill1"}
    path = write_private(tmp_path / "d.json", {"format": 1, "name": "weekly", "evidence_dir": str(tmp_path / "ev"),
                                               "datasets": [{"dataset": "www"}], "evidence": evidence})
    config = drill_cli.load_drill_config(path)
    records = [{"drill": "weekly", "dataset": "www", "source_host": "web1", "drill_host": "drill1", "result": "passed"},
               {"drill": "weekly", "dataset": "db", "source_host": "web1", "drill_host": "drill1", "result": "failed"}]
    drill_cli._ship(config["evidence"], records)  # pylint: disable=protected-access
    chained = Ledger(evidence["ledger"], "drill1").records()
    expected = [(1, "drill", "drill1", records[0]), (2, "drill", "drill1", records[1])]
    assert [(r["seq"], r["kind"], r["host"], r["body"]) for r in chained] == expected


def test_a_bad_evidence_section_is_a_configuration_error(tmp_path):
    path = write_private(tmp_path / "d.json", {"format": 1, "name": "weekly", "evidence_dir": str(tmp_path),
                                               "datasets": [{}], "evidence": {"ledger": "/l"}})
    with pytest.raises(drill_cli.DrillConfigError, match="d.json: evidence.endpoint"):
        drill_cli.load_drill_config(path)
