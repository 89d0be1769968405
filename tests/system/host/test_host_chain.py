"""The host tier against a real hypervisor: a guest's points (full, incrementals, differential)
taken by libvirt's backup job, stored in restic, and each restored block for block as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.chain import points_by_vm
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.driver import HostDriver
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.restore import materialise
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.vm_restore import job_repository

from host_helpers import MIB, Lab, boot_lab, host_job, raw_bytes, run_job, vm_of


@pytest.fixture(scope="module")
def lab(hypervisors, guest_image) -> Lab:
    lab = boot_lab("chain1", hypervisors.hv01, guest_image, hypervisors.storage)
    yield lab
    lab.guest.destroy()
    hypervisors.hv01.run_virsh("undefine", "chain1", "--checkpoints-metadata", check=False)


def test_full_incrementals_differential_each_restore_as_the_disk_was(lab, hypervisors, restic_local_repo, tmp_path):
    config = host_job("chain", tmp_path, restic_local_repo, hypervisors.hv01, {"names": ["chain1"]}, full_every=10)
    expected = []
    for step, (offset, seed) in enumerate([(0, 1), (3 * MIB + 4096, 2), (9 * MIB, 3)]):
        lab.write(offset, 256 * 1024, seed)
        status = run_job(config)
        assert status["result"] == "success", status["reason"]
        vm = vm_of(status, "chain1")
        assert (vm["kind"], vm["position"]) == (("full", 0) if step == 0 else ("incremental", step))
        expected.append((vm["point"], bytes(lab.vdb)))
    assert vm_of(status, "chain1")["bytes_added"] < 2 * MIB  # an incremental stores what changed, not the disk

    config.options["mode"] = "differential"
    lab.write(12 * MIB, 64 * 1024, 4)
    status = run_job(config)
    vm = vm_of(status, "chain1")
    assert (vm["kind"], vm["position"]) == ("differential", 3), vm
    expected.append((vm["point"], bytes(lab.vdb)))

    repo = job_repository(config)
    points = points_by_vm(repo.snapshots(tags=["dataset:chain"]))[lab.uuid]
    for index, (point_id, vdb) in enumerate(expected):
        point = next(p for p in points if p.id.startswith(point_id))
        restored = materialise(repo, point, points, str(tmp_path / f"restore{index}"))
        assert restored.verify() == {"vda": [], "vdb": []}, (index, restored.chain)
        assert raw_bytes(Path(restored.disks["vdb"]), tmp_path) == vdb, f"point {index} differs"
    # The differential reads the full and itself only.
    assert len(restored.chain) == 2


def _drill_params(config, tmp_path, daemon, **extra):
    return dict({"drill": "boot", "dataset": config.dataset, "tier": "host", "source_host": daemon.name,
                 "sandbox": str(tmp_path / "sandbox"), "libvirt_uri": daemon.uri,
                 "repository": {"url": config.repository, "password_file": config.password_file},
                 "checks": ["integrity", "freshness", "content", "application"],
                 "guest_commands": [["/bin/sh", "-c", "test -b /dev/vda && test -b /dev/vdb"]],
                 "read_data_subset": "100%", "rto": "10m"}, **extra)


def test_a_boot_drill_restores_boots_isolated_and_cleans_up(lab, hypervisors, restic_local_repo, tmp_path):
    config = host_job("drilled", tmp_path, restic_local_repo, hypervisors.hv01, {"names": ["chain1"]})
    lab.write(MIB, 64 * 1024, 11)
    assert run_job(config)["result"] == "success"
    lab.write(2 * MIB, 64 * 1024, 12)
    assert run_job(config)["result"] == "success"
    before = hypervisors.hv01.virsh("list", "--all", "--name").split()

    record = HostDriver.drill(_drill_params(config, tmp_path, hypervisors.hv01))

    layers = {layer["name"]: layer for layer in record["layers"]}
    assert record["result"] == "passed", record["reason"]
    assert [layers[n]["status"] for n in ("integrity", "restore", "freshness", "content", "application", "rto")] == ["ok"] * 6
    assert "guest agent ready" in layers["application"]["message"]
    assert record["rto"]["seconds"] >= layers["application"]["details"]["boot_seconds"]
    assert hypervisors.hv01.virsh("list", "--all", "--name").split() == before  # the drill VM is gone
    assert record["cleaned"]


def test_a_point_corrupted_in_the_repository_fails_the_drill(lab, hypervisors, tmp_path, fresh_restic_repo):
    repo = fresh_restic_repo
    config = host_job("corrupt", tmp_path, repo, hypervisors.hv01, {"names": ["chain1"]})
    lab.write(4 * MIB, 128 * 1024, 13)
    assert run_job(config)["result"] == "success"
    for pack in (repo.path / "data").rglob("*"):
        if pack.is_file() and pack.stat().st_size > 100 * 1024:
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 0xFF
            pack.write_bytes(bytes(data))

    record = HostDriver.drill(_drill_params(config, tmp_path, hypervisors.hv01))

    assert record["result"] == "failed"
    layers = {layer["name"]: layer["status"] for layer in record["layers"]}
    assert layers["integrity"] == "failed"
