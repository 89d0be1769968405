# -*- coding: utf-8 -*-
"""tiers.host.chain: points as their tags describe them, the chains restores read, retention
widened to whole chains, and the choice of a VM's next point (anything doubtful is a full)."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.chain import (
    DIFFERENTIAL, FULL, INCREMENTAL, ChainBroken, PointInfo, lineage, needed, plan_point, points_by_vm)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.libvirt import Disk

GiB = 1 << 30
UUID = "5f0c8e1e-2b7a-4c1e-9d57-0d7c3a1f2b01"
START = datetime.datetime(2026, 12, 1, 1, 0, tzinfo=datetime.timezone.utc)


def point(position: int, kind: str = INCREMENTAL, base: str | None = None, chain: str = "cp0", hypervisor: str = "hv01",
          disks: dict[str, int] | None = None, cptime: str = "") -> PointInfo:
    """Point `position` of chain cp0 (its checkpoint cp<position>); an incremental's base is the previous one."""
    if base is None:
        base = "" if kind == FULL else ("cp%d" % (position - 1) if kind == INCREMENTAL else chain)
    return PointInfo(id="id%d" % position + "0" * 30, time=START + datetime.timedelta(days=position), hypervisor=hypervisor,
                     vm=UUID, vm_name="erp01", kind=kind, chain=chain, position=position, checkpoint="cp%d" % position,
                     base=base, checkpoint_time=cptime or str(1700000000 + position), disks=disks or {"vda": 20 * GiB})


def incremental_chain(length: int, **kw) -> list[PointInfo]:
    return [point(0, FULL, **kw)] + [point(i, INCREMENTAL, **kw) for i in range(1, length)]


def differential_chain(length: int, **kw) -> list[PointInfo]:
    return [point(0, FULL, **kw)] + [point(i, DIFFERENTIAL, **kw) for i in range(1, length)]


def snapshot(info: PointInfo, time: str = "2026-12-01T02:00:00.123456789+01:00") -> dict:
    return {"id": info.id, "time": time, "hostname": info.hypervisor, "tags": ["dataset:vms", "nightly"] + info.tags()}


def ids(points: list[PointInfo]) -> list[str]:
    return [p.id[:3] for p in points]


# --- points as tags ------------------------------------------------------------------------------

def test_a_point_survives_its_tags_and_snapshot_round_trip():
    info = point(2, INCREMENTAL, disks={"vda": 20 * GiB, "sdb": 512 * 1024 * 1024})
    info.time = datetime.datetime(2026, 12, 1, 1, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    tags = info.tags()
    assert "disk:sdb:536870912" in tags and "disk:vda:21474836480" in tags and "base:cp1" in tags
    assert PointInfo.from_snapshot(snapshot(info)) == info


def test_a_full_has_no_base_tag_and_round_trips_too():
    info = point(0, FULL)
    info.time = datetime.datetime(2026, 12, 1, 1, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    assert not [t for t in info.tags() if t.startswith("base:")]
    assert PointInfo.from_snapshot(snapshot(info)) == info


@pytest.mark.parametrize("tags", [["dataset:www"], [], ["vm:x", "kind:full", "chain:c", "pos:0"]])  # the last has no cp:
def test_snapshots_that_are_not_host_points_are_ignored(tags):
    other = {"id": "f" * 64, "time": "2026-12-01T01:00:00Z", "hostname": "web1", "tags": tags}
    assert PointInfo.from_snapshot(other) is None
    assert points_by_vm([other]) == {}


def test_points_by_vm_sorts_each_vms_points_oldest_first():
    erp = incremental_chain(3)
    web = [PointInfo("w" * 64, START, "hv01", "uuid-web", "web01", FULL, "cw", 0, "cw", "")]
    same_second = point(3)  # taken the same second as point 2: the position decides
    snapshots = [snapshot(erp[2], "2026-12-03T01:00:00Z"), snapshot(web[0], "2026-12-01T00:00:00Z"),
                 snapshot(same_second, "2026-12-03T01:00:00Z"), snapshot(erp[0], "2026-12-01T01:00:00Z"),
                 {"id": "a" * 64, "time": "2026-12-02T00:00:00Z", "tags": ["dataset:www"]},
                 snapshot(erp[1], "2026-12-02T01:00:00Z")]
    by_vm = points_by_vm(snapshots)
    assert sorted(by_vm) == [UUID, "uuid-web"]
    assert [p.position for p in by_vm[UUID]] == [0, 1, 2, 3]
    assert [p.id for p in by_vm["uuid-web"]] == ["w" * 64]


# --- lineage and chain-aware retention ------------------------------------------------------------

def test_an_incremental_reads_its_whole_chain_from_the_full():
    chain = incremental_chain(4)
    assert ids(lineage(chain[3], chain)) == ["id0", "id1", "id2", "id3"]
    assert ids(lineage(chain[0], chain)) == ["id0"]


def test_a_differential_reads_the_full_and_itself():
    chain = differential_chain(4)
    assert ids(lineage(chain[3], chain)) == ["id0", "id3"]


def test_a_missing_link_breaks_the_chain_naming_the_checkpoint():
    chain = incremental_chain(4)
    del chain[1]
    with pytest.raises(ChainBroken, match=r"point id3\w* needs the point of checkpoint cp1, which the repository does not hold"):
        lineage(chain[-1], chain)
    without_full = differential_chain(3)[1:]
    with pytest.raises(ChainBroken, match="checkpoint cp0"):
        lineage(without_full[-1], without_full)


def test_a_point_of_another_chain_is_never_a_link():
    chain = incremental_chain(3)
    stranger = point(1, FULL, chain="cp1")  # a later full whose own checkpoint happens to be named cp1
    with pytest.raises(ChainBroken):
        lineage(chain[2], [chain[0], stranger, chain[2]])


def test_keeping_an_incremental_keeps_its_whole_prefix():
    chain = incremental_chain(5)
    assert needed(chain, {chain[2].id}) == {p.id for p in chain[:3]}


def test_keeping_a_differential_keeps_its_full_only():
    chain = differential_chain(5)
    assert needed(chain, {chain[3].id}) == {chain[0].id, chain[3].id}


def test_a_kept_point_of_a_broken_chain_is_kept_alone():
    chain = incremental_chain(3)
    assert needed(chain[1:], {chain[2].id}) == {chain[2].id}


# --- the next point -----------------------------------------------------------------------------

def disks(**sizes: int) -> list[Disk]:
    return [Disk(target, "/var/lib/libvirt/images/erp01-%s.qcow2" % target, "qcow2", size) for target, size in sizes.items()]


def known(points: list[PointInfo]) -> dict[str, str]:
    return {p.checkpoint: p.checkpoint_time for p in points}


VDA = disks(vda=20 * GiB)


def test_mode_full_and_a_first_point_are_fulls():
    chain = incremental_chain(2)
    plan = plan_point(FULL, None, chain, VDA, known(chain), "hv01")
    assert (plan.kind, plan.reason) == (FULL, "mode is full")
    first = plan_point(INCREMENTAL, None, [], VDA, {}, "hv01")
    assert (first.kind, first.reason, first.base, first.position) == (FULL, "first point of this VM", "", 0)


@pytest.mark.parametrize("current, reason", [
    (disks(vda=40 * GiB), "disk vda resized"),
    (disks(vda=20 * GiB, vdb=GiB), "disk vdb added"),
    ([], "disk vda removed"),
    ([Disk("vda", "/dev/vg/erp01", "raw", 20 * GiB)], "disk vda is raw: no persistent bitmap"),
])
def test_a_changed_disk_means_a_full(current, reason):
    chain = incremental_chain(2)
    plan = plan_point(INCREMENTAL, None, chain, current, known(chain), "hv01")
    assert (plan.kind, plan.reason) == (FULL, reason)


def test_a_removed_second_disk_means_a_full():
    chain = incremental_chain(2, disks={"vda": 20 * GiB, "vdb": GiB})
    assert plan_point(INCREMENTAL, None, chain, VDA, known(chain), "hv01").reason == "disk vdb removed"


@pytest.mark.parametrize("mode", [INCREMENTAL, DIFFERENTIAL])
def test_a_chain_holds_the_full_and_full_every_points(mode):
    stored: list[PointInfo] = []
    reasons = []
    for run in range(9):
        plan = plan_point(mode, 3, stored, VDA, known(stored), "hv01")
        checkpoint = "cp%d" % run
        reasons.append(plan.reason)
        stored.append(PointInfo("id%d" % run, START + datetime.timedelta(days=run), "hv01", UUID, "erp01", plan.kind,
                                plan.chain or checkpoint, plan.position, checkpoint, plan.base, "t%d" % run, {"vda": 20 * GiB}))
    assert [p.kind for p in stored] == [FULL, mode, mode, mode] * 2 + [FULL]
    assert [p.position for p in stored] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert reasons[4] == reasons[8] == "chain reached full_every (3)"


def test_an_incremental_continues_from_the_last_checkpoint():
    chain = incremental_chain(3)
    plan = plan_point(INCREMENTAL, 6, chain, VDA, known(chain), "hv01")
    assert (plan.kind, plan.chain, plan.position, plan.base, plan.redefine) == (INCREMENTAL, "cp0", 3, "cp2", None)


def test_a_differential_starts_from_the_chains_full():
    chain = differential_chain(3)
    plan = plan_point(DIFFERENTIAL, None, chain, VDA, known(chain), "hv01")
    assert (plan.kind, plan.chain, plan.position, plan.base) == (DIFFERENTIAL, "cp0", 3, "cp0")


def test_a_checkpoint_this_hypervisor_lost_means_a_full_naming_it():
    chain = incremental_chain(3)
    plan = plan_point(INCREMENTAL, None, chain, VDA, {"cp0": chain[0].checkpoint_time}, "hv01")
    assert (plan.kind, plan.reason) == (FULL, "checkpoint cp2 no longer known to libvirt")


def test_a_vm_that_moved_continues_its_chain_with_the_checkpoint_redefined():
    chain = incremental_chain(3, hypervisor="hv01")
    plan = plan_point(INCREMENTAL, None, chain, VDA, {}, "hv02")
    assert (plan.kind, plan.reason, plan.base, plan.position) == (INCREMENTAL, "continues the chain from hv01", "cp2", 3)
    assert plan.redefine is chain[2]


def test_a_vm_that_moved_without_the_base_point_gets_a_full():
    chain = differential_chain(3, hypervisor="hv01")[1:]  # the full is gone from the repository
    plan = plan_point(DIFFERENTIAL, None, chain, VDA, {}, "hv02")
    assert (plan.kind, plan.reason) == (FULL, "migrated from hv01: point of checkpoint cp0 missing")


def test_a_checkpoint_of_the_same_name_but_another_creation_time_is_foreign():
    chain = incremental_chain(3)
    plan = plan_point(INCREMENTAL, None, chain, VDA, dict(known(chain), cp2="1800000000"), "hv01")
    assert plan.kind == FULL
    assert plan.reason == "checkpoint cp2 is not the one this dataset created (foreign checkpoint)"
