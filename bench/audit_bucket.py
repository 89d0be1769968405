#!/usr/bin/env python
"""Benchmark: the audit from the evidence bucket (default 10,000 hosts x 5 datasets), one core.

A moto server (its own process, pinned to the last core) holds an Object Lock bucket with
generated evidence: per host, a chain of 15 records (a run record of each of the 10 jobs of 5
datasets, each with two targets, and a drill record per dataset) and the head the host's shipper
leaves after its last shipping. This process, pinned to the first core, runs the audit as the
audit action does with source=bucket and verify=heads: fleet_facts_from_bucket, the evaluator's
document of the whole fleet (policies as bench/validate_fleet.py generates them) and the report
(audit.json, junit.xml, audit.html written to disk).

Measured, median of --runs (wall and this process' CPU time, threads included):
- bare:     curl --parallel (16 at a time, pinned to the same core) GETs every head: the server's
            own rate, the bound no client can beat (moto closes the connection after each answer);
- fetch:    the audit's GETs of every head (its thread pool and S3 client), bodies kept unparsed;
- process:  from the fetched bodies: JSON decoding, each head verified, facts rebuilt, evaluated,
            audit.json, junit.xml and audit.html written (no network: the part the audit owns);
- total:    the whole audit end to end (fleet_facts_from_bucket, document, write_audit);
- chain:    verify=chain of --chain-hosts hosts (every record read and verified; no cache), and the
            same with a warm cache_dir (nothing new: one listing, one GET of each head); 0 skips it
            (moto's listing of versions slows down with the number of objects in the bucket).
--process-only N: the process part alone at N hosts from bodies generated in memory (no moto),
            for the growth at fleets the server cannot be filled with in time.

    .venv/bin/python bench/audit_bucket.py [--hosts 10000] [--chain-hosts 1000] [--runs 5] [--process-only 100000]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
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
from ansible_collections.restorable.backup.plugins.module_utils.common.fileio import atomic_write  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.audit.report import json_text, junit_xml, write_audit  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.audit_html import render_audit_html  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.evidence_bucket import (  # noqa: E402
    EvidenceBucket, _AuditClient, facts_of_heads, fleet_facts_from_bucket)
from ansible_collections.restorable.backup.plugins.plugin_utils.heap import cycle_collection_paused  # noqa: E402

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
    for _attempt in range(300):
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


def bare_fetch(settings: dict, hosts: list[str], workdir: str, core: int) -> tuple[float, float]:
    """(wall, CPU) of curl GETting every head, 16 at a time, on the audit's core: the server's rate."""
    config = os.path.join(workdir, "curl.conf")
    with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        # Signed as the audit's requests are; the keys in the config file, not in the process list.
        handle.write('aws-sigv4 = "aws:amz:%s:s3"\nuser = "%s:%s"\n' % (settings["region"], KEY_ID, SECRET))
        for host in hosts:
            handle.write('url = "%s/%s/%s"\noutput = "/dev/null"\n' % (settings["endpoint"], BUCKET, head_key("evidence", host)))
    before = os.times()
    started = time.perf_counter()
    answer = subprocess.run(["taskset", "-c", str(core), "curl", "--parallel", "--parallel-max", "16", "-s", "-w", "%{http_code}\n",
                             "-K", config], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    codes = answer.stdout.split()
    if len(codes) != len(hosts) or set(codes) != {"200"}:
        raise SystemExit("bare fetch: %d answers, codes %s" % (len(codes), sorted(set(codes))))
    return wall, (after.children_user + after.children_system) - (before.children_user + before.children_system)


def fetch(settings: dict, hosts: list[str]) -> list[bytes]:
    """The audit's GETs of every head (its reader's thread pool and clients), bodies unparsed."""
    reader = EvidenceBucket(dict(settings, verify="heads"))

    def get(host: str) -> bytes:
        response = reader.client().request("GET", head_key("evidence", host))
        if response.status != 200:
            raise SystemExit("GET of %s's head: %d" % (host, response.status))
        return response.body

    try:
        return reader.parallel(get, [(host,) for host in hosts])
    finally:
        reader.close()


def process(settings: dict, policies: dict, hosts: list[str], bodies: list[bytes], out: str, steps: dict | None = None) -> dict:
    """What the audit does with the heads it read: decode, verify, rebuild, evaluate, write the report
    (as write_audit does). steps: the CPU seconds of each step are appended to it."""
    mark = Marks(steps)
    reader = EvidenceBucket(dict(settings, verify="heads"))
    with cycle_collection_paused():  # as fleet_facts_from_bucket does
        heads = [json.loads(body) for body in bodies]
        mark("decode heads")
        facts = facts_of_heads(reader, hosts, heads)
        mark("verify and rebuild (records decoded)")
    document = FleetAudit(policies, facts, source="bucket", now=NOW).document()
    mark("evaluate")
    os.makedirs(out, exist_ok=True)
    with cycle_collection_paused():
        atomic_write(os.path.join(out, "audit.json"), json_text(document))
        mark("audit.json")
        atomic_write(os.path.join(out, "junit.xml"), junit_xml(document))
        mark("junit.xml")
        atomic_write(os.path.join(out, "audit.html"), render_audit_html(document))
        mark("audit.html")
    return document


class Marks:
    """CPU seconds since the previous mark, by step."""

    def __init__(self, steps: dict | None) -> None:
        self.steps = steps
        self.last = time.process_time()

    def __call__(self, step: str) -> None:
        now = time.process_time()
        if self.steps is not None:
            self.steps.setdefault(step, []).append(now - self.last)
        self.last = now


def decode_only(bodies: list[bytes]) -> None:
    """The JSON decoding alone: each head, then each record's canonical text in it."""
    with cycle_collection_paused():
        for body in bodies:
            for entry in json.loads(body)["records"]:
                json.loads(entry["canonical"])


def total(settings: dict, policies: dict, hosts: list[str], out: str) -> dict:
    """The audit end to end, as the audit action runs it with source=bucket, verify=heads."""
    facts = fleet_facts_from_bucket(dict(settings, verify="heads"), hosts)
    document = FleetAudit(policies, facts, source="bucket", now=NOW).document()
    write_audit(out, document)
    return document


def timed(call) -> tuple[float, float, object]:
    started, cpu = time.perf_counter(), time.process_time()
    result = call()
    return time.perf_counter() - started, time.process_time() - cpu, result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def medians(samples: list[tuple]) -> dict:
    return {"median_wall_s": median([s[0] for s in samples]), "median_cpu_s": median([s[1] for s in samples])}


def process_only(hosts_count: int, datasets: int, runs: int, workdir: str) -> dict:
    """The process part at a fleet size moto cannot be filled with in time: bodies generated in memory."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    policies = fleet(hosts_count, datasets)
    hosts = sorted(policies)
    bodies = [record_bytes(head_document(chain(host, datasets)[1])) for host in hosts]
    settings = {"endpoint": "http://127.0.0.1:1", "bucket": BUCKET, "access_key_id": KEY_ID, "secret_access_key": SECRET}
    steps: dict[str, list] = {}
    samples = [timed(lambda: process(settings, policies, hosts, bodies, os.path.join(workdir, "report"), steps))[:2] for _run in range(runs)]
    decoding = [timed(lambda: decode_only(bodies))[:2] for _run in range(runs)]
    return {"hosts": hosts_count, "datasets_per_host": datasets, "runs": runs, "cores": 1, "head_bytes": sum(len(b) for b in bodies),
            "process": medians(samples), "process_steps_median_cpu_s": {step: median(values) for step, values in steps.items()},
            "json_decoding_alone": medians(decoding), "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--datasets", type=int, default=5)
    parser.add_argument("--chain-hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--process-only", type=int, default=0)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="restorable-bench-audit-", dir="/var/tmp")
    if args.process_only:
        try:
            print(json.dumps(process_only(args.process_only, args.datasets, args.runs, workdir)))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return
    cores = sorted(os.sched_getaffinity(0))
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
        out = os.path.join(workdir, "report")
        samples: dict[str, list] = {"bare": [], "fetch": [], "process": [], "total": []}
        document: dict = {}
        for _run in range(args.runs):  # interleaved: a change of the machine's load touches every part alike
            samples["bare"].append(bare_fetch(settings, hosts, workdir, cores[0]))
            wall, cpu, bodies = timed(lambda: fetch(settings, hosts))
            samples["fetch"].append((wall, cpu))
            samples["process"].append(timed(lambda: process(settings, policies, hosts, bodies, out))[:2])
            wall, cpu, document = timed(lambda: total(settings, policies, hosts, out))
            samples["total"].append((wall, cpu))
            print("run %d: %s" % (_run + 1, {k: [round(x, 2) for x in v[-1]] for k, v in samples.items()}), file=sys.stderr)
        summary = document["summary"]
        assert summary["hosts"] == args.hosts and summary["datasets"] == args.hosts * args.datasets, summary
        result.update({name: medians(values) for name, values in samples.items()})
        result["summary"] = summary
        result["report_bytes"] = {name: os.path.getsize(os.path.join(out, name)) for name in ("audit.json", "junit.xml", "audit.html")}
        result["fetch_over_bare_wall"] = round(result["fetch"]["median_wall_s"] / result["bare"]["median_wall_s"], 2)
        result["total_over_bare_wall"] = round(result["total"]["median_wall_s"] / result["bare"]["median_wall_s"], 2)
        if args.chain_hosts:
            result["chain"] = chain_pass(settings, hosts[:args.chain_hosts], args.runs, workdir)
        print(json.dumps(result))
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
