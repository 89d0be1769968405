#!/usr/bin/env python
"""Benchmark: the host tier (VM points through libvirt's backup job into restic) against the bare
tools, in the same run, on a private libvirtd running real (TCG) guests.

Needs root, libvirt (libvirtd, virsh), qemu, restic and the cached test guest
(scripts/build-guest-image, built on first use). It starts its own libvirtd in a private mount
namespace (tests/system/hypervisor's LibvirtDaemon) below /var/tmp/restorable-bench/host, boots
the guests it needs there, and stops the daemon, its virtlogd and every qemu by PID at the end
(also on failure, Ctrl-C or SIGTERM); the work directory is emptied at the start and removed at
the end. Every guest has an ext4 vda (32 MiB) and a blank thin qcow2 vdb; every job selects only
its VM and only vdb (`disks: {include: [vdb]}`), so the figures are those of vdb's data. "Dirty N
MiB" means: N MiB of random data in distinct random 64 KiB blocks (aligned, libvirt's bitmap
granularity) of vdb, written inside the guest in ONE guest-exec of /bin/sh -c looping busybox
`dd if=/dev/urandom of=/dev/vdb bs=65536 seek=BLOCK count=1 conv=notrunc`, then `sync`.

  1  incremental bytes: VM A, vdb 4 GiB (--disk-mib); a full first (untimed), then each round
     dirties 64 MiB (--dirty-mib) and runs the incremental; restic's data_added of the VM's point
     (the run status' vms[].bytes_added) over the bytes dirtied. Target: median <= 1.1.
  2  cost follows changed data: VMs C (vdb 1 GiB, --small-mib) and D (vdb 16 GiB, --large-mib),
     one job each; a full each first (untimed); each round dirties 64 MiB of each and times its
     incremental (run_job, in process), C and D in alternating order. Target: median(D) /
     median(C) <= 1.5.
  3  full backup against the same work by hand: VM B whose vdb (1 GiB, --data-mib) holds random
     data written once at setup (in the guest: dd if=/dev/urandom of=/dev/vdb bs=1M count=...).
       a  by hand:  virsh -c URI backup-begin B backup.xml (push, qcow2 target for vdb, vda
                    backup='no', no checkpoint), virsh domjobinfo polled every 0.2 s (the
                    product's interval) until no job, domjobinfo --completed, then
                    restic -r REPO backup --json --host H TARGETFILE; the target file is fresh
                    each round and removed after (untimed)
       b  the tier: the host tier's Runner with mode full (tests' run_job, in process)
     Each variant backs up into a freshly initialised repository (init untimed), so both store
     the whole disk every round: with one repository, restic's deduplication would depend on how
     the qcow2 target's clusters happened to be laid out. a and b alternate (ab, ba, ...).
     Target: median of the per-round ratios b/a <= 1.15.
  5  proxy offload (CPU on the hypervisor): the same full backup of VM B as in 3, run through the
     standalone command line the hosts run (the package install_standalone() writes, started as
     `/usr/bin/python3 -m restorable_agent run --config FILE --ignore-window --ignore-load` in a
     subprocess, fresh repository each run), twice per round in alternating order:
       p  no proxy: the job as a hypervisor runs it (dataset `offload`);
       q  proxy:    the job as a proxy runs it (what the planner's ProxiedJobs writes: dataset
                    `offload-hv01`, tag dataset:offload, the same libvirt URI and scratch
                    directory, which on a real proxy are the hypervisor's remote_uri and storage
                    both see).
     CPU is utime+stime from /proc/PID/stat, before and after, of the guest's qemu (PID from the
     daemon's run/qemu/B.pid) and of libvirtd (plus its reaped children, cutime+cstime); the job's
     whole process tree (python, virsh, qemu-img, restic) is the child's rusage from os.wait4.
     THE ATTRIBUTION IS BY PROCESS ON ONE MACHINE: the proxy is this same machine, so nothing moves;
     without a proxy the job's tree counts to the hypervisor (hypervisor CPU = qemu + libvirtd +
     job tree), with a proxy it counts to the proxy (hypervisor CPU = qemu + libvirtd). On real
     machines the proxy would add network/shared-storage costs this bench does not see.
     A full is the work: every byte then passes qemu on the hypervisor and the job's digests,
     compression, encryption and upload on the proxy, so the split is at its clearest (an
     incremental has the same split on less data). Target: median hypervisor CPU with a proxy /
     median without <= 0.3.
  4  restore of a chain's 6th point: VM B again (after 3 and 5), its own dataset: a full, 5
     incrementals of 64 MiB dirty each (mode incremental), then right after the 6th point a mode
     full point of the same disk state. Each round times materialise() of the 6th point and of the
     full into fresh directories (removed after each), in alternating order; the first round also
     checks both restored images against the points' block digests (untimed). Page caches are not
     dropped. Target: median(chain) / median(full) <= 1.5.

Other load on the machine moves the wall times: compare ratios, and the JSON summary records the
load average before and after. Retention is left out of the jobs (no forget --prune in a timed run).
Reports medians and ratios, exits 0 whether or not a target is met; logs go to stderr, the
figures to stdout, the last line of which is a JSON summary.

    .venv/bin/python bench/host_backup.py [--runs 5] [--quick] [--dirty-mib 64] [--disk-mib 4096]
        [--small-mib 1024] [--large-mib 16384] [--data-mib 1024] [--keep]

--quick (for debugging): 16 MiB dirty, 256 MiB disks (vdb of A and C; D is 16x that), 64 MiB of
data in B, 2 runs; explicit options still win.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SYSTEM_TESTS = REPO / "tests" / "system"
for _path in (SYSTEM_TESTS / "host", SYSTEM_TESTS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
import collection_path  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position  # the checkout's collection

from hypervisor.guest import Guest, GuestImage, domain_xml, guest_cache_dir, make_data_disk  # noqa: E402
from hypervisor.libvirtd import LibvirtDaemon  # noqa: E402
from host_helpers import run_job  # noqa: E402

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import PACKAGE_NAME  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import install_standalone  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.chain import points_by_vm  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.libvirt import virsh_fields  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.restore import materialise  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.vm_restore import job_repository  # noqa: E402

WORK = Path("/var/tmp/restorable-bench/host")
HV = "hv01"  # the hypervisor's name: the job's host, restic's --host
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
MIB = 1 << 20
BLOCK = 64 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL = 0.2  # domjobinfo interval, as Virsh.wait_job
TARGETS = {"incremental_bytes": 1.1, "disk_size_scaling": 1.5, "full_vs_hand": 1.15, "chain_restore": 1.5,
           "proxy_offload": 0.3}
SEED = 20261203


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def paired(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios (the two ran side by side in time)."""
    return statistics.median(n / d for n, d in zip(numerator, denominator))


def checked(argv: list[str], env: dict | None = None, timeout: float = 3600) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise BenchError("%s exited %d: %s" % (" ".join(argv[:4]), result.returncode,
                                               (result.stderr or result.stdout).strip()[-2000:]))
    return result


def proc_cpu(pid: int, children: bool = False) -> float:
    """utime+stime (and cutime+cstime with children) of a process, in seconds."""
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def restic_summary(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            message = json.loads(line)
            if message.get("message_type") == "summary":
                return message
    raise BenchError("restic printed no summary:\n" + stdout[-2000:])


class Vm:
    """A guest of the bench's hypervisor: ext4 vda, blank thin qcow2 vdb."""

    def __init__(self, bench: "Bench", name: str, vdb_mib: int) -> None:
        self.bench = bench
        self.name = name
        self.vdb_bytes = vdb_mib * MIB
        self.uuid = str(uuidlib.uuid4())
        storage = bench.work / "storage"
        self.disks = {"vda": make_data_disk(storage / ("%s-vda.qcow2" % name), 32),
                      "vdb": make_data_disk(storage / ("%s-vdb.qcow2" % name), vdb_mib, ext4=False)}
        self.guest = Guest(name, bench.daemon)
        self.guest.define(domain_xml(name, self.uuid, bench.image.kernel, bench.image.initrd, list(self.disks.items()),
                                     console_log=bench.daemon.console_log(name)))
        self.guest.start()

    def wait(self) -> float:
        return self.guest.wait_agent(timeout=300)

    def qemu_pid(self) -> int:
        return int((self.bench.daemon.root / "run" / "qemu" / ("%s.pid" % self.name)).read_text().strip())

    def sh(self, script: str, timeout: float) -> None:
        """One guest-exec of /bin/sh -c script; polled every 0.5 s (each poll is a virsh call)."""
        pid = self.guest.agent("guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})["pid"]
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(0.5)
            status = self.guest.agent("guest-exec-status", {"pid": pid})
            if status["exited"]:
                break
            if time.monotonic() > deadline:
                raise BenchError("%s: guest command still running after %.0f s" % (self.name, timeout))
        code = status["exitcode"] if "exitcode" in status else -status["signal"]
        if code != 0:
            raise BenchError("%s: guest command exited %d: %s" % (
                self.name, code, base64.b64decode(status.get("err-data", "")).decode(errors="replace")[-1000:]))

    def dirty(self, mib: int, rng: random.Random) -> int:
        """mib MiB of random data in distinct random 64 KiB blocks of vdb; the bytes dirtied."""
        count = (mib * MIB) // BLOCK
        blocks = rng.sample(range(self.vdb_bytes // BLOCK), count)
        script = ("set -e; for n in %s; do dd if=/dev/urandom of=/dev/vdb bs=%d seek=$n count=1 conv=notrunc "
                  "2>/dev/null; done; sync" % (" ".join(map(str, blocks)), BLOCK))
        began = time.monotonic()
        self.sh(script, timeout=1800)
        log("  %s: dirtied %d MiB in %d blocks (%.1f s)" % (self.name, mib, count, time.monotonic() - began))
        return count * BLOCK

    def fill(self, mib: int) -> None:
        began = time.monotonic()
        self.sh("dd if=/dev/urandom of=/dev/vdb bs=1M count=%d 2>/dev/null && sync" % mib, timeout=3600)
        log("  %s: %d MiB of random data written to vdb (%.1f s)" % (self.name, mib, time.monotonic() - began))

    def remove(self) -> None:
        self.bench.daemon.run_virsh("destroy", self.name, check=False)
        self.bench.daemon.run_virsh("undefine", self.name, "--checkpoints-metadata", check=False)
        for path in self.disks.values():
            path.unlink(missing_ok=True)


class Bench:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.password = work / "password"
        self.repo = work / "repo"  # targets 1, 2 and 4 (datasets keep apart by tags)
        self.daemon: LibvirtDaemon | None = None
        self.image: GuestImage | None = None
        self.child: subprocess.Popen | None = None
        self.agent_dir = work / "agent"
        self.rng = random.Random(SEED)
        self.results: dict[str, Any] = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "PYTHON"))}

    # -- set-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        for sub in ("storage", "scratch", "status", "cache", "configs"):
            (self.work / sub).mkdir()
        fd = os.open(self.password, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(16).hex() + "\n")
        self.init_repo(self.repo)
        self.image = GuestImage.build()
        self.daemon = LibvirtDaemon(HV, self.work / "hv", capabilities_cache=guest_cache_dir() / "qemu-capabilities")
        log("libvirtd %s started in %.1f s (%s)" % (HV, self.daemon.start(), self.daemon.uri))

    def restic_env(self) -> dict:
        return dict(self.env, RESTIC_PASSWORD_FILE=str(self.password), RESTIC_CACHE_DIR=str(self.work / "cache"))

    def init_repo(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        checked(["restic", "-r", str(path), "init"], self.restic_env())

    def stop(self) -> None:
        if self.child is not None and self.child.returncode is None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(30)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(10)
        if self.daemon is not None:
            self.daemon.stop()
            log("libvirtd %s stopped" % HV)

    # -- jobs -----------------------------------------------------------------------------------

    def document(self, dataset: str, vm: Vm, mode: str = "incremental", repo: Path | None = None,
                 tags: list[str] | None = None) -> dict:
        return {
            "format": 1, "tier": "host", "dataset": dataset, "host": HV,
            "repository": {"url": str(repo or self.repo), "password_file": str(self.password)},
            "paths": [], "tags": list(tags or []), "status_dir": str(self.work / "status"),
            "restic": {"cache_dir": str(self.work / "cache")},
            "options": {"vms": {"names": [vm.name]}, "disks": {"include": ["vdb"]}, "mode": mode,
                        "libvirt_uri": self.daemon.uri, "scratch_dir": str(self.work / "scratch")},
        }

    def job(self, dataset: str, vm: Vm, **kwargs: Any) -> JobConfig:
        return JobConfig.from_dict(self.document(dataset, vm, **kwargs))

    def run(self, config: JobConfig, vm: Vm, expect: str | None = None) -> tuple[float, dict]:
        """One run in process (the tests' run_job): wall seconds and the VM's entry of the status."""
        began = time.monotonic()
        status = run_job(config)
        seconds = time.monotonic() - began
        return seconds, self.vm_entry(status, vm, expect)

    @staticmethod
    def vm_entry(status: dict, vm: Vm, expect: str | None) -> dict:
        if status.get("result") != "success":
            raise BenchError("dataset %s: %s" % (status.get("dataset"), status.get("reason")))
        entry = next(v for v in status["vms"] if v["name"] == vm.name)
        if expect and entry["kind"] != expect:
            raise BenchError("VM %s: a %s point was taken, expected %s (%s)" % (
                vm.name, entry["kind"], expect, entry.get("reason")))
        return entry

    # -- 1: incremental bytes -------------------------------------------------------------------

    def incremental_bytes(self) -> None:
        args = self.args
        log("1  incremental bytes: VM A, vdb %d MiB, %d MiB dirty per round" % (args.disk_mib, args.dirty_mib))
        vm = Vm(self, "bench-a", args.disk_mib)
        try:
            log("  %s booted in %.1f s" % (vm.name, vm.wait()))
            config = self.job("inc", vm)
            seconds, _entry = self.run(config, vm, "full")
            log("  full (untimed): %.1f s" % seconds)
            added, processed, ratios, times = [], [], [], []
            for round_ in range(args.runs):
                dirty = vm.dirty(args.dirty_mib, self.rng)
                seconds, entry = self.run(config, vm, "incremental")
                added.append(entry["bytes_added"])
                processed.append(entry["bytes_processed"])
                ratios.append(entry["bytes_added"] / dirty)
                times.append(seconds)
                log("  round %d/%d: %d bytes added for %d dirtied (%.3fx), %.1f s" % (
                    round_ + 1, args.runs, entry["bytes_added"], dirty, ratios[-1], seconds))
        finally:
            vm.remove()
        ratio = median(ratios)
        self.results["1_incremental_bytes"] = {
            "dirty_bytes": dirty, "disk_bytes": vm.vdb_bytes, "bytes_added": added, "bytes_processed": processed,
            "ratios": [round(r, 4) for r in ratios], "median_ratio": round(ratio, 4),
            "incremental_seconds": [round(t, 2) for t in times],
            "target_max": TARGETS["incremental_bytes"], "met": ratio <= TARGETS["incremental_bytes"]}

    # -- 2: cost follows changed data -----------------------------------------------------------

    def disk_size_scaling(self) -> None:
        args = self.args
        log("2  disk size: VMs C (vdb %d MiB) and D (vdb %d MiB), %d MiB dirty per round" % (
            args.small_mib, args.large_mib, args.dirty_mib))
        small, large = Vm(self, "bench-c", args.small_mib), Vm(self, "bench-d", args.large_mib)
        try:
            for vm in (small, large):
                log("  %s booted in %.1f s" % (vm.name, vm.wait()))
            configs = {"small": (self.job("size-small", small), small), "large": (self.job("size-large", large), large)}
            for key, (config, vm) in configs.items():
                seconds, _entry = self.run(config, vm, "full")
                log("  %s full (untimed): %.1f s" % (vm.name, seconds))
            samples: dict[str, list[float]] = {"small": [], "large": [], "small_runner": [], "large_runner": [],
                                               "small_bytes_added": [], "large_bytes_added": []}
            for round_ in range(args.runs):
                order = ["small", "large"] if round_ % 2 == 0 else ["large", "small"]
                for key in order:
                    config, vm = configs[key]
                    vm.dirty(args.dirty_mib, self.rng)
                    seconds, entry = self.run(config, vm, "incremental")
                    samples[key].append(seconds)
                    samples[key + "_bytes_added"].append(entry["bytes_added"])
                log("  round %d/%d (%s): small %.2f s, large %.2f s" % (
                    round_ + 1, args.runs, " ".join(order), samples["small"][-1], samples["large"][-1]))
        finally:
            small.remove()
            large.remove()
        ratio = median(samples["large"]) / median(samples["small"])
        self.results["2_disk_size_scaling"] = {
            "small_disk_bytes": small.vdb_bytes, "large_disk_bytes": large.vdb_bytes,
            "dirty_bytes": args.dirty_mib * MIB,
            "seconds": {k: [round(v, 3) for v in samples[k]] for k in ("small", "large")},
            "bytes_added": {k: samples[k + "_bytes_added"] for k in ("small", "large")},
            "median_seconds": {k: round(median(samples[k]), 3) for k in ("small", "large")},
            "ratio_large_over_small": round(ratio, 3),
            "ratio_paired": round(paired(samples["large"], samples["small"]), 3),
            "target_max": TARGETS["disk_size_scaling"], "met": ratio <= TARGETS["disk_size_scaling"]}

    # -- 3: full against the same work by hand ---------------------------------------------------

    def by_hand(self, vm: Vm, repo: Path) -> tuple[float, dict]:
        uri = self.daemon.uri
        scratch = self.work / "scratch-hand"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        target = scratch / "vdb.qcow2"
        backup_xml = scratch / "backup.xml"
        backup_xml.write_text(
            "<domainbackup mode='push'><disks>"
            "<disk name='vda' backup='no'/>"
            "<disk name='vdb' backup='yes' type='file'><driver type='qcow2'/><target file='%s'/></disk>"
            "</disks></domainbackup>\n" % target)
        began = time.monotonic()
        checked(["virsh", "-c", uri, "backup-begin", vm.name, str(backup_xml)])
        while True:
            info = virsh_fields(checked(["virsh", "-c", uri, "domjobinfo", vm.name]).stdout)
            if info.get("Job type", "None") == "None":
                break
            time.sleep(POLL)
        completed = virsh_fields(checked(["virsh", "-c", uri, "domjobinfo", vm.name, "--completed"]).stdout)
        if completed.get("Job type") not in ("Completed", None):
            raise BenchError("backup job by hand ended %s" % completed)
        result = checked(["restic", "-r", str(repo), "backup", "--json", "--host", HV, str(target)], self.restic_env())
        seconds = time.monotonic() - began
        summary = restic_summary(result.stdout)
        shutil.rmtree(scratch)
        return seconds, {"bytes_added": summary.get("data_added"), "bytes_processed": summary.get("total_bytes_processed")}

    def full_vs_hand(self, vm: Vm) -> None:
        args = self.args
        log("3  full backup of %d MiB: by hand (a) against the host tier (b)" % args.data_mib)
        hand_repo, tier_repo = self.work / "repo-hand", self.work / "repo-tier"
        config = self.job("full", vm, mode="full", repo=tier_repo)
        samples: dict[str, list] = {"a": [], "b": [], "a_bytes_added": [], "b_bytes_added": [], "b_runner": []}
        for round_ in range(args.runs):
            order = "ab" if round_ % 2 == 0 else "ba"
            for variant in order:
                repo = hand_repo if variant == "a" else tier_repo
                self.init_repo(repo)
                os.sync()
                if variant == "a":
                    seconds, figures = self.by_hand(vm, repo)
                else:
                    seconds, figures = self.run(config, vm, "full")
                samples[variant].append(seconds)
                samples[variant + "_bytes_added"].append(figures["bytes_added"])
                shutil.rmtree(repo)
            log("  round %d/%d (%s): a %.2f s, b %.2f s, b/a %.3f" % (
                round_ + 1, args.runs, " ".join(order), samples["a"][-1], samples["b"][-1],
                samples["b"][-1] / samples["a"][-1]))
        ratio = paired(samples["b"], samples["a"])
        self.results["3_full_vs_hand"] = {
            "data_bytes": args.data_mib * MIB,
            "seconds": {k: [round(v, 3) for v in samples[k]] for k in "ab"},
            "bytes_added": {k: samples[k + "_bytes_added"] for k in "ab"},
            "median_seconds": {k: round(median(samples[k]), 3) for k in "ab"},
            "median_paired_ratio_b_over_a": round(ratio, 3),
            "ratio_of_medians": round(median(samples["b"]) / median(samples["a"]), 3),
            "target_max": TARGETS["full_vs_hand"], "met": ratio <= TARGETS["full_vs_hand"]}

    # -- 5: proxy offload -----------------------------------------------------------------------

    def cli_run(self, config_path: Path, vm: Vm) -> dict[str, float]:
        """The job through the standalone command line in a subprocess; CPU by process."""
        qemu, libvirtd = vm.qemu_pid(), self.daemon.process.pid
        out_path = self.work / "cli-stdout.json"
        env = dict(self.env, PYTHONPATH=str(self.agent_dir))
        argv = [HOST_PYTHON, "-m", PACKAGE_NAME, "run", "--config", str(config_path), "--ignore-window",
                "--ignore-load"]
        with open(out_path, "w", encoding="utf-8") as out, open(self.work / "cli-stderr.log", "w") as err:
            qemu_before, libvirtd_before = proc_cpu(qemu), proc_cpu(libvirtd, children=True)
            began = time.monotonic()
            self.child = subprocess.Popen(argv, env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            _pid, wait_status, usage = os.wait4(self.child.pid, 0)
            seconds = time.monotonic() - began
            self.child.returncode = os.waitstatus_to_exitcode(wait_status)
            qemu_after, libvirtd_after = proc_cpu(qemu), proc_cpu(libvirtd, children=True)
        if self.child.returncode != 0:
            raise BenchError("the standalone run exited %d: %s" % (
                self.child.returncode, (self.work / "cli-stderr.log").read_text()[-2000:]))
        status = json.loads(out_path.read_text())
        entry = self.vm_entry(status, vm, "full")
        return {"seconds": seconds, "qemu_cpu": qemu_after - qemu_before,
                "libvirtd_cpu": libvirtd_after - libvirtd_before, "job_cpu": usage.ru_utime + usage.ru_stime,
                "bytes_added": entry["bytes_added"]}

    def proxy_offload(self, vm: Vm) -> None:
        args = self.args
        log("5  proxy offload: CPU of a full backup of %d MiB, attributed by process" % args.data_mib)
        install_standalone(str(self.agent_dir))
        repo = self.work / "repo-offload"
        configs = {}
        for variant, dataset, tags in (("p", "offload", []), ("q", "offload-" + HV, ["dataset:offload"])):
            path = self.work / "configs" / ("%s.json" % dataset)
            path.write_text(json.dumps(self.document(dataset, vm, mode="full", repo=repo, tags=tags), indent=1))
            configs[variant] = path
        samples: dict[str, list[float]] = {}
        for round_ in range(args.runs):
            order = "pq" if round_ % 2 == 0 else "qp"
            for variant in order:
                self.init_repo(repo)
                os.sync()
                figures = self.cli_run(configs[variant], vm)
                shutil.rmtree(repo)
                figures["hypervisor_cpu"] = figures["qemu_cpu"] + figures["libvirtd_cpu"] + (
                    figures["job_cpu"] if variant == "p" else 0.0)
                for key, value in figures.items():
                    samples.setdefault("%s_%s" % (variant, key), []).append(value)
            log("  round %d/%d (%s): hypervisor CPU without proxy %.2f s, with proxy %.2f s "
                "(qemu %.2f/%.2f, libvirtd %.2f/%.2f, job tree %.2f/%.2f s; wall %.1f/%.1f s)" % (
                    round_ + 1, args.runs, " ".join(order), samples["p_hypervisor_cpu"][-1],
                    samples["q_hypervisor_cpu"][-1], samples["p_qemu_cpu"][-1], samples["q_qemu_cpu"][-1],
                    samples["p_libvirtd_cpu"][-1], samples["q_libvirtd_cpu"][-1], samples["p_job_cpu"][-1],
                    samples["q_job_cpu"][-1], samples["p_seconds"][-1], samples["q_seconds"][-1]))
        ratio = median(samples["q_hypervisor_cpu"]) / median(samples["p_hypervisor_cpu"])
        self.results["5_proxy_offload"] = {
            "attribution": "by process on one machine: qemu + libvirtd to the hypervisor; the job's process "
                           "tree to the hypervisor without a proxy (p), to the proxy with one (q)",
            "work": "full backup of vdb (%d MiB of data), fresh repository each run" % args.data_mib,
            "samples": {k: [round(v, 3) for v in vals] for k, vals in sorted(samples.items())},
            "median": {k: round(median(vals), 3) for k, vals in sorted(samples.items())},
            "ratio_hypervisor_cpu_proxy_over_no_proxy": round(ratio, 3),
            "ratio_paired": round(paired(samples["q_hypervisor_cpu"], samples["p_hypervisor_cpu"]), 3),
            "target_max": TARGETS["proxy_offload"], "met": ratio <= TARGETS["proxy_offload"]}

    # -- 4: restore of a chain's 6th point ------------------------------------------------------

    def chain_restore(self, vm: Vm) -> None:
        args = self.args
        log("4  restore: 6th point of a chain (full + 5 incrementals of %d MiB) against a full of the same state"
            % args.dirty_mib)
        config = self.job("chain", vm)
        seconds, _entry = self.run(config, vm, "full")
        log("  chain full: %.1f s" % seconds)
        for step in range(5):
            vm.dirty(args.dirty_mib, self.rng)
            seconds, _entry = self.run(config, vm, "incremental")
            log("  incremental %d/5: %.1f s" % (step + 1, seconds))
        seconds, _entry = self.run(self.job("chain", vm, mode="full"), vm, "full")
        log("  full of the same state: %.1f s" % seconds)
        repo = job_repository(config)
        points = points_by_vm(repo.snapshots(tags=["dataset:chain"]))[vm.uuid]
        shape = [(p.kind, p.position) for p in points]
        if shape != [("full", 0)] + [("incremental", i) for i in range(1, 6)] + [("full", 0)]:
            raise BenchError("unexpected points of the chain dataset: %s" % shape)
        chosen = {"chain": points[5], "full": points[6]}
        samples: dict[str, list[float]] = {}
        verified: dict[str, Any] = {}
        for round_ in range(args.runs):
            order = ["chain", "full"] if round_ % 2 == 0 else ["full", "chain"]
            for key in order:
                directory = self.work / ("restore-%s" % key)
                shutil.rmtree(directory, ignore_errors=True)
                began = time.monotonic()
                restored = materialise(repo, chosen[key], points, str(directory))
                seconds = time.monotonic() - began
                samples.setdefault(key, []).append(seconds)
                samples.setdefault(key + "_restic", []).append(restored.restore_seconds)
                samples.setdefault(key + "_merge", []).append(restored.merge_seconds)
                if round_ == 0:
                    verified[key] = {"chain_length": len(restored.chain), "differing_blocks": {
                        t: len(b) for t, b in restored.verify().items()}}
                shutil.rmtree(directory)
            log("  round %d/%d (%s): chain %.2f s (restic %.2f, merge %.2f), full %.2f s" % (
                round_ + 1, args.runs, " ".join(order), samples["chain"][-1], samples["chain_restic"][-1],
                samples["chain_merge"][-1], samples["full"][-1]))
        ratio = median(samples["chain"]) / median(samples["full"])
        self.results["4_chain_restore"] = {
            "data_bytes": args.data_mib * MIB, "dirty_bytes_per_incremental": args.dirty_mib * MIB,
            "verified_first_round": verified,
            "seconds": {k: [round(v, 3) for v in vals] for k, vals in sorted(samples.items())},
            "median_seconds": {k: round(median(vals), 3) for k, vals in sorted(samples.items())},
            "ratio_chain_over_full": round(ratio, 3),
            "ratio_paired": round(paired(samples["chain"], samples["full"]), 3),
            "target_max": TARGETS["chain_restore"], "met": ratio <= TARGETS["chain_restore"]}

    def data_vm_targets(self) -> None:
        args = self.args
        vm = Vm(self, "bench-b", args.data_mib)
        try:
            log("VM B: %s booted in %.1f s" % (vm.name, vm.wait()))
            vm.fill(args.data_mib)
            if 3 in args.targets:
                self.full_vs_hand(vm)
            if 5 in args.targets:
                self.proxy_offload(vm)
            if 4 in args.targets:
                self.chain_restore(vm)
        finally:
            vm.remove()


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {"restic": first_line(["restic", "version"]), "libvirtd": first_line(["libvirtd", "--version"]),
            "qemu": first_line(["qemu-system-x86_64", "--version"])}


def collection_version() -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO)] + list(args), capture_output=True, text=True,
                              check=False).stdout.strip()
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain", "--", "plugins"))}


def report(results: dict) -> None:
    def met(entry: dict) -> str:
        return "met" if entry["met"] else "NOT met"
    if "1_incremental_bytes" in results:
        r = results["1_incremental_bytes"]
        print("1 incremental bytes added: median %.1f MiB for %.1f MiB dirtied on a %d MiB disk, ratio %.3f "
              "(target <= %.2f): %s" % (
                  median(r["bytes_added"]) / MIB, r["dirty_bytes"] / MIB, r["disk_bytes"] // MIB,
                  r["median_ratio"], r["target_max"], met(r)))
    if "2_disk_size_scaling" in results:
        r = results["2_disk_size_scaling"]
        print("2 incremental of %d MiB dirty: %d MiB disk %.2f s, %d MiB disk %.2f s, ratio %.3f (paired %.3f) "
              "(target <= %.2f): %s" % (
                  r["dirty_bytes"] // MIB, r["small_disk_bytes"] // MIB, r["median_seconds"]["small"],
                  r["large_disk_bytes"] // MIB, r["median_seconds"]["large"], r["ratio_large_over_small"],
                  r["ratio_paired"], r["target_max"], met(r)))
    if "3_full_vs_hand" in results:
        r = results["3_full_vs_hand"]
        print("3 full backup of %d MiB: by hand %.2f s, host tier %.2f s, median ratio b/a %.3f (of medians %.3f) "
              "(target <= %.2f): %s" % (
                  r["data_bytes"] // MIB, r["median_seconds"]["a"], r["median_seconds"]["b"],
                  r["median_paired_ratio_b_over_a"], r["ratio_of_medians"], r["target_max"], met(r)))
    if "4_chain_restore" in results:
        r = results["4_chain_restore"]
        m = r["median_seconds"]
        print("4 restore: 6th point of the chain %.2f s (restic %.2f, merge %.2f), full of the same state %.2f s, "
              "ratio %.3f (paired %.3f) (target <= %.2f): %s" % (
                  m["chain"], m["chain_restic"], m["chain_merge"], m["full"], r["ratio_chain_over_full"],
                  r["ratio_paired"], r["target_max"], met(r)))
    if "5_proxy_offload" in results:
        r = results["5_proxy_offload"]
        m = r["median"]
        print("5 hypervisor CPU of a full backup: without proxy %.2f s (qemu %.2f + libvirtd %.2f + job tree %.2f), "
              "with proxy %.2f s (qemu %.2f + libvirtd %.2f; the job tree's %.2f s on the proxy), ratio %.3f "
              "(paired %.3f) (target <= %.2f): %s [attributed by process on one machine]" % (
                  m["p_hypervisor_cpu"], m["p_qemu_cpu"], m["p_libvirtd_cpu"], m["p_job_cpu"], m["q_hypervisor_cpu"],
                  m["q_qemu_cpu"], m["q_libvirtd_cpu"], m["q_job_cpu"], r["ratio_hypervisor_cpu_proxy_over_no_proxy"],
                  r["ratio_paired"], r["target_max"], met(r)))


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the daemon


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, help="rounds; each times every variant once (default 5, --quick 2)")
    parser.add_argument("--quick", action="store_true", help="small sizes for debugging (16 MiB dirty, 256 MiB "
                        "disks, 64 MiB data, 2 runs)")
    parser.add_argument("--dirty-mib", type=int, help="data dirtied before each incremental (default 64)")
    parser.add_argument("--disk-mib", type=int, help="vdb of VM A, target 1 (default 4096)")
    parser.add_argument("--small-mib", type=int, help="vdb of VM C, target 2 (default 1024)")
    parser.add_argument("--large-mib", type=int, help="vdb of VM D, target 2 (default 16384)")
    parser.add_argument("--data-mib", type=int, help="random data in VM B's vdb, targets 3-5 (default 1024)")
    parser.add_argument("--keep", action="store_true", help="leave the work directory (the daemon stops anyway)")
    parser.add_argument("--targets", default="1,2,3,4,5", help="which targets to measure (default 1,2,3,4,5)")
    args = parser.parse_args()
    args.targets = {int(t) for t in args.targets.split(",") if t.strip()}
    defaults = dict(runs=5, dirty_mib=64, disk_mib=4096, small_mib=1024, large_mib=16384, data_mib=1024)
    if args.quick:
        defaults.update(runs=2, dirty_mib=16, disk_mib=256, small_mib=256, large_mib=256 * 16, data_mib=64)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.dirty_mib * MIB % BLOCK or args.dirty_mib > min(args.disk_mib, args.small_mib, args.data_mib):
        parser.error("--dirty-mib must be a multiple of 64 KiB and fit on every disk")
    if os.geteuid() != 0:
        parser.error("needs root (a privileged libvirtd in its own mount namespace)")

    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    bench = Bench(WORK, args)
    try:
        bench.start()
        if 1 in args.targets:
            bench.incremental_bytes()
        if 2 in args.targets:
            bench.disk_size_scaling()
        if args.targets & {3, 4, 5}:
            bench.data_vm_targets()
    finally:
        bench.stop()
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    load_after = os.getloadavg()
    results = bench.results
    report(results)
    summary = {
        "bench": "host_backup", "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "runs": args.runs,
        "quick": args.quick, "sizes_mib": {k: getattr(args, k) for k in ("dirty_mib", "disk_mib", "small_mib",
                                                                         "large_mib", "data_mib")},
        "versions": versions(), "collection": collection_version(),
        "loadavg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "targets_met": {k: v["met"] for k, v in sorted(results.items())},
        "results": results,
        "seconds": round((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds(), 1),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
