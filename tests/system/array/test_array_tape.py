# -*- coding: utf-8 -*-
"""The array tier through the real Runner on real btrfs volumes, exported to a real directory tape
library: an incremental chain restored to one of its points, a pool without free cartridges, a
flipped byte on a cartridge found by a drill."""
from __future__ import annotations

import json
import os

from array_helpers import MB, cartridge_file, tree_digest, write_random

from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import run_drill
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.btrfs import BtrfsSnapshotProvider
from ansible_collections.restorable.backup.plugins.module_utils.storage.tape.library import open_library
from ansible_collections.restorable.backup.plugins.module_utils.tiers.array.restore import restore_point


def show(path: str) -> dict:
    return BtrfsSnapshotProvider().show(path)


def layer(record: dict, name: str) -> dict:
    return next(item for item in record["layers"] if item["name"] == name)


def test_an_incremental_chain_of_four_exports_restores_to_its_third_point(dataset, libraries, sandboxes):
    ds = dataset("files", "logs")
    library = libraries.make(64 * MB)
    config = ds.config(library, chain_length=7)
    digests, records = [], []
    for number in range(4):
        write_random(ds.volumes[0] / ("blob%d" % number), 2 * MB)
        (ds.volumes[0] / "version.txt").write_text("run %d" % number)
        (ds.volumes[1] / "app.log").write_text("".join("line %d\n" % i for i in range(number * 1000)))
        if number == 2:
            os.unlink(ds.volumes[0] / "blob0")  # a deletion the incremental stream must carry
        record = ds.run(config)
        assert record.ok, record.reason
        records.append(record)
        digests.append([tree_digest(ds.snapshot(volume, record.snapshot_id)) for volume in ds.volumes])

    exports = [record.details["export"][0] for record in records]
    first = records[0].snapshot_id
    assert [(e["kind"], e["chain"], e["position"]) for e in exports] == \
        [("full", first, 1)] + [("incremental", first, n) for n in (2, 3, 4)]
    assert [e["base"] for e in exports] == [None] + [r.snapshot_id for r in records[:3]]
    assert exports[3]["bytes"] < 3 * MB  # the new blob only, while the volume holds three (6 MB)
    # The run's byte counts are the streams it wrote to tape.
    assert [(r.bytes_processed, r.bytes_added) for r in records] == [(e["bytes"], e["bytes"]) for e in exports]
    assert all(e["mb_per_second"] > 0 and e["cartridges"] for e in exports)
    state = ds.state()
    assert state["last_exported"] == {"point": records[3].snapshot_id, "chain": first, "position": 4}
    assert state["pending"] == []
    assert records[3].details["rpo"]["tape_seconds"] is not None

    third = records[2].snapshot_id
    sandbox = sandboxes.new()
    result = restore_point(open_library(str(library)), ds.name, third, str(sandbox))
    assert result["chain"] == [r.snapshot_id for r in records[:3]]
    # Each copy carries, as its Received UUID, the UUID of the third snapshot of its volume.
    assert result["identities"] == {str(v): show(records[2].details["snapshot"]["volumes"][str(v)])["UUID"]
                                    for v in ds.volumes}
    for index, volume in enumerate(ds.volumes):
        copy = sandbox / volume.name
        assert result["copies"][str(volume)] == str(copy)
        assert tree_digest(copy) == digests[2][index]  # what the third snapshot held, nothing of the fourth
    files = sandbox / ds.volumes[0].name
    assert (files / "version.txt").read_text() == "run 2"
    assert not (files / "blob0").exists() and not (files / "blob3").exists()
    assert sorted(os.listdir(sandbox)) == sorted(v.name for v in ds.volumes)  # the received steps are gone
    (files / "writable").write_text("a restored copy is writable")


def test_a_pool_without_free_cartridges_keeps_the_snapshot_and_the_next_run_exports_it(dataset, libraries):
    ds = dataset("full")
    library = libraries.make(2 * 1024 * 1024, slots=1)  # one small cartridge: a 5 MB stream cannot fit
    write_random(ds.volumes[0] / "data", 5 * MB)
    config = ds.config(library)
    failed = ds.run(config)
    assert failed.result == "failed"
    assert "export to tape library" in failed.reason and "pool daily" in failed.reason
    assert "no empty slot" in failed.reason and "the next run retries" in failed.reason
    assert failed.snapshot_id in ds.points()  # the snapshot stays
    assert ds.state()["pending"] == [failed.snapshot_id] and ds.state()["last_exported"] is None
    assert open_library(str(library)).points(ds.name) == []

    document = json.loads(library.read_text())
    document["slots"] = 6  # the operator adds slots
    library.write_text(json.dumps(document))
    (ds.volumes[0] / "more").write_text("second run")
    record = ds.run(config)
    assert record.ok, record.reason
    exports = record.details["export"]
    assert [(e["point"], e["kind"]) for e in exports] == [(failed.snapshot_id, "full"),
                                                          (record.snapshot_id, "incremental")]
    assert [p["point"] for p in open_library(str(library)).points(ds.name)] == [failed.snapshot_id, record.snapshot_id]
    assert ds.state()["pending"] == []


def test_a_flipped_byte_on_a_cartridge_fails_the_drill_naming_its_barcode(dataset, libraries, sandboxes):
    ds = dataset("flip")
    library = libraries.make(64 * MB)
    write_random(ds.volumes[0] / "data", 4 * MB)
    record = ds.run(ds.config(library))
    assert record.ok, record.reason
    (barcode,) = record.details["export"][0]["cartridges"]

    sound = run_drill(ds.drill_params(library, sandboxes.new()))
    assert sound["result"] == "passed", sound["reason"]
    assert barcode in layer(sound, "media")["message"] and layer(sound, "catalog")["status"] == "ok"

    path = cartridge_file(library, barcode)
    with open(path, "r+b") as handle:  # a byte in the middle of the stream's data
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    sandbox = sandboxes.new()
    damaged = run_drill(ds.drill_params(library, sandbox))
    assert damaged["result"] == "failed"
    assert "cartridge %s is damaged" % barcode in damaged["reason"]
    assert layer(damaged, "restore")["status"] == "failed"
    assert os.listdir(sandbox) == []  # nothing of the broken restore stays


def test_thinning_keeps_the_incremental_base_and_every_point_due_for_export(dataset, libraries):
    """retention last: 1 deletes all but the newest snapshot, except the newest exported point (the
    parent of the next `btrfs send -p`) and the points due for export that are not on tape yet."""
    ds = dataset("thin")
    config = ds.config(libraries.make(64 * MB), every=2, retention={"last": 1})
    records = []
    for number in range(4):
        (ds.volumes[0] / "n.txt").write_text(str(number))
        records.append(ds.run(config))
        assert records[-1].ok, records[-1].reason
    p1, p2, p3, p4 = (record.snapshot_id for record in records)
    assert records[0].details["export"] == [] and records[0].details["thinning"]["removed"] == []
    assert records[1].details["thinning"]["removed"] == [p1]
    assert records[2].details["export"] == []  # not due: the 1st of every 2
    assert records[2].details["thinning"] == {"removed": [], "kept": 2, "protected": [p2]}  # the base stays
    (export,) = records[3].details["export"]
    assert (export["point"], export["kind"], export["base"]) == (p4, "incremental", p2)
    assert records[3].details["thinning"]["removed"] == [p2, p3] and ds.points() == [p4]

    stuck = dataset("stuck")
    write_random(stuck.volumes[0] / "data", 5 * MB)
    config = stuck.config(libraries.make(2 * 1024 * 1024, slots=1), retention={"last": 1})
    failed = [stuck.run(config) for _run in range(3)]
    assert not any(record.ok for record in failed)
    assert stuck.points() == [record.snapshot_id for record in failed]  # every one still due: none deleted
    assert failed[-1].details["thinning"]["protected"] == stuck.points()
    assert failed[-1].details["pending_export"] == stuck.points()


def test_a_snapshot_failing_inside_the_window_releases_the_application_and_leaves_no_point(dataset, tmp_path):
    """The second volume vanishes while the application is held: the release (post) still runs, the
    first volume's snapshot of the attempt is removed, and the run fails saying why."""
    ds = dataset("keep", "gone")
    log = tmp_path / "hooks.log"
    pre = "echo pre >> %s; btrfs subvolume delete %s >/dev/null" % (log, ds.volumes[1])
    consistency = {"type": "custom", "pre": [{"argv": ["sh", "-c", pre], "timeout": "30s"}],
                   "post": [{"argv": ["sh", "-c", "echo post >> %s" % log], "timeout": "30s"}]}
    record = ds.run(ds.config(consistency=consistency))
    assert record.result == "failed" and str(ds.volumes[1]) in record.reason
    assert log.read_text().split() == ["pre", "post"]
    assert ds.points() == []
    snapshots = ds.volumes[0].parent / ".restorable-snapshots" / ds.volumes[0].name
    assert not snapshots.exists() or os.listdir(snapshots) == []
