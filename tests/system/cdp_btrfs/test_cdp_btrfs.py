# -*- coding: utf-8 -*-
"""The btrfs source of the CDP tier against real filesystems and a real replica host: the Runner
takes points, sends them with btrfs send/receive over SSH to the replica's forced command, thins
both sides; restores and drills read them back. Each test has a dataset of its own (a subvolume,
a replica directory, a key restricted to it) and a clock of its own (point names come from it)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from cdp_btrfs_helpers import must, names_in, show

from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import SandboxRefused
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.btrfs_source import restore_point, state_path
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.driver import CdpDriver
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.points import CANARY
from fleet.sshd import descendants

HOUR = 60


def sent(record) -> list[tuple[str, str | None]]:
    return [(s["point"], s["parent"]) for s in record.details["replica"]["sent"]]


def test_thinning_keeps_the_incremental_base_on_both_sides(dataset, replica_host):
    """max_age 10 minutes, runs an hour apart: each run's base is older than max_age and still there
    on both sides, so every send is incremental; a replica that is down keeps the base and every
    unreplicated point on the source; back up, it catches up from that old base, then both sides thin."""
    host, _engine = replica_host
    config = dataset.config(thinning=[{"older_than": 120, "keep_every": 3600}], max_age=600)
    points = []
    for hour in range(3):
        dataset.write("data.txt", "hour %d" % hour)
        record = dataset.run(config, minutes=HOUR)
        assert record.ok, record.reason
        points.append(record.snapshot_id)
        if hour:
            assert sent(record) == [(points[-1], points[-2])]  # incremental from a base an hour old
        assert dataset.source_points() == dataset.replica_points() == [points[-1]]
        assert record.details["thinning"]["source_removed"] == points[-2:-1]
        assert record.details["thinning"]["replica_removed"] == points[-2:-1]

    base = points[-1]
    host.stop()
    try:
        for _run in range(2):
            record = dataset.run(config, minutes=HOUR)
            assert not record.ok and "unreachable" in record.reason
            points.append(record.snapshot_id)
    finally:
        host.start()
    # Hours beyond max_age, yet the base and everything not replicated stay; the replica was not touched.
    assert dataset.source_points() == [base] + points[-2:]
    assert dataset.replica_points() == [base]
    assert record.details["rpo"]["at_risk"] and record.details["rpo"]["replica_seconds"] >= 2 * HOUR * 60
    assert "2 point(s) wait to be replicated" in record.reason

    record = dataset.run(config, minutes=1)
    assert record.ok, record.reason
    assert sent(record) == [(points[-2], base), (points[-1], points[-2]), (record.snapshot_id, points[-1])]
    # Thinned on both sides once the new base is there: the point of a minute ago (young) and the base.
    assert dataset.source_points() == dataset.replica_points() == [points[-1], record.snapshot_id]
    assert (dataset.replica_point(record.snapshot_id) / "data.txt").read_text() == "hour 2"


def test_a_replica_that_was_down_catches_up_incrementally(dataset, replica_host):
    host, _engine = replica_host
    dataset.write("data.txt", "0")
    first = dataset.run()
    assert first.ok, first.reason
    assert sent(first) == [(first.snapshot_id, None)]
    assert first.details["replica"]["full"]["reason"] == "the replica held no point yet"

    waiting = []
    host.stop()
    try:
        for index in range(1, 4):
            dataset.write("data.txt", str(index))
            record = dataset.run()
            waiting.append(record.snapshot_id)
            assert not record.ok and "replica %s:%s unreachable" % (dataset.replica_address, dataset.replica_root) in record.reason
            assert record.details["replica"]["pending"] == waiting
            assert record.details["rpo"]["replica_seconds"] == 60.0 * index  # from the last listing
    finally:
        host.start()

    dataset.write("data.txt", "4")
    record = dataset.run()
    assert record.ok, record.reason
    chain = [first.snapshot_id] + waiting + [record.snapshot_id]
    assert sent(record) == list(zip(chain[1:], chain[:-1]))
    assert dataset.replica_points() == chain
    assert record.details["rpo"] == {"source_seconds": 0.0, "replica_seconds": 0.0, "at_risk": False}
    # On the replica each caught-up point is a snapshot of the one before: received incrementally.
    for parent, name in zip(chain, chain[1:]):
        assert show(dataset.replica_point(name))["Parent UUID"] == show(dataset.replica_point(parent))["UUID"]
        assert (dataset.replica_point(name) / "data.txt").read_text() == str(chain.index(name))


def _kill_receive_midway(dataset, name: str, host_pid: int, outcome: dict) -> None:
    """Wait until the big file is arriving in .incoming, then SIGKILL the replica's side of the
    connection (sshd's session processes, the forced command, btrfs receive): no cleanup runs."""
    arriving = dataset.replica_root / ".incoming" / name / name / "big.bin"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            size = arriving.stat().st_size
        except OSError:
            size = 0
        if size > 32 * 1024 * 1024:
            victims = descendants(host_pid)
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            outcome["killed"] = len(victims)
            return
        time.sleep(0.01)


def test_a_receive_killed_midway_leaves_no_point_and_the_next_run_succeeds(dataset, replica_host):
    host, _engine = replica_host
    dataset.write("data.txt", "before")
    assert dataset.run().ok
    must(["sh", "-c", "head -c 300M /dev/zero > %s/big.bin" % dataset.subvolume])
    name = dataset.clock.advance(minutes=1).strftime("%Y%m%dT%H%M%SZ")
    outcome: dict = {}
    killer = threading.Thread(target=_kill_receive_midway, args=(dataset, name, host.pid, outcome))
    killer.start()
    record = dataset.run(minutes=0)
    killer.join()
    assert outcome.get("killed"), "the receive finished before it could be killed"
    assert record.snapshot_id == name and not record.ok
    assert "receive %s" % name in record.reason
    # Nothing that could pass for a point: not in the listing, not in place; the leftover is hidden.
    assert name not in dataset.replica_points() and not (dataset.replica_root / name).exists()
    assert dataset.ssh("list").stdout.decode().split() == dataset.replica_points()
    assert os.listdir(dataset.replica_root / ".incoming") == [name]

    record = dataset.run()
    assert record.ok, record.reason
    assert [point for point, _parent in sent(record)] == [name, record.snapshot_id]
    assert os.listdir(dataset.replica_root / ".incoming") == []  # swept by the next receive
    received = dataset.replica_point(name) / "big.bin"
    assert received.stat().st_size == 300 * 1024 * 1024
    assert show(dataset.replica_point(name))["Flags"] == "readonly"


def test_a_lost_base_is_refused_unless_a_full_resend_is_allowed(dataset):
    names = []
    for index in range(3):
        dataset.write("data.txt", str(index))
        record = dataset.run()
        assert record.ok, record.reason
        names.append(record.snapshot_id)
    first, second, base = names
    # The replica lost the base; the source thinned away what the replica still has.
    must(["btrfs", "subvolume", "delete", dataset.replica_point(base)])
    os.rmdir(dataset.replica_root / base)
    must(["btrfs", "subvolume", "delete", dataset.snapshot_dir / first, dataset.snapshot_dir / second])

    refused = dataset.run(dataset.config(max_age=1))
    assert not refused.ok
    assert "none of this source's" in refused.reason and "replica.full_resend" in refused.reason
    assert "nothing was sent or deleted" in refused.reason
    assert refused.details["replica"]["sent"] == [] and refused.details["rpo"]["at_risk"]
    assert dataset.replica_points() == [first, second]  # max_age would have removed them
    assert dataset.source_points() == [base, refused.snapshot_id]

    resent = dataset.run(dataset.config(full_resend=True))
    assert resent.ok, resent.reason
    assert sent(resent) == [(resent.snapshot_id, None)]
    assert resent.details["replica"]["full"]["resend"] is True
    assert any("sent in full" in warning and "base is gone" in warning for warning in resent.warnings)
    assert dataset.replica_points() == [first, second, resent.snapshot_id]
    assert show(dataset.replica_point(resent.snapshot_id))["Parent UUID"] == "-"


@pytest.mark.parametrize("command", [
    "delete ../x", "delete /etc/passwd", "cat /etc/shadow", "rm -rf /", "list; cat /etc/shadow",
    "receive ../../escaped", "delete ../other/20261125T120000Z", "sh -c id", "",
])
def test_the_sources_key_can_touch_nothing_else_on_the_replica(dataset, command):
    dataset.write("data.txt", "mine")
    assert dataset.run().ok
    outside = dataset.replica_root.parent / "x"
    outside.write_text("another dataset's file")
    other = dataset.replica_root.parent / "other" / "20261125T120000Z"
    other.mkdir(parents=True, exist_ok=True)
    points = dataset.replica_points()

    result = dataset.ssh(command)
    assert result.returncode != 0
    assert b"refused" in result.stderr and b"list | receive NAME | delete NAME" in result.stderr
    assert b"root:" not in result.stdout + result.stderr and result.stdout == b""
    assert outside.read_text() == "another dataset's file" and other.is_dir()
    assert os.path.exists("/etc/passwd") and os.path.exists("/etc/shadow")
    assert dataset.replica_points() == points


def test_the_sources_key_has_no_sftp_and_cannot_delete_the_base(dataset):
    dataset.write("data.txt", "mine")
    record = dataset.run()
    assert record.ok
    sftp = subprocess.run(["sftp", *dataset.ssh_options(), "-i", str(dataset.key), "-o", "BatchMode=yes",
                           "-P", str(dataset.replica_port), "root@%s" % dataset.replica_address],
                          input=b"get /etc/passwd %s\n" % str(dataset.status_dir / "stolen").encode(),
                          capture_output=True, timeout=60, check=False)
    assert sftp.returncode != 0 and not (dataset.status_dir / "stolen").exists()
    newest = dataset.ssh("delete %s" % record.snapshot_id)
    assert newest.returncode != 0 and b"newest point" in newest.stderr
    assert dataset.replica_points() == [record.snapshot_id]
    assert dataset.ssh("delete 20000101T000000Z").stdout == b"absent 20000101T000000Z\n"


def test_restore_as_a_sandbox_copy_and_rollback_keeping_the_current_state(dataset, cdp_filesystems):
    dataset.write("data.txt", "v1")
    first = dataset.run()
    dataset.write("data.txt", "v2")
    assert first.ok and dataset.run().ok
    dataset.write("data.txt", "v3 (not in any point)")

    sandbox = cdp_filesystems.source.mountpoint / ("sandbox-" + dataset.name)
    copy = restore_point({"point_dir": str(dataset.snapshot_dir), "point": first.snapshot_id, "sandbox": str(sandbox),
                          "subvolume": str(dataset.subvolume)})
    assert copy["path"] == str(sandbox / first.snapshot_id) and copy["kept_aside"] is None
    assert (sandbox / first.snapshot_id / "data.txt").read_text() == "v1"
    (sandbox / first.snapshot_id / "scratch.txt").write_text("a writable copy")
    assert (dataset.subvolume / "data.txt").read_text() == "v3 (not in any point)"
    with pytest.raises(SandboxRefused):
        restore_point({"point_dir": str(dataset.snapshot_dir), "sandbox": str(dataset.subvolume / "restore"),
                       "subvolume": str(dataset.subvolume)})
    assert not (dataset.subvolume / "restore").exists()
    replica_copy = restore_point({"points_on": "replica", "point_dir": str(dataset.replica_root),
                                  "sandbox": str(cdp_filesystems.replica.mountpoint / ("sandbox-" + dataset.name))})
    with open(os.path.join(replica_copy["path"], "data.txt"), encoding="utf-8") as handle:
        assert handle.read() == "v2"  # the newest point, from the replica

    now = dataset.clock.advance(seconds=30)
    rollback = restore_point({"point_dir": str(dataset.snapshot_dir), "point": first.snapshot_id, "rollback": True,
                              "subvolume": str(dataset.subvolume)}, now=now)
    aside = "%s.before-%s-%s" % (dataset.subvolume, first.snapshot_id, now.strftime("%Y%m%dT%H%M%SZ"))
    assert rollback["kept_aside"] == aside
    assert (dataset.subvolume / "data.txt").read_text() == "v1"
    with open(os.path.join(aside, "data.txt"), encoding="utf-8") as handle:
        assert handle.read() == "v3 (not in any point)"
    assert show(dataset.subvolume)["Flags"] == "-"  # writable again, in place
    after = dataset.run()  # the job goes on from the rolled-back state
    assert after.ok, after.reason
    assert (dataset.replica_point(after.snapshot_id) / "data.txt").read_text() == "v1"


def test_a_freezing_profile_is_thawed_even_when_the_snapshot_fails(dataset, cdp_filesystems):
    mount = cdp_filesystems.source.mountpoint
    elsewhere = cdp_filesystems.replica.mountpoint / ("points-" + dataset.name)  # another filesystem: btrfs refuses
    config = dataset.config(replica=False, snapshot_dir=elsewhere,
                            consistency={"type": "fsfreeze", "fsfreeze": {"mountpoints": [str(mount)]}, "max_freeze": 20})
    record = dataset.run(config)
    assert not record.ok and record.snapshot_id is None
    assert "btrfs snapshot of %s failed" % dataset.subvolume in record.reason
    assert record.consistency["profile"] == "fsfreeze" and record.consistency["seconds"] > 0
    # Thawed: fsfreeze -u finds nothing frozen (a write to a frozen filesystem would hang the test).
    thaw = subprocess.run(["fsfreeze", "-u", str(mount)], capture_output=True, text=True, check=False)
    assert thaw.returncode != 0 and "Invalid argument" in thaw.stderr
    assert names_in(elsewhere) == []
    # The canary went in before the freeze: writing to a frozen filesystem would have blocked.
    assert json.loads((dataset.subvolume / CANARY).read_text())["point"] == dataset.clock.now.strftime("%Y%m%dT%H%M%SZ")


def _drill_params(dataset, sandbox, **more) -> dict:
    return dict({"drill": "weekly", "dataset": dataset.name, "tier": "cdp", "source_type": "btrfs",
                 "source_host": "web01", "drill_host": "replica01", "points_on": "replica",
                 "point_dir": str(dataset.replica_root), "subvolume": str(dataset.subvolume), "sandbox": str(sandbox),
                 "protected_paths": [str(dataset.subvolume)], "rto": "5m", "rpo": "15m",
                 "checks": ["integrity", "freshness", "content", "custom"],
                 "commands": [{"argv": ["grep", "-rq", "drilled data", "{sandbox}"]}]}, **more)


def test_a_drill_from_the_replica_passes_and_a_tampered_canary_fails(dataset, cdp_filesystems):
    dataset.clock.advance(minutes=55)  # the clock started an hour back: points a few minutes old at drill time
    for _run in range(3):
        dataset.write("data.txt", "drilled data")
        assert dataset.run().ok
    sandbox = cdp_filesystems.replica.mountpoint / ("drill-" + dataset.name)

    record = CdpDriver.drill(_drill_params(dataset, sandbox))
    layers = {layer["name"]: layer for layer in record["layers"]}
    assert record["result"] == "passed", record["reason"]
    assert [name for name in layers if layers[name]["status"] != "ok"] == []
    assert set(layers) == {"sandbox", "recovery_point", "integrity", "restore", "freshness", "content", "custom", "rto"}
    assert "received from the source" in layers["integrity"]["message"]
    assert record["rto"]["met"] and record["rpo"]["met"] and record["cleaned"]
    assert not sandbox.exists()  # the engine made it, and removed it with the writable copy in it

    on_source = _drill_params(dataset, cdp_filesystems.source.mountpoint / ("drill-" + dataset.name),
                              points_on="source", point_dir="", drill_host="web01",
                              canary_state=state_path(str(dataset.status_dir), dataset.name))
    source = CdpDriver.drill(on_source)
    assert source["result"] == "passed", source["reason"]
    content = next(layer for layer in source["layers"] if layer["name"] == "content")
    assert "token the source recorded" in content["message"]

    newest = dataset.replica_point(dataset.replica_points()[-1])
    must(["btrfs", "property", "set", "-f", "-ts", newest, "ro", "false"])
    (newest / CANARY).write_text(json.dumps({"point": "20000101T000000Z", "token": "forged"}))
    must(["btrfs", "property", "set", "-ts", newest, "ro", "true"])
    tampered = CdpDriver.drill(_drill_params(dataset, sandbox))
    layers = {layer["name"]: layer for layer in tampered["layers"]}
    assert tampered["result"] == "failed"
    assert layers["content"]["status"] == "failed" and "names point '20000101T000000Z'" in layers["content"]["message"]
    assert layers["integrity"]["status"] == "failed" and "no received UUID" in layers["integrity"]["message"]
