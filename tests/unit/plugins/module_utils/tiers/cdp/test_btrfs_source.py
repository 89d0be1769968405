# -*- coding: utf-8 -*-
"""The btrfs CDP source's options, and the layers of its drill that need no btrfs (the system
tests in tests/system/cdp_btrfs run the rest against real filesystems)."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import FAILED, OK, DrillError, RecoveryPoint
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.btrfs_source import (
    BtrfsRestoreDriver, BtrfsSource, PointState, point_store)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.points import PointStore, write_canary
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.thinning import ThinRule

POINT = "20261125T120000Z"


def config(options: dict, tmp_path) -> JobConfig:
    return JobConfig.from_dict({"dataset": "data", "tier": "cdp", "status_dir": str(tmp_path), "options": options})


def source(tmp_path, **options) -> BtrfsSource:
    return BtrfsSource(config(dict({"source": {"type": "btrfs", "subvolume": "/srv/data"}, "interval_minutes": 1},
                                   **options), tmp_path))


def test_options_with_defaults(tmp_path):
    parsed = source(tmp_path, thinning=[{"older_than": "1h", "keep_every": 900}], max_age="14d", rpo=900).options
    assert parsed.snapshot_dir == "/srv/.restorable-cdp/data"
    assert parsed.rules == [ThinRule(3600, 900)]
    assert (parsed.max_age, parsed.rpo, parsed.replica) == (14 * 86400, 900, None)
    details = source(tmp_path).record_details()
    assert details["subvolume"] == "/srv/data" and details["rpo"] is None


def test_replica_options(tmp_path):
    parsed = source(tmp_path, replica={"host": "127.0.0.3", "path": "/srv/replicas/web01/data", "full_resend": True})
    assert parsed.options.replica.full_resend


@pytest.mark.parametrize("options, message", [
    ({"source": {"type": "btrfs", "subvolume": "srv/data"}}, "absolute"),
    ({"source": {"type": "btrfs", "subvolume": "/srv/data", "snapshot_dir": "/srv/data/.snaps"}}, "inside the subvolume"),
    ({"interval_minutes": 0}, "at least 1"),
    ({"thinning": [{"older_than": 60}]}, r"thinning\[0\]: older_than and keep_every"),
    ({"thinning": [{"older_than": 60, "keep_every": 0}]}, "keep_every must be"),
    ({"thinning": [{"older_than": 60, "keep_every": 60, "every": 1}]}, "unknown option every"),
    ({"source": {"type": "btrfs", "subvolume": "/srv/data", "mount": "/srv"}}, "unknown option mount"),
    ({"replica": {"host": "r"}}, "path is required"),
    ({"retention": {}}, "unknown option retention"),
])
def test_bad_options_name_the_field(tmp_path, options, message):
    base = {"source": {"type": "btrfs", "subvolume": "/srv/data"}, "interval_minutes": 1}
    with pytest.raises(ConfigError, match=message):
        BtrfsSource(config(dict(base, **options), tmp_path))


def test_state_keeps_tokens_of_existing_points_only(tmp_path):
    state = PointState(str(tmp_path / "data.cdp-points.json"))
    state.canaries = {POINT: "a", "20261125T120100Z": "b"}
    state.save({POINT})
    assert PointState(state.path).canaries == {POINT: "a"}
    (tmp_path / "broken.json").write_text("{")
    assert PointState(str(tmp_path / "broken.json")).canaries == {}


def test_point_store_of_drill_parameters():
    assert point_store({"subvolume": "/srv/data"}).directory == "/srv/.restorable-cdp/data"
    replica = point_store({"points_on": "replica", "point_dir": "/r/web01/data"})
    assert replica.nested and replica.path(POINT) == "/r/web01/data/%s/%s" % (POINT, POINT)
    with pytest.raises(DrillError, match="point_dir is required"):
        point_store({"points_on": "replica"})
    with pytest.raises(DrillError, match="source or replica"):
        point_store({"points_on": "tape", "point_dir": "/x"})


def drill_params(tmp_path, **more) -> dict:
    return dict({"drill": "weekly", "dataset": "data", "tier": "cdp", "source_type": "btrfs", "source_host": "web01",
                 "drill_host": "replica01", "points_on": "replica", "point_dir": str(tmp_path / "points"),
                 "subvolume": "/srv/data", "sandbox": str(tmp_path / "sandbox"), "protected_paths": ["/srv/data"],
                 "checks": ["integrity", "freshness", "content"]}, **more)


def test_drill_check_mode_only_tests_the_sandbox(tmp_path):
    record = BtrfsSource.drill(drill_params(tmp_path), check_only=True)
    assert record["result"] == "skipped" and record["tier"] == "cdp"
    refused = BtrfsSource.drill(drill_params(tmp_path, sandbox="/srv/data/restore"), check_only=True)
    assert refused["result"] == "failed" and "protected" in refused["reason"]


def test_a_drill_without_points_fails_and_says_so(tmp_path):
    record = BtrfsSource.drill(drill_params(tmp_path))
    assert record["result"] == "failed"
    assert "does not exist" in record["reason"]
    (tmp_path / "points").mkdir()
    assert "no recovery point" in BtrfsSource.drill(drill_params(tmp_path))["reason"]


def restored(tmp_path, canary_point: str, token: str = "t0k3n") -> BtrfsRestoreDriver:
    copy = tmp_path / "copy"
    copy.mkdir(exist_ok=True)
    write_canary(str(copy), "data", canary_point, token, "2026-11-25T12:00:00Z")
    return BtrfsRestoreDriver(PointStore(str(tmp_path)), True, "/srv/data", 900, {POINT: "t0k3n"})


def test_content_checks_the_canary_names_the_point_and_its_token(tmp_path):
    point = RecoveryPoint(POINT, datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc))
    good = restored(tmp_path, POINT).content(point, str(tmp_path / "copy"))
    assert good.status == OK and "token" in good.message
    other = restored(tmp_path, "20261125T115900Z").content(point, str(tmp_path / "copy"))
    assert other.status == FAILED and "names point '20261125T115900Z'" in other.message
    forged = restored(tmp_path, POINT, token="forged").content(point, str(tmp_path / "copy"))
    assert forged.status == FAILED and "token" in forged.message


def test_freshness_compares_the_newest_point_with_the_rpo(tmp_path):
    driver = BtrfsRestoreDriver(PointStore(str(tmp_path)), False, rpo_seconds=900)
    now = datetime.datetime.now(datetime.timezone.utc)
    driver.newest = RecoveryPoint("fresh", now - datetime.timedelta(minutes=5))
    assert driver.freshness().status == OK
    driver.newest = RecoveryPoint("stale", now - datetime.timedelta(minutes=30))
    assert driver.freshness().status == FAILED
