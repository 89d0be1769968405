# -*- coding: utf-8 -*-
"""The evidence bucket reader's own logic: settings, heads against a verified chain, the facts
document (the reading itself runs against a moto server in tests/system/evidence)."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.evidence.ledger import EvidenceChainError, Ledger, head_document
from ansible_collections.restorable.backup.plugins.plugin_utils.evidence_bucket import (
    EvidenceBucketError, check_head, fleet_facts_from_bucket, finish_facts)

GOOD = {"endpoint": "http://127.0.0.1:1", "bucket": "ev", "access_key_id": "k", "secret_access_key": "very-secret"}


@pytest.mark.parametrize("bad, words", [({"bucket": ""}, "lack bucket"), ({"verify": "quick"}, "verify: 'quick'")])
def test_bad_settings_are_named_without_the_secret(bad, words):
    with pytest.raises(EvidenceBucketError, match=words) as caught:
        fleet_facts_from_bucket(dict(GOOD, **bad), ["web01"])
    assert "very-secret" not in str(caught.value)


def test_facts_of_a_head_and_its_check_against_the_chain(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger.jsonl"), "web01")
    run = ledger.append("run", {"dataset": "www", "result": "success", "job": {"tier": "agent", "dataset": "www", "target": "nas"}})
    drill = ledger.append("drill", {"drill": "weekly", "dataset": "www", "source_host": "web01", "result": "passed"})
    head = head_document(ledger.digest())
    facts = finish_facts("web01", check_head("web01", head, [run["hash"], drill["hash"]]))
    assert facts == {"format": 1, "host": "web01", "collected": drill["time"], "jobs": {"www": run["body"]},
                     "snapshot_groups": {}, "drills": [drill["body"]], "locks": {}, "tape": {}, "vms": {}}
    with pytest.raises(EvidenceChainError, match="host web01, record 2: the head holds a record the chain does not have"):
        check_head("web01", head, [run["hash"], "0" * 64])
    with pytest.raises(EvidenceChainError, match="tip is not among its records"):
        check_head("web01", dict(head, seq=5), [])
