# -*- coding: utf-8 -*-
"""The evidence ledger end to end: real runs of the installed agent (restic, local repository)
chain their status into the host's ledger and ship it to an Object Lock bucket on the moto server;
the controller's reader verifies the chains and rebuilds the host facts.

What moto enforces here (and S3 does too): If-None-Match: * on an existing key is refused (412);
deleting a version under COMPLIANCE retention is refused (AccessDenied). A PUT without If-None-Match
is accepted by S3 and moto alike (versioning keeps the old version): the reader finds the second
version and reports the overwrite. Moto does not enforce IAM policies, so the "host" and the
"auditor" keys are both accepted; which keys may do what is AWS's part, not tested here."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from s3_tape_helpers import env_file, lock_bucket
from ansible_collections.restorable.backup.plugins.module_utils.evidence.ledger import (
    EvidenceChainError, Ledger, head_document, record_hash)
from ansible_collections.restorable.backup.plugins.module_utils.evidence.shipper import (
    EvidenceConfig, Shipper, object_key, record_bytes, record_evidence)
from ansible_collections.restorable.backup.plugins.module_utils.storage.s3api import S3Client
from ansible_collections.restorable.backup.plugins.plugin_utils.evidence_bucket import fleet_facts_from_bucket

RETENTION_DAYS = 3
PASSWORD = "evidence-restic-password-5d2c"


@pytest.fixture(scope="module")
def world(evidence_agent, moto_server, tmp_path_factory, restic_binary):
    """An Object Lock bucket, the host's keys in its env file and a local restic repository."""
    root = tmp_path_factory.mktemp("evidence-world")
    bucket = lock_bucket(moto_server, "evidence")
    env = env_file(root / "secrets" / "evidence.env", moto_server)
    password = root / "secrets" / "restic.password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    repo = root / "repo"
    subprocess.run(["restic", "init", "-r", str(repo), "--password-file", str(password)], check=True, capture_output=True)
    data = root / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    return {"bucket": bucket, "env": env, "password": password, "repo": repo, "data": data, "root": root}


def evidence_section(world, moto_server, host_root: Path, endpoint: str | None = None, **job) -> dict:
    return {"ledger": str(host_root / "evidence" / "ledger.jsonl"), "endpoint": endpoint or moto_server.endpoint,
            "bucket": world["bucket"], "region": moto_server.region, "env_file": str(world["env"]),
            "prefix": "evidence", "retention_days": RETENTION_DAYS, "job": job}


def auditor(moto_server, world) -> dict:
    return {"endpoint": moto_server.endpoint, "bucket": world["bucket"], "prefix": "evidence", "region": moto_server.region,
            "access_key_id": moto_server.access_key, "secret_access_key": moto_server.secret_key}


@pytest.fixture(scope="module")
def shipped_runs(evidence_agent, moto_server, world, net):
    """Three real runs of testhost: the first while the bucket is unreachable (kept, shipped later)."""
    agent = evidence_agent
    dead = "http://127.0.0.1:%d" % net.free_port()
    outputs = []
    for dataset, endpoint in (("www", dead), ("www", None), ("db", None)):
        evidence = evidence_section(world, moto_server, agent.root, endpoint, tier="agent", dataset=dataset, target="local-repo")
        config = agent.config(dataset, str(world["repo"]), world["password"], [str(world["data"])], evidence=evidence)
        run = agent.run(config, timeout=120)
        assert run.returncode == 0, run.stderr
        outputs.append(run)
    return {"runs": outputs, "ledger": Ledger(str(agent.root / "evidence" / "ledger.jsonl"), "testhost")}


def test_runs_are_chained_shipped_locked_and_rebuilt(shipped_runs, evidence_agent, moto_server, world):
    first = shipped_runs["runs"][0]
    assert "unreachable" in first.result["warnings"][-1] and "retried at the next run" in first.result["warnings"][-1]
    ledger = shipped_runs["ledger"]
    assert ledger.shipped() == 3 and [r["seq"] for r in ledger.records()] == [1, 2, 3]
    admin = moto_server.client()
    keys = [o["Key"] for o in admin.list_objects_v2(Bucket=world["bucket"], Prefix="evidence/testhost/")["Contents"]]
    assert keys == [object_key("evidence", "testhost", seq) for seq in (1, 2, 3)] + ["evidence/testhost/head.json"]
    # One head per shipping run (the second and third runs), each version locked.
    heads = admin.list_object_versions(Bucket=world["bucket"], Prefix="evidence/testhost/head.json")["Versions"]
    assert len(heads) == 2
    head = admin.head_object(Bucket=world["bucket"], Key=keys[0])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    facts = fleet_facts_from_bucket(auditor(moto_server, world), ["testhost"])
    host = facts["testhost"]
    assert host["format"] == 1 and host["host"] == "testhost" and sorted(host["jobs"]) == ["db", "www"]
    www = host["jobs"]["www"]
    assert www == dict(evidence_agent.status("www"), job={"tier": "agent", "dataset": "www", "target": "local-repo"})
    assert www["last_success"]["snapshot_id"] == shipped_runs["runs"][1].result["snapshot_id"]
    assert host["drills"] == [] and host["collected"] == ledger.records()[-1]["time"]
    assert fleet_facts_from_bucket(auditor(moto_server, world), ["nobody"]) == {}
    assert fleet_facts_from_bucket(dict(auditor(moto_server, world), verify="heads"), ["testhost", "nobody"]) == facts


def test_scheduled_drill_records_join_the_chain(shipped_runs, moto_server, world):
    config = EvidenceConfig.from_dict(evidence_section(world, moto_server, Path(shipped_runs["ledger"].path).parents[1]))
    drill = {"drill": "weekly", "dataset": "www", "source_host": "testhost", "drill_host": "testhost",
             "result": "passed", "finished": "2026-12-03T10:00:00Z"}
    outcome = record_evidence(config, "testhost", "drill", drill)
    assert outcome == {"seq": 4, "shipped": 1, "problem": ""}
    host = fleet_facts_from_bucket(auditor(moto_server, world), None)["testhost"]
    assert host["drills"] == [drill] and sorted(host["jobs"]) == ["db", "www"]


def ship_host(world, moto_server, tmp_path, host: str, count: int) -> tuple[EvidenceConfig, Ledger]:
    config = EvidenceConfig.from_dict(evidence_section(world, moto_server, tmp_path / host))
    for n in range(count):
        assert record_evidence(config, host, "run", {"dataset": "www", "n": n})["problem"] == ""
    return config, Ledger(config.ledger, host)


def test_host_keys_cannot_rewrite_an_old_record(world, moto_server, tmp_path):
    config, ledger = ship_host(world, moto_server, tmp_path, "victim", 2)
    host_client = S3Client(config.endpoint, config.bucket, config.region, config.env_file)  # the host's own keys
    key = object_key("evidence", "victim", 1)
    forged = dict(ledger.records()[0], body={"dataset": "www", "n": "forged"})
    refused = host_client.put(key, record_bytes(forged), headers={"if-none-match": "*"})
    assert refused.status == 412
    # The shipper itself refuses to take a different stored record for its own.
    with pytest.raises(EvidenceChainError, match="host victim, record 1: the evidence bucket holds another record"):
        Shipper(config, ledger)._same_as_stored(key, forged, record_bytes(forged))  # pylint: disable=protected-access
    assert fleet_facts_from_bucket(auditor(moto_server, world), ["victim"])["victim"]["jobs"]["www"]["n"] == 1

    # Without If-None-Match the bucket keeps both versions; the oldest is the record, the second is reported.
    assert host_client.put(key, record_bytes(forged)).status == 200
    listed = moto_server.client().list_object_versions(Bucket=world["bucket"], Prefix=key)["Versions"]
    assert len(listed) == 2
    with pytest.raises(EvidenceChainError, match="host victim, record 1: the key holds 2 versions") as caught:
        fleet_facts_from_bucket(auditor(moto_server, world), ["victim"])
    assert caught.value.host == "victim" and caught.value.seq == 1
    oldest = listed[-1]  # S3 lists a key's versions newest first (LastModified has one-second steps)
    assert not oldest["IsLatest"]
    deleted = host_client.request("DELETE", key, query={"versionId": oldest["VersionId"]})
    assert deleted.status == 403 and b"AccessDenied" in deleted.body
    body = moto_server.client().get_object(Bucket=world["bucket"], Key=key, VersionId=oldest["VersionId"])["Body"].read()
    assert json.loads(body) == ledger.records()[0]


def test_a_tampered_record_breaks_verification(world, moto_server, tmp_path):
    config, ledger = ship_host(world, moto_server, tmp_path, "forger", 1)
    record_evidence_offline = dict(ledger.append("run", {"dataset": "www", "n": 1}))
    lines = Path(ledger.path).read_text().splitlines()
    tampered = dict(record_evidence_offline, body={"dataset": "www", "n": "rewritten"})
    Path(ledger.path).write_text("\n".join(lines[:-1] + [json.dumps(tampered)]) + "\n")
    Shipper(config, ledger).ship()  # the shipper ships what the ledger holds
    bucket = auditor(moto_server, world)
    with pytest.raises(EvidenceChainError) as caught:
        fleet_facts_from_bucket(bucket, ["forger"])
    assert caught.value.host == "forger" and caught.value.seq == 2 and "changed after it was written" in str(caught.value)
    assert moto_server.secret_key not in str(caught.value)


def test_no_secret_in_outputs_files_or_errors(shipped_runs, evidence_agent, moto_server, world):
    texts = [r.stdout + r.stderr for r in shipped_runs["runs"]]
    texts.append(Path(shipped_runs["ledger"].path).read_text())
    texts += [p.read_text() for p in evidence_agent.root.glob("*.json")]  # the job configurations
    bad = dict(auditor(moto_server, world), bucket="no-such-bucket")
    try:
        fleet_facts_from_bucket(bad, ["testhost"])
    except Exception as exc:  # pylint: disable=broad-exception-caught
        texts.append(str(exc))
    assert len(texts) >= 7
    for text in texts:
        assert moto_server.secret_key not in text and PASSWORD not in text


def test_heads_are_checked_against_the_verified_chain(world, moto_server, tmp_path):
    config, ledger = ship_host(world, moto_server, tmp_path, "header", 3)
    cache = dict(auditor(moto_server, world), cache_dir=str(tmp_path / "cache"))
    chain = fleet_facts_from_bucket(cache, ["header"])
    assert json.loads((tmp_path / "cache" / "header.json").read_text())["hashes"] == [r["hash"] for r in ledger.records()]
    assert fleet_facts_from_bucket(dict(cache, verify="heads"), ["header"]) == chain
    host_client = S3Client(config.endpoint, config.bucket, config.region, config.env_file)
    key = "evidence/header/head.json"
    old = moto_server.client().list_object_versions(Bucket=world["bucket"], Prefix=key)["Versions"][-1]
    stale = moto_server.client().get_object(Bucket=world["bucket"], Key=key, VersionId=old["VersionId"])["Body"].read()
    assert host_client.put(key, stale).status == 200  # the host's keys put an older head back
    assert fleet_facts_from_bucket(dict(cache, verify="heads"), ["header"]) == chain  # the verified digest wins
    assert fleet_facts_from_bucket(dict(auditor(moto_server, world), verify="heads"), ["header"]) != chain  # no cache: the head's word
    # A head whose record is not the chain's (rehashed on its own) is refused by both passes.
    digest = ledger.digest()
    forged = dict(digest["jobs"]["www"], body={"dataset": "www", "n": "forged"})
    forged["hash"] = record_hash(forged)
    digest.update(jobs={"www": forged}, hash=forged["hash"])
    assert host_client.put(key, record_bytes(head_document(digest))).status == 200
    for mode in ("heads", "chain"):
        with pytest.raises(EvidenceChainError, match="host header, record 3: the head holds a record the chain does not have"):
            fleet_facts_from_bucket(dict(cache, verify=mode), ["header"])
