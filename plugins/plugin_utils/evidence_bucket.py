# -*- coding: utf-8 -*-
# Private to restorable.backup: the audit's second source. Hosts ship their hash-chained evidence
# records (runs and scheduled drills) to an S3 bucket with Object Lock, one object per record at
# <prefix>/<host>/<seq>.json, and after each shipping a head, <prefix>/<host>/head.json: the digest of
# their chain (the newest run record of each job, the drill history, the tip). This reads them back
# with the controller's audit keys and rebuilds the host facts document audit_facts answers over SSH.
#
# Two ways to read (bucket option verify):
# - chain (default): every record is read and each host's chain verified; records are immutable, so
#   with cache_dir a record is read and verified once and later audits read only newer ones. The
#   head is checked against the chain: each record it holds must be the chain's record of that seq.
# - heads: one GET per host (large fleets): the head's records are checked on their own (hash,
#   host) and against what a chain pass verified before (cache_dir): a head holding a record the
#   chain does not have is refused, and a head older than the verified tip gives way to the verified
#   digest. Records newer than the last chain pass are the host's word until the next one.
#
# What counts as tampering, and how it is found:
# - a changed record: its hash no longer matches its content, or the next record's prev;
# - a missing record (deleted, or skipped): a gap in the seqs, named;
# - an overwrite: records are written with If-None-Match, so a second version of a record's key
#   comes only from a PUT that bypassed it. The listing of versions shows it; the OLDEST version
#   (kept by Object Lock) is the record, and the key is reported as overwritten all the same;
# - a delete without a version id only hides a record behind a delete marker: records are read by
#   version id, so the chain stays whole; deleting a locked version itself is refused by S3.
from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ansible_collections.restorable.backup.plugins.module_utils.common.fileio import atomic_write_json
from ansible_collections.restorable.backup.plugins.module_utils.evidence.ledger import (
    FIRST_SEQ, EvidenceChainError, empty_digest, fold, head_records, verify_chain)
from ansible_collections.restorable.backup.plugins.module_utils.evidence.shipper import HEAD_NAME
from ansible_collections.restorable.backup.plugins.module_utils.storage.s3api import S3Client, S3Error
from ansible_collections.restorable.backup.plugins.plugin_utils.heap import cycle_collection_paused

FACTS_FORMAT = 1
MODES = ("chain", "heads")
WORKERS = 16  # concurrent GETs: S3 answers in parallel; a serial reader would wait on latency, not CPU
PER_HOST_LISTING = 20  # up to this many hosts asked for, list each host's prefix; else the whole prefix
CACHE_FORMAT = 1
_RECORD_KEY = re.compile(r"^(?P<host>[^/]+)/(?P<seq>[0-9]{12})\.json$")


class EvidenceBucketError(Exception):
    """The bucket cannot be read (unreachable, refused, bad settings); never names a secret."""


class _AuditClient(S3Client):
    """An S3 client signing with keys given as values (the controller's), not an env file."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings["endpoint"], settings["bucket"], settings.get("region") or "us-east-1", env_file="")
        self._credentials = {"AWS_ACCESS_KEY_ID": settings["access_key_id"],
                             "AWS_SECRET_ACCESS_KEY": settings["secret_access_key"]}


def _settings(bucket: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in ("endpoint", "bucket", "access_key_id", "secret_access_key") if not bucket.get(k)]
    if missing:
        raise EvidenceBucketError("evidence bucket settings lack %s" % ", ".join(missing))
    mode = bucket.get("verify") or "chain"
    if mode not in MODES:
        raise EvidenceBucketError("evidence bucket option verify: %r is not one of %s" % (mode, ", ".join(MODES)))
    return dict(bucket, prefix=str(bucket.get("prefix") or "evidence").strip("/"), verify=mode)


def empty_state(host: str) -> dict[str, Any]:
    return {"format": CACHE_FORMAT, "versions": [], "hashes": [], "digest": empty_digest(host)}


class EvidenceBucket:
    """Listing, reading and verifying the evidence of a bucket's hosts."""

    def __init__(self, bucket: dict[str, Any]) -> None:
        self.settings = _settings(bucket)
        self.prefix = self.settings["prefix"]
        self.workers = int(self.settings.get("workers") or WORKERS)
        self.cache_dir = self.settings.get("cache_dir")
        self._local = threading.local()
        self._clients: list[S3Client] = []
        self._lock = threading.Lock()

    def client(self) -> S3Client:
        """One client (one kept-alive connection) per thread."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = _AuditClient(self.settings)
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def parallel(self, call: Callable[..., Any], items: list[tuple]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(lambda item: call(*item), items))

    def _s3(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except S3Error as exc:
            raise EvidenceBucketError("evidence bucket: %s" % exc) from None

    # -- listing and reading ---------------------------------------------------------------------

    def listing(self, hosts: list[str] | None, versions: bool) -> dict[str, dict[Any, list[str]]]:
        """host -> seq (or "head") -> version ids, newest first (S3's listing order)."""
        if hosts is not None and len(hosts) <= PER_HOST_LISTING:
            prefixes = ["%s/%s/" % (self.prefix, host) for host in hosts]
        else:
            prefixes = [self.prefix + "/"]
        wanted = set(hosts) if hosts is not None else None
        found: dict[str, dict[Any, list[str]]] = {}
        for prefix in prefixes:
            for entry in self._s3(lambda p=prefix: self.client().list(p, versions=versions)):
                host, _sep, name = entry["key"][len(self.prefix) + 1:].partition("/")
                match = _RECORD_KEY.match(entry["key"][len(self.prefix) + 1:])
                what: Any = int(match.group("seq")) if match else ("head" if name == HEAD_NAME else None)
                if what is None or (wanted is not None and host not in wanted):
                    continue
                found.setdefault(host, {}).setdefault(what, []).append(entry.get("version_id") or "")
        return found

    def read(self, host: str, name: str, version: str | None = None, missing_ok: bool = False) -> Any:
        """The JSON object at <prefix>/<host>/<name> (None: absent and missing_ok)."""
        key = "%s/%s/%s" % (self.prefix, host, name)
        response = self._s3(lambda: self.client().request("GET", key, query={"versionId": version} if version else {}))
        if response.status == 404 and missing_ok:
            return None
        if response.status != 200:
            raise EvidenceBucketError(str(self.client().refused("GET", key, response)))
        try:
            return json.loads(response.body)
        except ValueError:
            raise EvidenceChainError(host, name, "object %s is not JSON" % key) from None

    # -- the verified state of a host (cache) --------------------------------------------------

    def cached(self, host: str) -> dict[str, Any]:
        """What an earlier chain pass verified of the host: version ids and hashes by seq, the digest."""
        empty = empty_state(host)
        if not self.cache_dir:
            return empty
        try:
            with open(os.path.join(self.cache_dir, host + ".json"), encoding="utf-8") as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            return empty
        return state if isinstance(state, dict) and state.get("format") == CACHE_FORMAT else empty

    def save(self, host: str, state: dict[str, Any]) -> None:
        if self.cache_dir:
            atomic_write_json(os.path.join(self.cache_dir, host + ".json"), state, mode=0o600)


# -- verify: chain ------------------------------------------------------------------------------

def plan_chain(reader: EvidenceBucket, host: str, listed: dict[Any, list[str]]) -> tuple[dict[str, Any], list[tuple]]:
    """(the host's verified state to continue, the records to read): raises on a gap or an overwrite."""
    seqs = sorted(k for k in listed if k != "head")
    overwritten = [seq for seq in seqs if len(listed[seq]) > 1]
    if overwritten:
        raise EvidenceChainError(host, overwritten[0], "the key holds %d versions: the record was written again "
                                 "(an overwrite attempt; the oldest version is the record)" % len(listed[overwritten[0]]))
    if seqs != list(range(FIRST_SEQ, FIRST_SEQ + len(seqs))):
        missing = sorted(set(range(FIRST_SEQ, seqs[-1] + 1)) - set(seqs)) if seqs else []
        raise EvidenceChainError(host, missing[0] if missing else "head", "the record is missing from the bucket")
    versions = [listed[seq][-1] for seq in seqs]  # the oldest version of each key
    state = reader.cached(host)
    if versions[:len(state["versions"])] != state["versions"]:
        state = empty_state(host)  # not the objects verified before: verify everything again
    done = len(state["versions"])
    state["versions"] = versions
    return state, [(host, "%012d.json" % seq, versions[seq - FIRST_SEQ]) for seq in seqs[done:]]


def continue_chain(reader: EvidenceBucket, host: str, state: dict[str, Any], new: list[Any]) -> dict[str, Any]:
    """The cached verified state continued by the new records, verified; saved for the next audit."""
    done = len(state["hashes"])
    verify_chain(host, new, done + FIRST_SEQ, state["hashes"][-1] if state["hashes"] else "")
    for record in new:
        fold(state["digest"], record)
        state["hashes"].append(record["hash"])
    if new:
        reader.save(host, state)
    return state


def check_head(host: str, head: Any, hashes: list[str]) -> dict[str, Any]:
    """The digest of a head, its records checked against their hashes and against the verified
    hashes of the chain (seq - 1 -> hash)."""
    records = head_records(host, head)
    if not records or (records[-1]["seq"], records[-1]["hash"]) != (head.get("seq"), head.get("hash")):
        raise EvidenceChainError(host, "head", "the head's tip is not among its records")
    digest = empty_digest(host)
    for record in records:
        known = hashes[record["seq"] - FIRST_SEQ] if FIRST_SEQ <= record["seq"] < FIRST_SEQ + len(hashes) else None
        if known is not None and known != record["hash"]:
            raise EvidenceChainError(host, record["seq"], "the head holds a record the chain does not have")
        fold(digest, record)
    return digest


# -- facts ---------------------------------------------------------------------------------------

def finish_facts(host: str, digest: dict[str, Any]) -> dict[str, Any]:
    """The host facts document (format 1) of a digest."""
    drills = sorted((r for history in digest["drills"].values() for r in history), key=lambda r: r["seq"])
    return {"format": FACTS_FORMAT, "host": host, "collected": digest["time"],
            "jobs": {name: record["body"] for name, record in sorted(digest["jobs"].items())},
            "snapshot_groups": {}, "drills": [r["body"] for r in drills], "locks": {}, "tape": {}, "vms": {}}


def _facts_from_chains(reader: EvidenceBucket, hosts: list[str] | None) -> dict[str, dict]:
    listed = reader.listing(hosts, versions=True)
    chained = {host: entries for host, entries in sorted(listed.items()) if any(k != "head" for k in entries)}
    plans = {host: plan_chain(reader, host, entries) for host, entries in chained.items()}
    reads = [item for _state, items in plans.values() for item in items]
    heads = [(host, HEAD_NAME, None, True) for host in chained if "head" in chained[host]]
    fetched = iter(reader.parallel(reader.read, reads + heads))
    states = {host: continue_chain(reader, host, state, [next(fetched) for _item in items]) for host, (state, items) in plans.items()}
    for host, _name, _version, _missing in heads:
        head = next(fetched)
        if head is not None:
            check_head(host, head, states[host]["hashes"])
    return {host: finish_facts(host, state["digest"]) for host, state in states.items()}


def _facts_from_heads(reader: EvidenceBucket, hosts: list[str] | None) -> dict[str, dict]:
    if hosts is None:
        hosts = sorted(host for host, entries in reader.listing(None, versions=False).items() if "head" in entries)
    return facts_of_heads(reader, hosts, reader.parallel(reader.read, [(host, HEAD_NAME, None, True) for host in hosts]))


def facts_of_heads(reader: EvidenceBucket, hosts: list[str], heads: list[Any]) -> dict[str, dict]:
    """The facts of each host from its head as read (None: no head), checked against the verified chain."""
    facts = {}
    for host, head in zip(hosts, heads):
        if head is None:
            continue
        state = reader.cached(host)
        digest = check_head(host, head, state["hashes"])
        if digest["seq"] <= len(state["hashes"]):
            # The chain pass verified as much or more (a head whose upload failed, or an older head
            # put back): what it verified wins.
            digest = state["digest"]
        facts[host] = finish_facts(host, digest)
    return facts


def fleet_facts_from_bucket(bucket: dict, hosts: list[str] | None) -> dict[str, dict]:
    """host -> host facts document rebuilt from the hosts' verified hash-chained records.

    A host without records is absent; a broken chain raises EvidenceChainError naming host and
    record; a bucket that cannot be read raises EvidenceBucketError. bucket: endpoint, bucket,
    prefix, region, access_key_id, secret_access_key; optional verify (chain|heads), cache_dir, workers."""
    reader = EvidenceBucket(bucket)
    if reader.cache_dir:
        os.makedirs(reader.cache_dir, mode=0o700, exist_ok=True)
    wanted = list(hosts) if hosts is not None else None
    try:
        with cycle_collection_paused():  # every host's records stay alive until the audit: see heap.py
            if reader.settings["verify"] == "heads":
                return _facts_from_heads(reader, wanted)
            return _facts_from_chains(reader, wanted)
    finally:
        reader.close()
