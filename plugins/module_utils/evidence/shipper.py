# -*- coding: utf-8 -*-
# Private to restorable.backup: appends a run's status or a drill's record to the host's evidence
# ledger and ships what the evidence bucket does not have yet. Each record becomes one object,
# <prefix>/<host>/<seq>.json, written with If-None-Match: * and a COMPLIANCE retention: the host's
# keys can add records but the bucket refuses to replace or delete a locked one. Evidence never
# fails or holds up a backup: every request has a short timeout, shipping stops at the first
# problem and the next run ships what is left.
from __future__ import annotations

import datetime
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..storage.s3api import S3Client, content_md5
from .ledger import FIRST_SEQ, EvidenceChainError, Ledger, head_document

REQUEST_TIMEOUT = 3.0  # seconds per request (S3Client tries 3 times): an unreachable bucket costs ~10 s at most
SHIP_BUDGET = 15.0  # seconds a run spends shipping at most; the rest waits for the next run
SEQ_DIGITS = 12
LOCK_MODE = "COMPLIANCE"
HEAD_NAME = "head.json"
EXPECTED = {int: "a positive integer", dict: "an object", str: "a non-empty string"}


@dataclass
class EvidenceConfig:
    """The `evidence` section of a job or drill configuration (secrets by path only)."""

    ledger: str
    endpoint: str
    bucket: str
    env_file: str
    retention_days: int
    prefix: str = "evidence"
    region: str = "us-east-1"
    job: dict[str, Any] = field(default_factory=dict)  # {tier, dataset, target} of a backup job
    host: str = ""  # the inventory name records carry (a drill configuration has no other)

    KEYS = ("ledger", "endpoint", "bucket", "env_file", "retention_days", "prefix", "region", "job", "host")

    @classmethod
    def from_dict(cls, data: Any, where: str = "evidence") -> "EvidenceConfig":
        """ValueError names the field."""
        if not isinstance(data, dict):
            raise ValueError("%s: expected an object" % where)
        unknown = sorted(set(data) - set(cls.KEYS))
        if unknown:
            raise ValueError("%s: unknown option %s" % (where, ", ".join(unknown)))
        kinds = {"ledger": str, "endpoint": str, "bucket": str, "env_file": str, "retention_days": int, "prefix": str,
                 "region": str, "job": dict, "host": str}
        for key, kind in kinds.items():
            value = data.get(key)
            if value is None and key in ("prefix", "region", "job", "host"):
                continue
            if isinstance(value, bool) or not isinstance(value, kind) or (kind is str and not value):
                raise ValueError("%s.%s: expected %s" % (where, key, EXPECTED[kind]))
        if data["retention_days"] < 1:
            raise ValueError("%s.retention_days: expected a positive integer" % where)
        return cls(**{k: data[k] for k in cls.KEYS if data.get(k) is not None})

    def to_dict(self) -> dict[str, Any]:
        document = {k: getattr(self, k) for k in self.KEYS}
        for optional in ("job", "host"):
            if not document[optional]:
                document.pop(optional)
        return document


def object_key(prefix: str, host: str, seq: int) -> str:
    return "%s/%s/%0*d.json" % (prefix.strip("/"), host, SEQ_DIGITS, seq)


def head_key(prefix: str, host: str) -> str:
    return "%s/%s/%s" % (prefix.strip("/"), host, HEAD_NAME)


def record_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Shipper:
    """Uploads a ledger's not yet shipped records to the evidence bucket, oldest first."""

    def __init__(self, config: EvidenceConfig, ledger: Ledger, client: S3Client | None = None,
                 budget: float = SHIP_BUDGET) -> None:
        self.config = config
        self.ledger = ledger
        self.client = client or S3Client(config.endpoint, config.bucket, config.region, config.env_file,
                                         timeout=REQUEST_TIMEOUT)
        self.budget = budget

    def ship(self) -> int:
        """Records shipped now; S3Error or EvidenceChainError stop it (the caller logs them)."""
        deadline = time.monotonic() + self.budget
        shipped = 0
        try:
            for record in self.ledger.records_after(self.ledger.shipped()):
                if time.monotonic() > deadline:
                    break  # a long backlog: the next run goes on from here
                self.upload(record)
                self.ledger.mark_shipped(record["seq"])
                shipped += 1
            self.ship_head()
        finally:
            self.client.close()
        return shipped

    def ship_head(self) -> None:
        """Replace the host's head object by the digest of everything shipped, once the records are
        all in the bucket: the audit of a large fleet reads one object per host (docs/evidence.md)."""
        digest = self.ledger.digest()
        if FIRST_SEQ <= digest["seq"] == self.ledger.shipped() and self.ledger.shipped(head=True) < digest["seq"]:
            key = head_key(self.config.prefix, self.ledger.host)
            body = record_bytes(head_document(digest))
            # Replacing is the point: no If-None-Match; every version stays locked, so older heads remain.
            response = self.client.put(key, body, headers=self._lock_headers(body), payload_hash=hashlib.sha256(body).hexdigest())
            if response.status != 200:
                raise self.client.refused("PUT", key, response)
            self.ledger.mark_shipped(digest["seq"], head=True)

    def _lock_headers(self, body: bytes) -> dict[str, str]:
        return {"content-type": "application/json", "content-md5": content_md5(body),
                "x-amz-object-lock-mode": LOCK_MODE, "x-amz-object-lock-retain-until-date": self.retain_until()}

    def key(self, record: dict[str, Any]) -> str:
        return object_key(self.config.prefix, self.ledger.host, record["seq"])

    def retain_until(self) -> str:
        until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=self.config.retention_days)
        return until.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def upload(self, record: dict[str, Any]) -> None:
        key = self.key(record)
        body = record_bytes(record)
        digest = hashlib.sha256(body).hexdigest()
        headers = dict(self._lock_headers(body), **{"if-none-match": "*"})
        response = self.client.put(key, body, headers=headers, payload_hash=digest)
        if response.status == 200:
            return
        if response.status == 412:
            # An earlier upload whose answer was lost: fine if the object is this very record.
            self._same_as_stored(key, record, body)
            return
        raise self.client.refused("PUT", key, response)

    def _same_as_stored(self, key: str, record: dict[str, Any], body: bytes) -> None:
        stream = self.client.get(key).stream
        try:
            stored = stream.read()
        finally:
            stream.close()
        if stored != body:
            raise EvidenceChainError(self.ledger.host, record["seq"], "the evidence bucket holds another record at %s" % key)


def record_evidence(config: EvidenceConfig | None, host: str, kind: str, *bodies: dict[str, Any]) -> dict[str, Any] | None:
    """Append a record per body and ship the backlog; never raises (evidence must not fail a backup): the
    caller logs the problem. Returns {"seq", "shipped", "problem"} or None without an evidence section."""
    if config is None:
        return None
    ledger = Ledger(config.ledger, host)
    outcome: dict[str, Any] = {"seq": None, "shipped": 0, "problem": ""}
    try:
        lock = ledger.lock()
    except Exception as exc:  # pylint: disable=broad-exception-caught
        outcome["problem"] = "evidence ledger %s is busy or unwritable: %s" % (config.ledger, exc)
        return outcome
    try:
        for body in bodies:
            outcome["seq"] = ledger.append(kind, body)["seq"]
        outcome["shipped"] = Shipper(config, ledger).ship()
    # Evidence must never break the run it records: whatever went wrong is the run's warning.
    except Exception as exc:  # pylint: disable=broad-exception-caught
        outcome["problem"] = "evidence: %s; unshipped records are retried at the next run" % exc
    finally:
        lock.release()
    return outcome
