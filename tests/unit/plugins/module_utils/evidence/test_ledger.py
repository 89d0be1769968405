# -*- coding: utf-8 -*-
"""The evidence ledger: records chain by hash, any change, gap or reordering names the host and
the record, the file is read from its end, and shipping state survives runs."""
from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.evidence import ledger as ledger_mod
from ansible_collections.restorable.backup.plugins.module_utils.evidence.ledger import (
    EvidenceChainError, Ledger, canonical, make_record, record_hash, verify_chain)
from ansible_collections.restorable.backup.plugins.module_utils.evidence.shipper import (
    EvidenceConfig, object_key, record_evidence)

WHEN = "2026-12-03T10:00:00Z"


def chain(host: str = "web01", count: int = 4) -> list[dict]:
    records, prev = [], ""
    for seq in range(1, count + 1):
        record = make_record(host, seq, prev, "run", {"dataset": "www", "n": seq}, WHEN)
        records.append(record)
        prev = record["hash"]
    return records


def test_hash_is_sha256_of_canonical_json_without_the_hash():
    record = chain(count=1)[0]
    assert record["prev"] == "" and record["seq"] == 1
    text = canonical(record).decode()
    assert '"hash"' not in text and ", " not in text and text.startswith('{"body":')
    assert record["hash"] == record_hash(record)
    assert json.loads(text) == {k: v for k, v in record.items() if k != "hash"}


def test_a_whole_chain_verifies_and_returns_its_tip():
    records = chain()
    assert verify_chain("web01", records) == records[-1]["hash"]
    assert verify_chain("web01", records[2:], 3, records[1]["hash"]) == records[-1]["hash"]


@pytest.mark.parametrize("damage, seq, words", [
    (lambda r: r[1]["body"].update(n=99), 2, "changed after it was written"),
    (lambda r: r.pop(1), 2, "has seq 3 where 2 was due"),
    (lambda r: r.reverse(), 1, "has seq 4 where 1 was due"),
    (lambda r: r[2].update(prev="0" * 64), 3, "changed after it was written"),
    (lambda r: r[2].update(prev="0" * 64, hash=record_hash(dict(r[2], prev="0" * 64))), 3, "does not follow"),
    (lambda r: r[0].update(host="db01"), 1, "belongs to host 'db01'"),
    (lambda r: r[3].pop("time"), 4, "lacks time"),
    (lambda r: r[3].update(extra=1), 4, "unknown fields extra"),
])
def test_damage_names_host_and_record(damage, seq, words):
    records = copy.deepcopy(chain())
    damage(records)
    with pytest.raises(EvidenceChainError) as caught:
        verify_chain("web01", records)
    assert caught.value.host == "web01" and caught.value.seq == seq
    assert "host web01, record %d" % seq in str(caught.value) and words in str(caught.value)


def test_a_rehashed_forgery_still_breaks_the_next_link():
    records = copy.deepcopy(chain())
    records[1]["body"]["n"] = 99
    records[1]["hash"] = record_hash(records[1])  # the forger recomputes the record's own hash
    with pytest.raises(EvidenceChainError, match="record 3: does not follow"):
        verify_chain("web01", records)


def test_ledger_appends_chains_and_reads_from_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_mod, "_BLOCK", 64)  # lines cross block boundaries
    ledger = Ledger(str(tmp_path / "evidence" / "ledger.jsonl"), "web01")
    assert ledger.tip() == (0, "") and ledger.records() == []
    written = [ledger.append("run", {"dataset": "www", "pad": "x" * n}) for n in (1, 150, 3, 70)]
    assert ledger.tip() == (4, written[-1]["hash"])
    assert ledger.records() == written
    assert ledger.records_after(2) == written[2:]
    assert ledger.verify() == written[-1]["hash"]
    assert ledger.shipped() == 0
    ledger.mark_shipped(3)
    assert ledger.shipped() == 3 and Ledger(ledger.path, "web01").records_after(3) == written[3:]


def test_ledger_refuses_unknown_kinds(tmp_path):
    with pytest.raises(ValueError, match="kind 'backup'"):
        Ledger(str(tmp_path / "l.jsonl"), "web01").append("backup", {})


def test_object_keys_sort_by_seq():
    assert object_key("/evidence/", "web01", 7) == "evidence/web01/000000000007.json"
    assert object_key("e", "h", 10) > object_key("e", "h", 9)


CONFIG = {"ledger": "/var/lib/restorable/evidence/ledger.jsonl", "endpoint": "http://127.0.0.1:9", "bucket": "ev",
          "env_file": "/etc/restorable/secrets/evidence.env", "retention_days": 30}


def test_evidence_config_round_trip_and_errors():
    config = EvidenceConfig.from_dict(dict(CONFIG, job={"tier": "agent", "dataset": "www", "target": "nas"}))
    assert config.prefix == "evidence" and EvidenceConfig.from_dict(config.to_dict()) == config
    for bad, field in (({"retention_days": 0}, "retention_days"), ({"bucket": ""}, "bucket"),
                       ({"retention_days": True}, "retention_days"), ({"bukket": "x"}, "unknown option bukket")):
        with pytest.raises(ValueError, match=field):
            EvidenceConfig.from_dict(dict(CONFIG, **bad))


def test_record_evidence_never_raises_and_keeps_unshipped_records(tmp_path):
    env = tmp_path / "evidence.env"
    env.write_text("AWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=very-secret\n")
    env.chmod(0o600)
    config = EvidenceConfig.from_dict(dict(CONFIG, ledger=str(tmp_path / "ledger.jsonl"), env_file=str(env),
                                           endpoint="http://127.0.0.1:1"))  # nothing listens on port 1
    first = record_evidence(config, "web01", "run", {"dataset": "www"})
    second = record_evidence(config, "web01", "drill", {"dataset": "www"}, {"dataset": "db"})
    assert first["seq"] == 1 and second["seq"] == 3 and second["shipped"] == 0
    assert "unreachable" in second["problem"] and "retried at the next run" in second["problem"]
    assert "very-secret" not in second["problem"]
    ledger = Ledger(config.ledger, "web01")
    assert [r["kind"] for r in ledger.records_after(ledger.shipped())] == ["run", "drill", "drill"]
    assert record_evidence(None, "web01", "run", {}) is None


def test_the_digest_keeps_the_newest_run_per_job_and_the_drill_history(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger.jsonl"), "web01")
    for n in range(3):
        ledger.append("run", {"dataset": "www", "n": n})
    ledger.append("run", {"dataset": "db", "n": 0})
    for n in range(ledger_mod.DRILL_HISTORY + 2):
        ledger.append("drill", {"drill": "weekly", "dataset": "www", "source_host": "web01", "n": n})
    digest = ledger.digest()
    assert digest["seq"] == 4 + ledger_mod.DRILL_HISTORY + 2 and digest["hash"] == ledger.tip()[1]
    assert {job: r["body"]["n"] for job, r in digest["jobs"].items()} == {"www": 2, "db": 0}
    assert [r["body"]["n"] for r in digest["drills"]["web01|www|weekly"]] == list(range(2, ledger_mod.DRILL_HISTORY + 2))
    (tmp_path / "ledger.jsonl.digest").unlink()  # rebuilt from the ledger when missing
    assert Ledger(ledger.path, "web01").digest() == digest


def test_a_head_holds_each_record_as_the_text_its_hash_was_taken_of(tmp_path):
    ledger = Ledger(str(tmp_path / "ledger.jsonl"), "web01")
    written = [ledger.append("run", {"dataset": name}) for name in ("www", "db", "www")]
    head = json.loads(json.dumps(ledger_mod.head_document(ledger.digest())))
    assert head["seq"] == 3 and ledger_mod.head_records("web01", head) == [written[1], written[2]]
    head["records"][0]["canonical"] = head["records"][0]["canonical"].replace('"db"', '"xx"')
    with pytest.raises(EvidenceChainError, match="host web01, record head: record 0 of the head does not match its hash"):
        ledger_mod.head_records("web01", head)
    with pytest.raises(EvidenceChainError, match="not a digest of this host"):
        ledger_mod.head_records("db01", head)
