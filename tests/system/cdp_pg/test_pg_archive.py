# -*- coding: utf-8 -*-
"""PostgreSQL archives through the agent into S3 (moto): under pgbench load every segment is
stored and verified; an outage of S3 is reported as RPO at risk and loses nothing; a segment
deleted from the store fails the next run by name; other content under an archived name and a
damaged object are refused."""
from __future__ import annotations

import os
import shutil
import time

from cdp_pg_helpers import SEGMENT_SIZE

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.names import is_segment, next_segment


def test_configuring_archiving_asked_for_the_restart_it_needs_and_nothing_after(cdp_pg):
    results = cdp_pg.configure_results
    assert results["check"]["changed"] and results["check"]["restart_needed"]
    assert results["apply"]["before"]["archive_mode"] == "off" and results["apply"]["after"]["archive_mode"] == "on"
    assert results["apply"]["restart_needed"] and results["apply"]["pending_restart"] == ["archive_mode"]
    assert results["apply"]["after"]["archive_timeout"] == "60"
    assert results["after_restart"]["changed"] is False and results["after_restart"]["restart_needed"] is False
    assert cdp_pg.psql("SHOW archive_mode") == "on"


def test_write_load_is_archived_to_s3_and_every_segment_verified(cdp_pg):
    first = cdp_pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    cdp_pg.cluster.run(["pgbench", "-T", "4", "-c", "4", "-j", "2", "-n", "app"])
    last = cdp_pg.switch()
    record = cdp_pg.run()
    assert record.ok, record.reason
    assert record.details["rpo"]["at_risk"] is False and record.details["rpo"]["archive_seconds"] < 60
    assert record.details["verify"]["ok"] and record.details["verify"]["checked"] >= 1
    assert record.details["heartbeat"]["at"] and not record.warnings
    stored = [name for name in cdp_pg.store().list() if is_segment(name)]
    name = first
    while name <= last:  # every segment PostgreSQL wrote under load is in the store
        assert name in stored, "%s is missing" % name
        name = next_segment(name, SEGMENT_SIZE)
    assert cdp_pg.verify_state()["timelines"]["1"] >= last
    paged = cdp_pg.store()
    paged.page = 7  # the listing follows S3's continuation tokens page by page
    assert paged.list() == cdp_pg.store().list() and paged.list(first) == [n for n in paged.list() if n > first]


def test_an_s3_outage_puts_the_rpo_at_risk_and_loses_nothing(cdp_pg):
    assert cdp_pg.run().ok
    failures = cdp_pg.failed_count()
    cdp_pg.proxy.down()
    try:
        pending = []
        for _round in range(2):
            cdp_pg.heartbeat()
            pending.append(cdp_pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())"))
            cdp_pg.psql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while cdp_pg.failed_count() == failures:
            assert time.monotonic() < deadline, "the archiver never tried"
            time.sleep(0.1)
        during = cdp_pg.run()
        assert cdp_pg.psql("SELECT 1") == "1", "PostgreSQL keeps running"
    finally:
        cdp_pg.proxy.up()
    assert during.details["rpo"]["at_risk"] is True
    assert during.details["rpo"]["reason"].startswith("archiving fails")
    assert any(w.startswith("RPO at risk: archiving fails") for w in during.warnings)
    assert not during.ok and "unreachable" in during.reason, "the archive cannot be verified meanwhile"
    last = cdp_pg.switch()  # a new ready file wakes the archiver, which retries the backlog in order
    assert all(name <= last for name in pending)
    after = cdp_pg.run()
    assert after.ok, after.reason
    assert after.details["rpo"]["at_risk"] is False and after.details["verify"]["ok"]
    stored = cdp_pg.store().list()
    assert all(name in stored for name in pending)


def test_a_segment_missing_from_the_store_fails_the_next_run_by_name(cdp_pg, tmp_path):
    assert cdp_pg.run().ok
    names = [cdp_pg.switch() for _round in range(3)]
    store = cdp_pg.store()
    kept = tmp_path / names[1]
    store.get(names[1], str(kept))
    store.delete([names[1]])
    try:
        record = cdp_pg.run()
        assert not record.ok
        assert "WAL segment %s is missing from S3 store" % names[1] in record.reason
        assert record.details["verify"]["missing"] == [names[1]]
        assert cdp_pg.run().reason == record.reason, "found again until repaired"
    finally:
        store.put(names[1], str(kept))
    repaired = cdp_pg.run()
    assert repaired.ok, repaired.reason
    assert cdp_pg.verify_state()["timelines"]["1"] >= names[2]


def test_the_archiver_refuses_other_content_and_restore_refuses_a_damaged_object(cdp_pg, tmp_path, moto_server):
    name = cdp_pg.switch()
    work = tmp_path / "pg_wal"
    work.mkdir()
    os.chmod(tmp_path, 0o755)
    cdp_pg.store().get(name, str(work / name))
    shutil.chown(work, "postgres", "postgres")
    shutil.chown(work / name, "postgres", "postgres")
    config = str(cdp_pg.archiver_config)
    same = cdp_pg.agent("archive-wal", "--config", config, "pg_wal/" + name, name, cwd=tmp_path)
    assert (same.returncode, same.stderr) == (0, ""), "PostgreSQL's retry of a stored segment succeeds"
    other = work / "other"
    other.write_bytes(os.urandom(SEGMENT_SIZE))
    shutil.chown(other, "postgres", "postgres")
    refused = cdp_pg.agent("archive-wal", "--config", config, "pg_wal/other", name, cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("restorable-agent archive-wal: error: WAL file %s was not archived" % name)
    assert "refusing to replace it" in refused.stderr and refused.stderr.count("\n") == 1

    s3 = moto_server.client()
    key = "%s/%s" % (cdp_pg.store_settings["prefix"], name)
    original = s3.get_object(Bucket=cdp_pg.store_settings["bucket"], Key=key)
    body, metadata = original["Body"].read(), original["Metadata"]
    s3.put_object(Bucket=cdp_pg.store_settings["bucket"], Key=key, Body=b"damaged" + body[7:], Metadata=metadata)
    try:
        damaged = cdp_pg.agent("restore-wal", "--config", config, name, "pg_wal/RECOVERYXLOG", cwd=tmp_path)
        assert damaged.returncode == 126, "above 125: PostgreSQL stops recovery instead of promoting early"
        assert "does not match its checksum" in damaged.stderr
        assert not (work / "RECOVERYXLOG").exists()
        missing = cdp_pg.agent("restore-wal", "--config", config, "0000000F.history", "pg_wal/RECOVERYHISTORY",
                               cwd=tmp_path)
        assert (missing.returncode, missing.stderr) == (1, "")
    finally:
        s3.put_object(Bucket=cdp_pg.store_settings["bucket"], Key=key, Body=body, Metadata=metadata)
    restored = cdp_pg.agent("restore-wal", "--config", config, name, "pg_wal/RECOVERYXLOG", cwd=tmp_path)
    assert restored.returncode == 0 and (work / "RECOVERYXLOG").read_bytes() == body


def test_a_job_naming_another_cluster_or_another_store_is_refused(cdp_pg):
    source = {"type": "postgresql", "data_directory": "/srv/another/cluster", "port": cdp_pg.cluster.port,
              "host": str(cdp_pg.cluster.socket_dir)}
    record = cdp_pg.run(source=source)
    assert not record.ok and record.reason.endswith("not options.source.data_directory /srv/another/cluster")
    record = cdp_pg.run(wal_store=dict(cdp_pg.store_settings, prefix="fleet/db02/wal/pgmain"))
    assert not record.ok and "the archiver configuration %s names dataset pgmain and S3 store" % (
        cdp_pg.archiver_config) in record.reason
