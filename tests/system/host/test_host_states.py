"""VM states on the hypervisor: a shut-off VM is read from its disks (incrementally, through
the same bitmaps), a paused one live, a saved one offline without losing its saved state, and a
VM this hypervisor does not have is no error."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.chain import points_by_vm
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.restore import materialise
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.vm_restore import job_repository

from host_helpers import MIB, Lab, boot_lab, host_job, raw_bytes, run_job, vm_of


@pytest.fixture(scope="module")
def lab(hypervisors, guest_image) -> Lab:
    lab = boot_lab("states1", hypervisors.hv01, guest_image, hypervisors.storage)
    yield lab
    lab.guest.destroy()
    hypervisors.hv01.run_virsh("managedsave-remove", "states1", check=False)
    hypervisors.hv01.run_virsh("undefine", "states1", "--checkpoints-metadata", check=False)


def _restored_vdb(config, lab, point_id, tmp_path, name):
    repo = job_repository(config)
    points = points_by_vm(repo.snapshots(tags=["dataset:" + config.dataset]))[lab.uuid]
    point = next(p for p in points if p.id.startswith(point_id))
    restored = materialise(repo, point, points, str(tmp_path / name))
    assert restored.verify() == {"vda": [], "vdb": []}
    return raw_bytes(Path(restored.disks["vdb"]), tmp_path)


def test_shut_off_paused_and_saved_vms_keep_their_chain(lab, hypervisors, restic_local_repo, tmp_path):
    hv01 = hypervisors.hv01
    config = host_job("states", tmp_path, restic_local_repo, hv01, {"names": ["states1", "elsewhere"]})
    lab.write(0, 128 * 1024, 21)
    status = run_job(config)
    assert vm_of(status, "states1")["kind"] == "full" and status["absent_vms"] == ["elsewhere"]

    lab.write(MIB, 64 * 1024, 22)
    lab.guest.shutdown()
    status = run_job(config)
    vm = vm_of(status, "states1")
    assert status["result"] == "success", status["reason"]
    assert (vm["state"], vm["kind"], vm["position"]) == ("shut off", "incremental", 1)
    assert vm["bytes_added"] < MIB
    assert _restored_vdb(config, lab, vm["point"], tmp_path, "off") == bytes(lab.vdb)

    lab.guest.start()
    lab.guest.wait_agent(timeout=120)
    lab.write(2 * MIB, 64 * 1024, 23)
    hv01.virsh("suspend", "states1")
    status = run_job(config)
    vm = vm_of(status, "states1")
    assert (vm["state"], vm["kind"], vm["position"]) == ("paused", "incremental", 2), vm
    assert _restored_vdb(config, lab, vm["point"], tmp_path, "paused") == bytes(lab.vdb)

    hv01.virsh("resume", "states1")
    lab.write(3 * MIB, 64 * 1024, 24)
    hv01.virsh("managedsave", "states1")
    status = run_job(config)
    vm = vm_of(status, "states1")
    assert (vm["state"], vm["kind"], vm["position"], vm["consistent"]) == ("shut off", "incremental", 3, False), vm
    assert _restored_vdb(config, lab, vm["point"], tmp_path, "saved") == bytes(lab.vdb)
    hv01.virsh("start", "states1")  # resumes from the saved state: the backup left it intact
    lab.guest.wait_agent(timeout=60)
    assert lab.guest.exec(["/bin/true"])[0] == 0
