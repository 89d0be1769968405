# -*- coding: utf-8 -*-
# Private to restorable.backup: the host's evidence ledger, hash-chained so a record cannot be
# changed, dropped or reordered without the chain showing it. Each record names the hash of the
# one before it; its own hash is the SHA-256 of its canonical JSON without the hash. The same
# functions verify a chain on the host and on the controller (evidence bucket reader).
from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from typing import Any, Iterator, Sequence

from ..common.fileio import atomic_write
from ..common.locks import FileLock, LockBusy

RECORD_FORMAT = 1
KINDS = ("run", "drill")
FIELDS = ("format", "host", "seq", "prev", "kind", "time", "body")
FIRST_SEQ = 1
DRILL_HISTORY = 30  # drill records per (source host, dataset, drill) a digest keeps, as drill reports do
LOCK_WAIT = 10.0  # seconds a run waits for another run appending to the same ledger
_BLOCK = 65536


class EvidenceChainError(Exception):
    """A chain is broken: the message names the host and the record (seq)."""

    def __init__(self, host: str, seq: Any, problem: str) -> None:
        super().__init__("evidence of host %s, record %s: %s" % (host, seq, problem))
        self.host = host
        self.seq = seq
        self.problem = problem


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes a record's hash is taken of: sorted keys, compact separators, no hash."""
    return json.dumps({k: v for k, v in record.items() if k != "hash"}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def make_record(host: str, seq: int, prev: str, kind: str, body: dict[str, Any], when: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError("evidence kind %r is not one of %s" % (kind, ", ".join(KINDS)))
    record = {"format": RECORD_FORMAT, "host": host, "seq": seq, "prev": prev, "kind": kind, "time": when, "body": body}
    record["hash"] = record_hash(record)
    return record


def verify_record(host: str, record: Any, seq: int, prev: str) -> None:
    """One link: the record is well formed, of this host, at seq, after prev, and unchanged."""
    check_record(host, record, seq)
    if record["seq"] != seq:
        raise EvidenceChainError(host, seq, "has seq %r where %d was due (a record is missing or out of place)" % (record["seq"], seq))
    if record["prev"] != prev:
        raise EvidenceChainError(host, seq, "does not follow the record before it (prev hash differs)")


def check_record(host: str, record: Any, seq: Any) -> None:
    """A record on its own: well formed, of this host, its hash matching its content (seq: for messages)."""
    if not isinstance(record, dict):
        raise EvidenceChainError(host, seq, "not a JSON object")
    missing = [k for k in FIELDS + ("hash",) if k not in record]
    if missing:
        raise EvidenceChainError(host, seq, "lacks %s" % ", ".join(missing))
    extra = sorted(set(record) - set(FIELDS) - {"hash"})
    if extra:
        raise EvidenceChainError(host, seq, "has unknown fields %s" % ", ".join(extra))
    if record["format"] != RECORD_FORMAT or record["kind"] not in KINDS:
        raise EvidenceChainError(host, seq, "format %r / kind %r not understood" % (record["format"], record["kind"]))
    if record["host"] != host:
        raise EvidenceChainError(host, seq, "belongs to host %r" % record["host"])
    if record["hash"] != record_hash(record):
        raise EvidenceChainError(host, seq, "was changed after it was written (hash differs)")


def verify_chain(host: str, records: Sequence[Any], first_seq: int = FIRST_SEQ, prev: str = "") -> str:
    """Verify records in order, from first_seq after prev (a verified tip); the new tip's hash."""
    for offset, record in enumerate(records):
        verify_record(host, record, first_seq + offset, prev)
        prev = record["hash"]
    return prev


def empty_digest(host: str) -> dict[str, Any]:
    """The digest of an empty ledger (see fold)."""
    return {"format": RECORD_FORMAT, "host": host, "seq": FIRST_SEQ - 1, "hash": "", "time": None, "jobs": {}, "drills": {}}


def drill_key(body: dict[str, Any]) -> str:
    return "|".join(str(body.get(k) or "") for k in ("source_host", "dataset", "drill"))


def fold(digest: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Add a record to a digest: what an audit needs of a chain, the newest run record of each job
    and the newest DRILL_HISTORY drill records of each (source host, dataset, drill), whole (with
    seq and hash, so each can be checked against the chain), and the chain's tip."""
    body = record["body"] if isinstance(record["body"], dict) else {}
    digest.update(seq=record["seq"], hash=record["hash"], time=record["time"])
    if record["kind"] == "run":
        digest["jobs"][str(body.get("dataset") or "?")] = record
    else:
        history = digest["drills"].setdefault(drill_key(body), [])
        history.append(record)
        del history[:-DRILL_HISTORY]
    return digest


def digest_records(digest: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a digest holds, by seq."""
    records = list(digest["jobs"].values()) + [r for history in digest["drills"].values() for r in history]
    return sorted(records, key=lambda r: r["seq"])


def head_document(digest: dict[str, Any]) -> dict[str, Any]:
    """What the shipper uploads as the host's head: the digest's records, each as the very text its
    hash was taken of, so a reader checks it with one SHA-256 and no re-encoding."""
    return {"format": RECORD_FORMAT, "host": digest["host"], "seq": digest["seq"], "hash": digest["hash"],
            "time": digest["time"],
            "records": [{"hash": r["hash"], "canonical": canonical(r).decode("utf-8")} for r in digest_records(digest)]}


def head_records(host: str, head: Any) -> list[dict[str, Any]]:
    """The records of a head document, each checked against its hash; EvidenceChainError names the record."""
    if not isinstance(head, dict) or head.get("format") != RECORD_FORMAT or head.get("host") != host \
            or not isinstance(head.get("records"), list):
        raise EvidenceChainError(host, "head", "the head object is not a digest of this host")
    records = []
    for index, entry in enumerate(head["records"]):
        text = entry.get("canonical") if isinstance(entry, dict) else None
        if not isinstance(text, str) or hashlib.sha256(text.encode("utf-8")).hexdigest() != entry.get("hash"):
            raise EvidenceChainError(host, "head", "record %d of the head does not match its hash" % index)
        try:
            record = dict(json.loads(text), hash=entry["hash"])
        except (ValueError, TypeError):
            raise EvidenceChainError(host, "head", "record %d of the head is not a JSON object" % index) from None
        if set(record) != set(FIELDS) | {"hash"} or record["host"] != host or record["kind"] not in KINDS \
                or not isinstance(record["seq"], int):
            raise EvidenceChainError(host, record.get("seq", "head"), "a record of the head is not a record of this host")
        records.append(record)
    return records


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def tail_lines(path: str) -> Iterator[bytes]:
    """The non-empty lines of a file from the last one backwards, reading blocks from its end:
    a ledger only grows, and a run needs its newest records only."""
    try:
        handle = open(path, "rb")  # pylint: disable=consider-using-with
    except FileNotFoundError:
        return
    with handle:
        position = handle.seek(0, os.SEEK_END)
        rest = b""
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines.pop(0)
            for line in reversed(lines):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


class Ledger:
    """The ledger file of one host: JSON lines, appended under a lock, never rewritten.

    Beside it: LEDGER.lock (appends and shipping take turns), LEDGER.digest (see fold),
    LEDGER.shipped and LEDGER.head-shipped (the seq of the newest record and of the newest digest
    the evidence bucket has)."""

    def __init__(self, path: str, host: str) -> None:
        self.path = path
        self.host = host
        self.lock_path = path + ".lock"
        self.shipped_path = path + ".shipped"
        self.digest_path = path + ".digest"
        self.head_shipped_path = path + ".head-shipped"

    def lock(self, wait: float = LOCK_WAIT) -> FileLock:
        """The ledger's lock, taken within `wait` seconds or LockBusy."""
        lock = FileLock(self.lock_path)
        deadline = time.monotonic() + wait
        while True:
            try:
                lock.acquire()
                return lock
            except LockBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def tip(self) -> tuple[int, str]:
        """(seq, hash) of the newest record; (0, "") for an empty ledger."""
        for line in tail_lines(self.path):
            record = self._parse(line)
            return int(record["seq"]), str(record["hash"])
        return FIRST_SEQ - 1, ""

    def append(self, kind: str, body: dict[str, Any], when: str | None = None) -> dict[str, Any]:
        """Chain a record after the tip and write it (caller holds the lock)."""
        seq, prev = self.tip()
        record = make_record(self.host, seq + 1, prev, kind, body, when or utc_now())
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
        digest = self.digest()  # before the append: a digest behind the ledger is rebuilt from it
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        atomic_write(self.digest_path, json.dumps(fold(digest, record), sort_keys=True, separators=(",", ":")), mode=0o644)
        return record

    def digest(self) -> dict[str, Any]:
        """The digest of the whole ledger (see fold), kept beside it; rebuilt when it lags behind."""
        seq, tip = self.tip()
        try:
            with open(self.digest_path, encoding="utf-8") as handle:
                digest = json.load(handle)
            if isinstance(digest, dict) and digest.get("seq") == seq and digest.get("hash") == tip:
                return digest
        except (OSError, ValueError):
            pass
        digest = empty_digest(self.host)
        for record in self.records():
            fold(digest, record)
        return digest

    def records_after(self, seq: int) -> list[dict[str, Any]]:
        """The records newer than seq, oldest first."""
        found = []
        for line in tail_lines(self.path):
            record = self._parse(line)
            if int(record["seq"]) <= seq:
                break
            found.append(record)
        found.reverse()
        return found

    def records(self) -> list[dict[str, Any]]:
        return self.records_after(FIRST_SEQ - 1)

    def verify(self) -> str:
        """Verify the whole local chain; its tip's hash."""
        return verify_chain(self.host, self.records())

    def shipped(self, head: bool = False) -> int:
        """The seq of the newest record (head: of the newest digest) the evidence bucket has."""
        try:
            with open(self.head_shipped_path if head else self.shipped_path, encoding="ascii") as handle:
                return int(handle.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return FIRST_SEQ - 1

    def mark_shipped(self, seq: int, head: bool = False) -> None:
        atomic_write(self.head_shipped_path if head else self.shipped_path, "%d\n" % seq, mode=0o644)

    def _parse(self, line: bytes) -> dict[str, Any]:
        try:
            record = json.loads(line)
        except ValueError:
            raise EvidenceChainError(self.host, "?", "a line of %s is not JSON" % self.path) from None
        if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
            raise EvidenceChainError(self.host, "?", "a line of %s is not a ledger record" % self.path)
        return record
