#!/usr/bin/env python
"""Benchmark: a restore drill of an agent dataset against a bare restic restore, in the same run.

1 GiB of random data (several files; the agent_backup.py data are reused when present) is
backed up once into a local restic repository. Each round then runs, in alternating order:

  a  bare restore:     restic -r REPO restore latest --target DIR
                       then, over the same restored files (not part of a):
                       openssl dgst -sha256 DIR/<every file>
  b  the drill:        run_agent_drill(params) from plugins/module_utils/tiers/agent/drill.py, in
                       process, with the drill module's defaults (checks integrity, freshness,
                       content; read_data_subset 5%; sample all) on the same repository and
                       password, sandbox below the work directory. Its restore step is
                       `restic restore <id> --target DIR --verify`; the RTO is what the drill
                       record says (rto.seconds: the restore without the verification restic
                       times in the same command); the content layer's seconds are that
                       verification; the whole drill (integrity check, snapshot listing,
                       layers, clean-up) is timed around the call.
  c  bare --verify:    restic -r REPO restore latest --target DIR --verify

One untimed bare restore first warms the page cache.
The drill's content layer is restic's own verification, fused into the restore; its
throughput is the restored bytes over the layer's seconds, compared with openssl dgst -sha256
over the same files. c - a is printed as a cross-check of that verification time.
Restore directories are removed after each step. Reports medians and ratios and exits 0
whether or not a target is met; the last line of output is a JSON summary.

    .venv/bin/python bench/drill_restore.py [--runs 5] [--size-mib 1024] [--files 8]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_ROOT = Path("/var/tmp/restorable-bench")
AGENT_DATA = BENCH_ROOT / "agent-backup" / "data"
DATASET = "bench"
HOST = "bench-host"
PASSWORD = "drill-bench-password"
RTO_TARGET = 1.1
VERIFY_TARGET = 0.7
CHUNK = 4 << 20


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_data(directory: Path, size_mib: int, files: int) -> Path:
    """The agent_backup.py data when complete, else files x size_mib/files MiB generated once."""
    marker = AGENT_DATA / ".complete"
    if marker.exists():
        return AGENT_DATA
    want = "%d MiB in %d files" % (size_mib, files)
    own = directory / ".complete"
    if own.exists() and own.read_text(encoding="utf-8").strip() == want:
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    per_file = (size_mib << 20) // files
    for index in range(files):
        with open(directory / ("random-%02d.bin" % index), "wb") as handle:
            left = per_file
            while left > 0:
                block = os.urandom(min(CHUNK, left))
                handle.write(block)
                left -= len(block)
    own.write_text(want + "\n", encoding="utf-8")
    return directory


def data_files(root: Path) -> list[str]:
    found = []
    for directory, _dirs, names in os.walk(root):
        found += [os.path.join(directory, name) for name in names]
    return sorted(found)


def tree_bytes(root: Path) -> int:
    return sum(os.path.getsize(path) for path in data_files(root))


def restic(work: Path, args: list[str]) -> list[str]:
    return ["restic", "-r", str(work / "repo"), "--password-file", str(work / "password"),
            "--cache-dir", str(work / "cache")] + args


def timed(argv: list[str]) -> float:
    began = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - began


def prepare(work: Path, data: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "password").write_text(PASSWORD, encoding="utf-8")
    os.chmod(work / "password", 0o600)
    subprocess.run(restic(work, ["init"]), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = timed(restic(work, ["backup", "--host", HOST, "--tag", "dataset:" + DATASET, str(data)]))
    log("backup of %s: %.1fs" % (data, seconds))


def bare_restore(work: Path, verify: bool) -> tuple[float, Path]:
    target = work / ("bare-verify" if verify else "bare")
    shutil.rmtree(target, ignore_errors=True)
    args = ["restore", "latest", "--host", HOST, "--target", str(target)] + (["--verify"] if verify else [])
    return timed(restic(work, args)), target


def openssl(target: Path) -> float:
    files = data_files(target)
    began = time.monotonic()
    subprocess.run(["openssl", "dgst", "-sha256"] + files, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - began


def drill(work: Path) -> tuple[float, dict]:
    from ansible_collections.restorable.backup.plugins.module_utils.tiers.agent.drill import run_agent_drill
    params = {
        "drill": "bench", "dataset": DATASET, "source_host": HOST, "sandbox": str(work / "sandbox"),
        "protected_paths": [str(AGENT_DATA)], "recovery_point": {"choice": "latest"}, "sample": {"mode": "all"},
        "checks": ["integrity", "freshness", "content"], "read_data_subset": "5%",
        "repository": {"url": str(work / "repo"), "password": PASSWORD},
    }
    began = time.monotonic()
    record = run_agent_drill(params)
    return time.monotonic() - began, record


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workdir", default=str(BENCH_ROOT / "drill"))
    parser.add_argument("--collections-path", default=str(REPO / "collections"))
    args = parser.parse_args()
    sys.path.insert(0, args.collections_path)

    load_before = os.getloadavg()
    data = ensure_data(BENCH_ROOT / "drill-data", args.size_mib, args.files)
    work = Path(args.workdir)
    prepare(work, data)
    size = tree_bytes(data)
    warm, target = bare_restore(work, verify=False)  # warm-up, not counted: repository into the page cache
    shutil.rmtree(target)
    log("warm-up restore: %.2fs" % warm)

    samples: dict[str, list[float]] = {"bare": [], "bare_verify": [], "drill_rto": [], "drill_total": [],
                                       "drill_verify": [], "openssl": [], "verify": []}
    layer_seconds: dict[str, list[float]] = {}
    results = []
    for index in range(args.runs):
        order = ["a", "c", "b"] if index % 2 == 0 else ["b", "c", "a"]
        row: dict[str, float] = {}
        for step in order:
            if step == "a":
                row["bare"], target = bare_restore(work, verify=False)
                restored = tree_bytes(target)
                if restored != size:
                    log("warning: bare restore brought back %d bytes, expected %d" % (restored, size))
                row["openssl"] = openssl(target)
                shutil.rmtree(target)
            elif step == "c":
                row["bare_verify"], target = bare_restore(work, verify=True)
                shutil.rmtree(target)
            else:
                row["drill_total"], record = drill(work)
                results.append(record["result"])
                row["drill_rto"] = float(record["rto"]["seconds"] or "nan")
                row["drill_verify"] = next(layer["seconds"] for layer in record["layers"] if layer["name"] == "content")
                for layer in record["layers"]:
                    layer_seconds.setdefault(layer["name"], []).append(layer["seconds"])
                if record["result"] != "passed" or record["bytes"] != size or not record.get("cleaned"):
                    log("warning: drill %s (%s), %s bytes, cleaned %s" % (
                        record["result"], record["reason"], record["bytes"], record.get("cleaned")))
        row["verify"] = row["bare_verify"] - row["bare"]
        for key, value in row.items():
            samples[key].append(value)
        log("round %d (%s): %s" % (index + 1, "".join(order), ", ".join(
            "%s %.2fs" % (key, value) for key, value in sorted(row.items()))))

    med = {key: median(values) for key, values in samples.items()}
    rates = ("bare", "bare_verify", "drill_rto", "drill_verify", "openssl", "verify")
    mbs = {key: size / med[key] / 1e6 if med[key] > 0 else None for key in rates}
    rto_ratio = med["drill_rto"] / med["bare"]
    rto_verify_ratio = med["drill_rto"] / med["bare_verify"]
    verify_ratio = med["openssl"] / med["drill_verify"] if med["drill_verify"] > 0 else None
    summary = {
        "bench": "drill_restore", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "runs": args.runs, "bytes": size, "data": str(data), "restic": subprocess.run(
            ["restic", "version"], check=True, capture_output=True, text=True).stdout.strip(),
        "median_seconds": {key: round(value, 3) for key, value in med.items()},
        "samples": {key: [round(v, 3) for v in values] for key, values in samples.items()},
        "median_layer_seconds": {key: round(median(values), 3) for key, values in layer_seconds.items()},
        "mb_per_second": {key: round(value, 1) if value else None for key, value in mbs.items()},
        "rto_ratio_drill_over_bare": round(rto_ratio, 3), "rto_target": RTO_TARGET,
        "rto_target_met": rto_ratio <= RTO_TARGET,
        "rto_ratio_drill_over_bare_verify": round(rto_verify_ratio, 3),
        "verify_ratio_over_openssl": round(verify_ratio, 3) if verify_ratio else None,
        "verify_target": VERIFY_TARGET, "verify_target_met": bool(verify_ratio and verify_ratio >= VERIFY_TARGET),
        "drill_results": results,
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    print("restore RTO: bare %.2fs, drill %.2fs (as recorded), ratio %.3f (target <= %.1f)" % (
        med["bare"], med["drill_rto"], rto_ratio, RTO_TARGET))
    print("restore RTO against bare restore --verify (the same restic work): %.2fs, ratio %.3f" % (
        med["bare_verify"], rto_verify_ratio))
    print("whole drill: %.2fs median (layers: %s)" % (med["drill_total"], ", ".join(
        "%s %.2fs" % (key, value) for key, value in summary["median_layer_seconds"].items())))
    print("content verification: drill content layer %.2fs = %.0f MB/s (bare --verify minus bare: %.2fs);"
          " openssl dgst -sha256 %.2fs = %.0f MB/s; ratio %s (target >= %.1f)" % (
              med["drill_verify"], mbs["drill_verify"] or 0, med["verify"], med["openssl"], mbs["openssl"] or 0,
              summary["verify_ratio_over_openssl"], VERIFY_TARGET))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
