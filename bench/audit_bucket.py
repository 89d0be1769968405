#!/usr/bin/env python
"""Benchmark: the audit from the evidence bucket (default 10,000 hosts x 5 datasets), one core.

A moto server (its own process, pinned to the last core) holds an Object Lock bucket with
generated evidence: per host, a chain of 15 records (a run record of each of the 10 jobs of 5
datasets, each with two targets, and a drill record per dataset) and the head the host's shipper
leaves after its last shipping. This process, pinned to the first core, runs the audit as the
audit action does with source=bucket: fleet_facts_from_bucket, then the evaluator's document of
the whole fleet (policies as bench/validate_fleet.py generates them).

Measured, median of --runs (wall and this process' CPU time):
- heads:  verify=heads for every host (one GET per host), plus the evaluated report;
- report: the evaluated report alone (facts in memory);
- chain:  verify=chain of --chain-hosts hosts (every record read and verified; no cache), and the
          same with a warm cache_dir (nothing new: one listing, one GET of each head); 0 skips it
          (moto's listing of versions slows down with the number of objects in the bucket).

    .venv/bin/python bench/audit_bucket.py [--hosts 10000] [--chain-hosts 1000] [--runs 5]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "collections"))
sys.path.insert(0, HERE)

from validate_fleet import fleet  # noqa: E402  (the same synthetic policies)
from ansible_collections.restorable.backup.plugins.module_utils.evidence.ledger import (  # noqa: E402
    empty_digest, fold, head_document, make_record)
from ansible_collections.restorable.backup.plugins.module_utils.evidence.shipper import head_key, object_key, record_bytes  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.storage.s3api import content_md5  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.audit.evaluator import FleetAudit  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.evidence_bucket import (  # noqa: E402
    _AuditClient, fleet_facts_from_bucket)

BUCKET = "evidence-bench"
KEY_ID, SECRET = "AKIABENCHEVIDENCE01", "bench-evidence-secret-2f9a"
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def stamp(hours_ago: float) -> str:
    return (NOW - datetime.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(host: str, job: str, dataset: str, target: str, n: int) -> dict:
    """A status document shaped as StatusStore writes it (5 history entries)."""
    run = {"dataset": job, "host": host, "tier": "agent", "result": "success", "reason": "", "started": stamp(3 + n),
           "finished": stamp(2.9 + n), "duration_seconds": 312.4, "deferred_seconds": 0.0, "snapshot_id": "%064x" % (hash(job) & 0xffffffff),
           "bytes_processed": 48318382080, "bytes_added": 183500800, "hooks": [], "warnings": [], "consistency": None,
           "pid": 4242, "files_new": 12, "files_changed": 80, "files_unmodified": 183211}
    history = [{"started": stamp(27 + 24 * i), "finished": stamp(26.9 + 24 * i), "result": "success", "reason": "",
                "snapshot_id": "%064x" % i, "bytes_added": 183500800, "bytes_processed": 48318382080,
                "duration_seconds": 300.0 + i} for i in range(4)] + [{k: run[k] for k in (
                    "started", "finished", "result", "reason", "snapshot_id", "bytes_added", "bytes_processed", "duration_seconds")}]
    return dict(run, format=1, consecutive_failures=0, consecutive_deferrals=0, backups_since_check=3, backups_since_prune=2,
                last_success={k: run.get(k) for k in ("finished", "snapshot_id", "bytes_added", "bytes_processed",
                                                      "duration_seconds")} | {"canary_token": "c" * 32},
                last_check={"ok": True, "finished": stamp(50)}, history=history,
                job={"tier": "agent", "dataset": dataset, "target": target})


def drill(host: str, dataset: str) -> dict:
    return {"drill": "weekly", "dataset": dataset, "tier": "agent", "source_host": host, "drill_host": host,
            "result": "passed", "started": stamp(30), "finished": stamp(29.9), "rto_seconds": 41.2, "rpo_seconds": 9000.0,
            "rto_target_seconds": 3600, "rpo_target_seconds": 100800, "snapshot_id": "%064x" % 7,
            "layers": [{"name": name, "ok": True, "message": "ok", "seconds": 1.5} for name in ("chain", "canary", "content")]}


def chain(host: str, datasets: int) -> tuple[list[dict], dict]:
    """A host's records, oldest first, and its head (the digest the shipper uploads)."""
    bodies = [("run", status(host, name if target == "nas" else "%s-%s" % (name, target), name, target, d))
              for d in range(datasets) for name in ["data%d" % d] for target in ("nas", "cloud")]
    bodies += [("drill", drill(host, "data%d" % d)) for d in range(datasets)]
    records, prev, digest = [], "", empty_digest(host)
    for seq, (kind, body) in enumerate(bodies, 1):
        record = make_record(host, seq, prev, kind, body, stamp(2))
        records.append(record)
        fold(digest, record)
        prev = record["hash"]
    return records, digest


def start_moto(port: int, core: int, log: str) -> subprocess.Popen:
    """moto_server on its own core. It closes the connection after every answer (werkzeug always
    does), so each GET here pays a reconnect that S3, which keeps connections alive, would not."""
    binary = os.path.join(os.path.dirname(sys.executable), "moto_server")
    with open(log, "wb") as handle:
        process = subprocess.Popen(["taskset", "-c", str(core), binary, "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise SystemExit("moto server did not start (see %s)" % log)


def populate(settings: dict, hosts: list[str], chain_hosts: int, datasets: int) -> None:
    """Heads of every host, records of the first chain_hosts hosts: PUTs with If-None-Match and retention,
    as the shipper writes them (8 concurrent uploads)."""
    local = threading.local()
    until = (NOW + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    headers = {"x-amz-object-lock-mode": "COMPLIANCE", "x-amz-object-lock-retain-until-date": until, "content-type": "application/json"}

    def put(index: int) -> None:
        client = getattr(local, "client", None) or _AuditClient(settings)
        local.client = client
        host = hosts[index]
        records, digest = chain(host, datasets)
        uploads = [(object_key("evidence", host, r["seq"]), record_bytes(r), True) for r in records] if index < chain_hosts else []
        uploads.append((head_key("evidence", host), record_bytes(head_document(digest)), False))
        for key, body, once in uploads:
            wanted = dict(headers, **{"content-md5": content_md5(body)}, **({"if-none-match": "*"} if once else {}))
            response = client.put(key, body, headers=wanted)
            if response.status != 200:
                raise SystemExit("upload of %s refused: %d" % (key, response.status))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(len(hosts))))


def chain_pass(settings: dict, hosts: list[str], runs: int, workdir: str) -> dict:
    """verify=chain of the hosts: cold (every record read), then warm (same cache_dir, nothing new)."""
    cold, warm = [], []
    for run in range(runs):
        cache = os.path.join(workdir, "cache-%d" % run)
        cold.append(timed(lambda: fleet_facts_from_bucket(dict(settings, cache_dir=cache), hosts))[:2])
        warm.append(timed(lambda: fleet_facts_from_bucket(dict(settings, cache_dir=cache), hosts))[:2])
    return {"hosts": len(hosts), "cold_median_wall_s": median([c[0] for c in cold]), "cold_median_cpu_s": median([c[1] for c in cold]),
            "warm_median_wall_s": median([w[0] for w in warm]), "warm_median_cpu_s": median([w[1] for w in warm])}


def timed(call) -> tuple[float, float, object]:
    started, cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - started, time.process_time() - cpu, result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--datasets", type=int, default=5)
    parser.add_argument("--chain-hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    workdir = tempfile.mkdtemp(prefix="restorable-bench-audit-", dir="/var/tmp")
    port = 47000 + os.getpid() % 1000
    moto = start_moto(port, cores[-1], os.path.join(workdir, "moto.log"))
    try:
        os.sched_setaffinity(0, {cores[0]})  # the audit: one core; moto keeps the other
        import boto3
        boto3.client("s3", endpoint_url="http://127.0.0.1:%d" % port, region_name="us-east-1", aws_access_key_id=KEY_ID,
                     aws_secret_access_key=SECRET).create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        settings = {"endpoint": "http://127.0.0.1:%d" % port, "bucket": BUCKET, "prefix": "evidence", "region": "us-east-1",
                    "access_key_id": KEY_ID, "secret_access_key": SECRET, "workers": args.workers}
        policies = fleet(args.hosts, args.datasets)
        hosts = sorted(policies)
        setup, _cpu, _none = timed(lambda: populate(settings, hosts, args.chain_hosts, args.datasets))
        print("populated %d heads and %d hosts' records in %.0f s" % (len(hosts), args.chain_hosts, setup), file=sys.stderr)

        result = {"hosts": args.hosts, "datasets_per_host": args.datasets, "records_per_host": 3 * args.datasets,
                  "runs": args.runs, "workers": args.workers, "cores": 1, "setup_s": round(setup, 1)}
        heads = {"wall": [], "cpu": [], "read_wall": [], "read_cpu": []}
        facts = {}
        for _run in range(args.runs):
            wall, cpu, facts = timed(lambda: fleet_facts_from_bucket(dict(settings, verify="heads"), hosts))
            heads["read_wall"].append(wall)
            heads["read_cpu"].append(cpu)
            wall2, cpu2, document = timed(lambda: FleetAudit(policies, facts, source="bucket", now=NOW).document())
            heads["wall"].append(wall + wall2)
            heads["cpu"].append(cpu + cpu2)
        summary = document["summary"]
        assert len(facts) == args.hosts and summary["datasets"] == args.hosts * args.datasets, summary
        result["heads"] = {"median_wall_s": median(heads["wall"]), "median_cpu_s": median(heads["cpu"]),
                           "read_median_wall_s": median(heads["read_wall"]), "read_median_cpu_s": median(heads["read_cpu"]),
                           "summary": summary}
        report = [timed(lambda: FleetAudit(policies, facts, source="bucket", now=NOW).document())[:2] for _ in range(args.runs)]
        result["report_only"] = {"median_wall_s": median([r[0] for r in report]), "median_cpu_s": median([r[1] for r in report])}

        if args.chain_hosts:
            result["chain"] = chain_pass(settings, hosts[:args.chain_hosts], args.runs, workdir)
        per_host = result["heads"]["median_cpu_s"] / args.hosts
        result["heads"]["extrapolated_cpu_s_at_100000"] = round(per_host * 100000, 1)
        print(json.dumps(result))
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
