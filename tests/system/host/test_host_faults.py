"""The host tier when things go wrong on a real hypervisor: a VM that moves between hypervisors
in the middle of its chain, bitmaps lost behind the collection's back, a resized disk, guest
freezes with and without the agent, a runner killed while the guest is frozen, a storage target
that dies mid-upload, chain-aware retention, and restores that must never touch the original.

One guest (faults1, booted once for the module) serves every case but the agent-less one; each
case uses its own dataset, so its chains are its own."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import collection_path

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.chain import (
    FULL, INCREMENTAL, lineage, points_by_vm)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.restore import RestoreRefused, materialise
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.vm_restore import job_repository, restore_vm

from hypervisor.guest import Guest, domain_xml, make_data_disk
from hypervisor.libvirtd import LibvirtDaemon
from host_helpers import MIB, Lab, host_job, raw_bytes, run_job, vm_of

NAME = "faults1"
TCP_PROXY = Path(__file__).resolve().parents[1] / "agent" / "tcp_proxy.py"
RUNTIME = "ansible_collections.restorable.backup.plugins.module_utils.runtime"
EXT4_INCOMPAT_RECOVER = 0x4  # the journal needs recovery: the filesystem was captured mounted, not frozen


# -- the guest ---------------------------------------------------------------------------------

def _domain_xml(lab: Lab, daemon: LibvirtDaemon, image) -> str:
    """The lab's domain with a (user-mode) network interface, which a restored copy must not get."""
    root = ET.fromstring(domain_xml(NAME, lab.uuid, image.kernel, image.initrd, list(lab.disks.items()),
                                    console_log=daemon.console_log(NAME)))
    interface = ET.SubElement(root.find("devices"), "interface", type="user")
    ET.SubElement(interface, "model", type="virtio")
    ET.SubElement(interface, "rom", enabled="no")  # no option ROM file needed
    return ET.tostring(root, encoding="unicode")


def _define_and_start(lab: Lab, daemon: LibvirtDaemon, image) -> None:
    lab.guest = Guest(NAME, daemon)
    lab.guest.define(_domain_xml(lab, daemon, image))
    lab.guest.start()
    lab.guest.wait_agent(timeout=120)


@pytest.fixture(scope="module")
def lab(hypervisors, guest_image):
    storage = hypervisors.storage
    disks = {"vda": make_data_disk(storage / f"{NAME}-vda.qcow2", 32),
             "vdb": make_data_disk(storage / f"{NAME}-vdb.qcow2", 16, ext4=False)}
    lab = Lab(Guest(NAME, hypervisors.hv01), str(uuid.uuid4()), disks, 16 * MIB, bytearray(16 * MIB))
    try:
        _define_and_start(lab, hypervisors.hv01, guest_image)
        yield lab
    finally:
        for daemon in (hypervisors.hv01, hypervisors.hv02):
            daemon.run_virsh("destroy", NAME, check=False)
            daemon.run_virsh("undefine", NAME, "--checkpoints-metadata", check=False)


def _running(lab: Lab) -> None:
    """Each case starts with the guest up (the one before may have shut it off)."""
    if lab.guest.state() == "shut off":
        lab.guest.start()
        lab.guest.wait_agent(timeout=120)


def _move(lab: Lab, source: LibvirtDaemon, target: LibvirtDaemon, image, while_off=None) -> None:
    """A cold migration over shared storage: clean shutdown, undefined here (the disks stay),
    defined there with the same UUID and disks, started."""
    lab.guest.shutdown()
    source.virsh("undefine", NAME, "--checkpoints-metadata")
    if while_off is not None:
        while_off()
    _define_and_start(lab, target, image)


def _bitmaps(disk: Path) -> list[str]:
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(disk)], check=True,
                                     capture_output=True, text=True, timeout=60).stdout)
    return [b["name"] for b in info.get("format-specific", {}).get("data", {}).get("bitmaps", [])]


def _remove_bitmap(disk: Path, name: str) -> None:
    """What an administrator's qemu-img does to a shut-off VM's disk behind the collection's back."""
    assert name in _bitmaps(disk), (disk, _bitmaps(disk))
    subprocess.run(["qemu-img", "bitmap", "--remove", str(disk), name], check=True, capture_output=True, timeout=60)
    assert name not in _bitmaps(disk)


def _checkpoints(daemon: LibvirtDaemon, dataset: str) -> list[str]:
    return [n for n in daemon.virsh("checkpoint-list", NAME, "--name").split() if n.startswith(f"rbk-{dataset}-")]


# -- runs and restores -------------------------------------------------------------------------

def _ok(status: dict, name: str = NAME) -> dict:
    assert status["result"] == "success", status["reason"]
    return vm_of(status, name)


def _restored(config: JobConfig, lab: Lab, point_id: str, directory: Path):
    """The point materialised in directory, its blocks checked against the digests it recorded."""
    repo = job_repository(config)
    points = points_by_vm(repo.snapshots(tags=[config.dataset_tag]))[lab.uuid]
    point = next(p for p in points if p.id.startswith(point_id))
    restored = materialise(repo, point, points, str(directory))
    assert restored.verify() == {"vda": [], "vdb": []}, restored.chain
    return restored


def _restored_vdb(config: JobConfig, lab: Lab, point_id: str, tmp_path: Path, name: str) -> bytes:
    return raw_bytes(Path(_restored(config, lab, point_id, tmp_path / name).disks["vdb"]), tmp_path)


def _ext4_needs_recovery(image: Path, scratch: Path) -> bool:
    superblock = raw_bytes(image, scratch)[1024:2048]
    assert struct.unpack_from("<H", superblock, 0x38)[0] == 0xEF53, "no ext4 superblock"
    return bool(struct.unpack_from("<I", superblock, 0x60)[0] & EXT4_INCOMPAT_RECOVER)


def _cli(config: JobConfig, tmp_path: Path, name: str, path_prefix: str | None = None) -> subprocess.Popen:
    """The job run as a host runs it: the standalone CLI in a process (and session) of its own."""
    config_file = tmp_path / f"{name}.json"
    config_file.write_text(json.dumps(config.to_dict()))
    env = dict(os.environ, PYTHONPATH=collection_path.COLLECTIONS)
    if path_prefix:
        env["PATH"] = path_prefix + os.pathsep + env["PATH"]
    with open(tmp_path / f"{name}.out", "wb") as out, open(tmp_path / f"{name}.err", "wb") as err:
        return subprocess.Popen([sys.executable, "-m", RUNTIME, "run", "--config", str(config_file), "--ignore-window",
                                 "--ignore-load"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                cwd="/", start_new_session=True)


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


# -- 1: migration mid-chain -------------------------------------------------------------------

def test_a_vm_moved_to_hv02_continues_its_chain_and_back_on_hv01_without_its_bitmap_takes_a_full(
        lab, hypervisors, guest_image, restic_local_repo, tmp_path):
    hv01, hv02 = hypervisors.hv01, hypervisors.hv02
    _running(lab)
    assert lab.guest.daemon is hv01
    on01 = host_job("moved", tmp_path / "hv01", restic_local_repo, hv01, {"names": [NAME]})
    on02 = host_job("moved", tmp_path / "hv02", restic_local_repo, hv02, {"names": [NAME]})
    for step, seed in enumerate((101, 102)):
        lab.write(step * 2 * MIB, 128 * 1024, seed)
        vm = _ok(run_job(on01))
        assert (vm["kind"], vm["position"]) == ((FULL, 0) if step == 0 else (INCREMENTAL, 1)), vm

    _move(lab, hv01, hv02, guest_image)
    assert hv02.virsh("domuuid", NAME).strip() == lab.uuid
    lab.write(5 * MIB + 4096, 128 * 1024, 103)
    vm = _ok(run_job(on02))
    assert (vm["kind"], vm["position"], vm["reason"]) == (INCREMENTAL, 2, "continues the chain from hv01"), vm["reason"]
    assert vm["bytes_added"] < 2 * MIB  # what changed, not the disks
    restored = _restored(on02, lab, vm["point"], tmp_path / "on02")
    assert len(restored.chain) == 3  # hv01's full and incremental, then hv02's incremental
    assert raw_bytes(Path(restored.disks["vdb"]), tmp_path) == bytes(lab.vdb)

    # Back to hv01, the bitmap the next incremental would start from deleted while shut off.
    newest = vm["checkpoint"]

    def drop_bitmap() -> None:
        for disk in lab.disks.values():
            _remove_bitmap(disk, newest)

    _move(lab, hv02, hv01, guest_image, while_off=drop_bitmap)
    lab.write(7 * MIB, 64 * 1024, 104)
    vm = _ok(run_job(on01))
    assert vm["kind"] == FULL and vm["position"] == 0, vm
    assert vm["reason"].startswith(f"migrated from hv02: checkpoint {newest} cannot be used here"), vm["reason"]
    assert _checkpoints(hv01, "moved") == [vm["checkpoint"]]


# -- 2: a bitmap deleted behind the collection's back -----------------------------------------

def test_a_bitmap_deleted_behind_the_collections_back_means_a_full_never_a_wrong_incremental(
        lab, hypervisors, restic_local_repo, tmp_path):
    hv01 = hypervisors.hv01
    _running(lab)
    config = host_job("lostbitmap", tmp_path, restic_local_repo, hv01, {"names": [NAME]})
    lab.write(MIB, 64 * 1024, 201)
    assert _ok(run_job(config))["kind"] == FULL
    lab.write(3 * MIB, 64 * 1024, 202)
    vm = _ok(run_job(config))
    assert vm["kind"] == INCREMENTAL
    newest = vm["checkpoint"]

    lab.guest.shutdown()
    for disk in lab.disks.values():
        _remove_bitmap(disk, newest)
    lab.guest.start()
    lab.guest.wait_agent(timeout=120)
    assert newest in _checkpoints(hv01, "lostbitmap")  # libvirt still believes in it
    lab.write(6 * MIB, 64 * 1024, 203)

    vm = _ok(run_job(config))
    assert (vm["kind"], vm["position"]) == (FULL, 0), vm
    assert vm["reason"].startswith("bitmap lost or unusable"), vm["reason"]
    assert _checkpoints(hv01, "lostbitmap") == [vm["checkpoint"]]
    assert _restored_vdb(config, lab, vm["point"], tmp_path, "lost") == bytes(lab.vdb)


# -- 3: a resized disk -----------------------------------------------------------------------

def test_a_resized_disk_starts_a_new_chain(lab, hypervisors, restic_local_repo, tmp_path):
    hv01 = hypervisors.hv01
    _running(lab)
    config = host_job("resized", tmp_path, restic_local_repo, hv01, {"names": [NAME]})
    lab.write(2 * MIB, 64 * 1024, 301)
    assert _ok(run_job(config))["kind"] == FULL

    hv01.virsh("blockresize", NAME, "vdb", "24M")
    lab.vdb.extend(bytes(24 * MIB - len(lab.vdb)))
    lab.vdb_size = 24 * MIB
    deadline = time.monotonic() + 30
    while lab.guest.exec(["/bin/cat", "/sys/block/vdb/size"])[1].strip() != str(24 * MIB // 512).encode():
        assert time.monotonic() < deadline, "the guest never saw vdb grow"
        time.sleep(0.2)
    lab.write(20 * MIB, 64 * 1024, 302)  # past the old end

    vm = _ok(run_job(config))
    assert (vm["kind"], vm["position"], vm["reason"]) == (FULL, 0, "disk vdb resized"), vm
    assert _restored_vdb(config, lab, vm["point"], tmp_path, "resized") == bytes(lab.vdb)


# -- 4 and 5: quiesce with the real guest agent, and without one -------------------------------

def test_quiesce_freezes_the_guest_filesystems_through_its_agent(lab, hypervisors, restic_local_repo, tmp_path):
    _running(lab)
    config = host_job("quiesced", tmp_path, restic_local_repo, hypervisors.hv01, {"names": [NAME]}, quiesce=True)
    assert lab.guest.exec(["/bin/sh", "-c", "echo quiesced > /data/marker && sync"])[0] == 0
    status = run_job(config)
    vm = _ok(status)
    assert (vm["consistent"], vm["consistency_reason"]) == (True, ""), vm
    assert vm["frozen_filesystems"] >= 1 and vm["freeze_seconds"] > 0, vm
    assert status["consistency"] == {"profile": "guest-agent", "consistent": True, "reason": ""}
    assert lab.guest.agent("guest-fsfreeze-status") == "thawed"
    # The guest's kernel really froze /data: freezing ext4 flushes its journal and clears the
    # superblock's needs_recovery flag (set again on thaw); the point caught that superblock.
    frozen = _restored(config, lab, vm["point"], tmp_path / "frozen")
    assert not _ext4_needs_recovery(Path(frozen.disks["vda"]), tmp_path)

    # The control: the same filesystem captured without a freeze is a mounted journal.
    config.options["quiesce"] = False
    vm = _ok(run_job(config))
    assert (vm["consistent"], vm["consistency_reason"], vm["frozen_filesystems"]) == (False, "quiesce is off", 0)
    unfrozen = _restored(config, lab, vm["point"], tmp_path / "unfrozen")
    assert _ext4_needs_recovery(Path(unfrozen.disks["vda"]), tmp_path)


def test_without_a_guest_agent_the_point_is_crash_consistent_and_says_why(
        hypervisors, guest_image, restic_local_repo, tmp_path):
    hv01, name = hypervisors.hv01, "faults2"
    disks = [("vda", hypervisors.storage / f"{name}-vda.qcow2"), ("vdb", hypervisors.storage / f"{name}-vdb.qcow2")]
    guest = Guest(name, hv01)
    try:
        make_data_disk(disks[0][1], 32)
        make_data_disk(disks[1][1], 8, ext4=False)
        guest.define(domain_xml(name, str(uuid.uuid4()), guest_image.kernel, guest_image.initrd, disks, agent=False,
                                console_log=hv01.console_log(name)))
        guest.start()
        config = host_job("noagent", tmp_path, restic_local_repo, hv01, {"names": [name]}, quiesce=True)
        status = run_job(config)
        vm = _ok(status, name)
        assert vm["consistent"] is False and vm["frozen_filesystems"] == 0, vm
        assert vm["consistency_reason"].startswith("guest freeze failed: "), vm["consistency_reason"]
        assert "agent" in vm["consistency_reason"], vm["consistency_reason"]
        assert status["consistency"]["consistent"] is False
    finally:
        hv01.run_virsh("destroy", name, check=False)
        hv01.run_virsh("undefine", name, "--checkpoints-metadata", check=False)
        for _target, path in disks:
            path.unlink(missing_ok=True)


# -- 6: the runner SIGKILLed while the guest is frozen -----------------------------------------

def test_a_runner_killed_while_the_guest_is_frozen_is_thawed_by_the_watchdog(lab, hypervisors, restic_local_repo,
                                                                             tmp_path):
    hv01 = hypervisors.hv01
    _running(lab)
    wrappers, pid_file = tmp_path / "bin", tmp_path / "backup-begin.pid"
    wrappers.mkdir()
    # Only delays `virsh backup-begin` (the guest is frozen meanwhile), by 60 s; then, and for
    # every other call at once, the real virsh does all the work.
    (wrappers / "virsh").write_text(f"""#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = backup-begin ]; then echo $$ > {pid_file}; sleep 60; break; fi
done
exec /usr/bin/virsh "$@"
""")
    (wrappers / "virsh").chmod(0o755)
    config = host_job("killed", tmp_path, restic_local_repo, hv01, {"names": [NAME]}, quiesce=True,
                      quiesce_max_seconds=5)
    runner = _cli(config, tmp_path, "killed", path_prefix=str(wrappers))
    try:
        deadline = time.monotonic() + 90
        # Killed inside backup-begin: the freeze comes a few calls earlier, so both are waited for.
        while not pid_file.exists() or lab.guest.agent("guest-fsfreeze-status") != "frozen":
            assert runner.poll() is None, (tmp_path / "killed.err").read_text()
            assert time.monotonic() < deadline, "the runner never froze the guest"
            time.sleep(0.05)
        _kill_group(runner)
        killed = time.monotonic()
        while lab.guest.agent("guest-fsfreeze-status") != "thawed":
            assert time.monotonic() - killed < 15, "the guest is still frozen 15 s after the runner died"
            time.sleep(0.2)
    finally:
        _kill_group(runner)
        if pid_file.exists():  # the delayed backup-begin, in a session of its own: it must never run
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        hv01.run_virsh("domfsthaw", NAME, check=False)  # only matters when the watchdog failed
    assert pid_file.exists(), "the freeze was not held by backup-begin"
    watchdog_log = tmp_path / "status" / "killed.watchdog.log"
    deadline = time.monotonic() + 10
    while "domfsthaw" not in (log := watchdog_log.read_text()) or "action" not in log:
        assert time.monotonic() < deadline, log
        time.sleep(0.2)
    assert "firing: runner gone" in log, log
    thaw = json.loads(next(line for line in log.splitlines() if " action " in line).split(" action ", 1)[1])
    assert thaw["argv"][-2:] == ["domfsthaw", lab.uuid] and thaw["returncode"] == 0, thaw
    assert _checkpoints(hv01, "killed") == []  # backup-begin never ran

    status = run_job(config)
    vm = _ok(status)
    assert (vm["kind"], vm["consistent"]) == (FULL, True), vm
    assert any("interrupted" in warning for warning in status["warnings"]), status["warnings"]
    assert lab.guest.agent("guest-fsfreeze-status") == "thawed"


# -- 7: the S3 target fails mid-upload ---------------------------------------------------------

def _start_proxy(port: int, upstream: int, stats: Path, net) -> subprocess.Popen:
    proxy = subprocess.Popen([sys.executable, str(TCP_PROXY), str(port), str(upstream), str(stats)],
                             stdin=subprocess.DEVNULL)
    net.wait_for_port(port, 15.0, proxy)
    return proxy


def _forwarded(stats: Path) -> int:
    try:
        return int(stats.read_text() or 0)
    except (OSError, ValueError):
        return 0


def _s3_snapshots(url: str, env: dict, dataset: str) -> list[str]:
    listed = subprocess.run(["restic", "-r", url, "snapshots", "--json", "--no-lock", "--tag", "dataset:" + dataset],
                            env=env, capture_output=True, text=True, timeout=120, check=True)
    return sorted(s["id"] for s in json.loads(listed.stdout))


def test_an_s3_target_lost_mid_upload_fails_the_run_cleanly_and_the_next_run_continues_the_chain(
        lab, hypervisors, restic_local_repo, moto_server, net, tmp_path, private_file):
    hv01 = hypervisors.hv01
    _running(lab)
    port, stats = net.free_port(), tmp_path / "proxy-bytes"
    proxy = _start_proxy(port, moto_server.port, stats, net)
    try:
        bucket = "hostfault-" + uuid.uuid4().hex[:10]
        moto_server.client().create_bucket(Bucket=bucket)
        env_file = private_file(tmp_path / "s3.env", "AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n" % (
            moto_server.access_key, moto_server.secret_key))
        document = host_job("s3fault", tmp_path, restic_local_repo, hv01, {"names": [NAME]}).to_dict()
        document["repository"] = {"url": "s3:http://127.0.0.1:%d/%s/hv01" % (port, bucket),
                                  "password_file": str(restic_local_repo.password_file), "env_file": str(env_file)}
        document["restic"]["cache_dir"] = str(tmp_path / "cache")
        config = JobConfig.from_dict(document)
        assert job_repository(config).init_if_needed() is True
        direct = "s3:%s/%s/hv01" % (moto_server.endpoint, bucket)  # past the proxy, for the test's own looks
        restic_env = dict(restic_local_repo.env(), AWS_ACCESS_KEY_ID=moto_server.access_key,
                          AWS_SECRET_ACCESS_KEY=moto_server.secret_key)

        lab.write(MIB, 64 * 1024, 701)
        first = _ok(run_job(config))
        assert first["kind"] == FULL
        stored = _s3_snapshots(direct, restic_env, "s3fault")
        assert len(stored) == 1

        # A point of several MiB, sent slowly enough to cut the line in the middle of it.
        code, _out, err = lab.guest.exec(["/bin/dd", "if=/dev/urandom", "of=/dev/vdb", "bs=1M", "count=6", "seek=8",
                                          "conv=fsync"])
        assert code == 0, err
        lab.vdb[8 * MIB:14 * MIB] = raw_bytes(lab.disks["vdb"], tmp_path)[8 * MIB:14 * MIB]
        document["schedule"] = {"bandwidth": {"upload_kbps": 1024}, "max_runtime": "30s"}
        runner = _cli(JobConfig.from_dict(document), tmp_path, "s3fault")
        try:
            before = _forwarded(stats)
            deadline = time.monotonic() + 60
            while _forwarded(stats) < before + MIB:
                assert runner.poll() is None, "the run ended before the line was cut: %s" % (
                    (tmp_path / "s3fault.out").read_text())
                assert time.monotonic() < deadline, "the upload never got going"
                time.sleep(0.02)
            os.kill(proxy.pid, signal.SIGKILL)  # the line dies mid-upload; moto keeps what it got
            proxy.wait()
            assert runner.wait(120) == 1, (tmp_path / "s3fault.err").read_text()
        finally:
            _kill_group(runner)
        result = json.loads((tmp_path / "s3fault.out").read_text())
        assert result["result"] == "failed"
        assert result["reason"].startswith(f"VM {NAME}: storing the point failed: the repository at "), result["reason"]
        assert "unreachable" in result["reason"], result["reason"]
        assert _s3_snapshots(direct, restic_env, "s3fault") == stored  # no new point, not even a partial one
        assert _checkpoints(hv01, "s3fault") == [first["checkpoint"]]  # the failed run's checkpoint is gone

        proxy = _start_proxy(port, moto_server.port, stats, net)
        vm = _ok(run_job(config))
        assert (vm["kind"], vm["position"], vm["chain"]) == (INCREMENTAL, 1, first["checkpoint"]), vm
        points = points_by_vm(job_repository(config).snapshots(tags=[config.dataset_tag]))[lab.uuid]
        assert [p.checkpoint for p in lineage(points[-1], points)] == [first["checkpoint"], vm["checkpoint"]]
        assert _restored_vdb(config, lab, vm["point"], tmp_path, "s3") == bytes(lab.vdb)
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()


# -- 8: chain-aware retention ------------------------------------------------------------------

def test_retention_keeps_whole_chains(lab, hypervisors, restic_local_repo, tmp_path):
    _running(lab)
    config = host_job("pruned", tmp_path, restic_local_repo, hypervisors.hv01, {"names": [NAME]}, full_every=2)
    config.retention, config.prune_every = {"last": 2}, 1
    taken = []  # (point id, kind, position, vdb then)
    for step in range(6):
        lab.write((10 + step) * MIB // 2, 64 * 1024, 800 + step)
        status = run_job(config)
        vm = _ok(status)
        taken.append((vm["point"], vm["kind"], vm["position"], bytes(lab.vdb)))
    assert [(kind, position) for _id, kind, position, _vdb in taken] == [
        (FULL, 0), (INCREMENTAL, 1), (INCREMENTAL, 2), (FULL, 0), (INCREMENTAL, 1), (INCREMENTAL, 2)]
    assert status["retention"]["removed"] == 0  # the sixth run: the first chain went with the fifth

    points = points_by_vm(job_repository(config).snapshots(tags=[config.dataset_tag]))[lab.uuid]
    kept = [p.id for p in points]
    # last 2 keeps the fifth and sixth points; the fourth, their full, stays with them.
    assert [i[:8] for i in kept] == [point_id[:8] for point_id, *_rest in taken[3:]]
    for point in points:
        assert lineage(point, points)[0].kind == FULL  # every kept point restores: no orphan incremental
    assert len({p.chain for p in points}) == 1

    oldest_id, _kind, _position, vdb = taken[3]
    assert _restored_vdb(config, lab, oldest_id, tmp_path, "oldest") == vdb


# -- 9: restore never writes to the original disks -------------------------------------------

def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_restore_refuses_the_originals_place_and_never_touches_the_original_disks(lab, hypervisors,
                                                                                  restic_local_repo, tmp_path):
    hv01, storage = hypervisors.hv01, hypervisors.storage
    _running(lab)
    config = host_job("restored", tmp_path, restic_local_repo, hv01, {"names": [NAME]})
    lab.write(4 * MIB, 64 * 1024, 901)
    assert _ok(run_job(config))["kind"] == FULL
    assert "<interface" in hv01.virsh("dumpxml", NAME)
    lab.guest.shutdown()
    before = {target: _fingerprint(path) for target, path in lab.disks.items()}

    (tmp_path / "storage-link").symlink_to(storage)
    for directory in (storage, tmp_path / "storage-link", storage.parent):
        with pytest.raises(RestoreRefused) as refused:
            restore_vm(config, NAME, str(directory))
        assert str(directory) in str(refused.value), refused.value
        assert any(str(path) in str(refused.value) for path in lab.disks.values()), refused.value

    copy = f"{NAME}-restored"
    directory = tmp_path / "restore"
    try:
        result = restore_vm(config, NAME, str(directory), define=copy)
        assert (result["changed"], result["defined"]) == (True, copy)
        xml = ET.fromstring(hv01.virsh("dumpxml", copy))
        assert xml.findtext("uuid") not in ("", lab.uuid)
        assert xml.find("./devices/interface") is None
        sources = [disk.find("source").get("file") for disk in xml.findall("./devices/disk")]
        assert sorted(sources) == [str(directory / "vda.qcow2"), str(directory / "vdb.qcow2")]
        assert raw_bytes(directory / "vdb.qcow2", tmp_path) == bytes(lab.vdb)

        again = restore_vm(config, NAME, str(directory), define=copy)
        assert again["changed"] is False and again["point"] == result["point"]
    finally:
        hv01.run_virsh("undefine", copy, check=False)
    assert {target: _fingerprint(path) for target, path in lab.disks.items()} == before
