# -*- coding: utf-8 -*-
"""The agent tier end to end on a fleet of 3 SSH hosts: `restorable.backup.apply` converges
each host (local, SFTP and S3 Object Lock repositories), `restorable.backup.backup` takes a
backup of every job, and the repositories hold the snapshots with their dataset tags."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from apply_helpers import TARGETS, restic


def test_apply_converges_every_host(applied_fleet):
    fleet = applied_fleet.fleet
    recap = applied_fleet.apply.recap
    assert sorted(recap) == fleet.fleet.names, applied_fleet.apply.describe()
    for name in fleet.fleet.names:
        assert recap[name]["failed"] == 0 and recap[name]["unreachable"] == 0
        assert recap[name]["changed"] > 0, "a fresh host must change: %s" % recap[name]
        config_dir = fleet.root(name) / "etc/restorable"
        for job in fleet.jobs(name):
            config = json.loads((config_dir / (job + ".json")).read_text())
            assert config["host"] == name
            assert config["paths"] == [str(fleet.data_path(name))]
        for target in TARGETS:
            assert (fleet.secrets_dir(name) / (target + ".password")).stat().st_mode & 0o777 == 0o600
    assert "policy of 3 host(s) is valid" in applied_fleet.apply.output


def test_apply_provisions_the_locked_bucket(applied_fleet, moto_server):
    fleet = applied_fleet.fleet
    s3 = moto_server.client()
    assert s3.get_bucket_versioning(Bucket=fleet.bucket)["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket=fleet.bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", 1)
    assert "create bucket %s" % fleet.bucket in applied_fleet.apply.stdout
    # Each host's repository lives below its own prefix, and its objects are locked.
    for name in fleet.fleet.names:
        listing = s3.list_objects_v2(Bucket=fleet.bucket, Prefix=fleet.s3_prefix(name) + "/")
        keys = [o["Key"] for o in listing.get("Contents", [])]
        assert fleet.s3_prefix(name) + "/config" in keys, keys
    head = s3.head_object(Bucket=fleet.bucket, Key=fleet.s3_prefix("host1") + "/config")
    assert head["ObjectLockMode"] == "COMPLIANCE"


def test_backup_records_success_with_a_snapshot_for_every_job(applied_fleet):
    fleet = applied_fleet.fleet
    backup = applied_fleet.backup
    for name in fleet.fleet.names:
        assert backup.recap[name]["failed"] == 0, backup.describe()
        for job in fleet.jobs(name):
            status = json.loads(fleet.status_file(name, job).read_text())
            assert status["result"] == "success", (name, job, status.get("reason"))
            # restic 0.14 reports the short id in its backup summary; later versions the full one.
            assert len(status["snapshot_id"]) in (8, 64) and int(status["snapshot_id"], 16) >= 0
            assert status["host"] == name
            assert status["last_success"]["snapshot_id"] == status["snapshot_id"]
            assert status["bytes_processed"] > 64 * 1024
            # The playbook's own report, from restorable.backup.status_info (of the first run: the
            # cron test may have run this job once more since).
            first = status["history"][0]
            assert first["result"] == "success"
            assert "%s: success %s" % (job, first["snapshot_id"]) in backup.stdout


def _snapshots(fleet, name, target, url):
    options = [fleet.sftp_command()] if target == "nas" else []
    env = fleet.s3_env() if target == "offsite" else {}
    password_file = fleet.secrets_dir(name) / (target + ".password")
    result = restic(url, password_file, "snapshots", "--json", env=env, options=options)
    assert result.returncode == 0, "restic snapshots of %s: %s" % (url, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def listed(applied_fleet):
    """{(host, target): snapshots} from `restic snapshots --json` of every repository (local
    path, SFTP through host1's sshd, S3 on moto), queried in parallel."""
    fleet = applied_fleet.fleet
    queries = {(name, target): url for name in fleet.fleet.names
               for target, url in fleet.repository_urls(name).items()}
    with ThreadPoolExecutor(max_workers=len(queries)) as pool:
        futures = {key: pool.submit(_snapshots, fleet, key[0], key[1], url) for key, url in queries.items()}
        return {key: future.result() for key, future in futures.items()}


def _job(fleet, name, target):
    dataset = fleet.dataset(name)
    return dataset if target == TARGETS[0] else "%s-%s" % (dataset, target)


def test_repositories_list_the_snapshots(applied_fleet, listed):
    fleet = applied_fleet.fleet
    assert len(listed) == 9
    for (name, target), snapshots in listed.items():
        job = _job(fleet, name, target)
        status = json.loads(fleet.status_file(name, job).read_text())
        # The backup's snapshot (a later test may add one more by running the cron entry).
        assert [s for s in snapshots if s["id"].startswith(status["snapshot_id"])], (name, target, snapshots)
        for snapshot in snapshots:
            assert snapshot["hostname"] == name
            # The dataset's paths, plus the freshness canary the runner writes for drills.
            assert str(fleet.data_path(name)) in snapshot["paths"]
            assert str(fleet.root(name) / "var/lib/restorable" / (job + ".canary")) in snapshot["paths"]
            # The job's own tag, which its retention (restic forget --tag) selects by.
            assert "dataset:%s" % job in snapshot["tags"], (name, target, snapshot["tags"])


def test_primary_copies_are_tagged_with_their_dataset(applied_fleet, listed):
    fleet = applied_fleet.fleet
    for name in fleet.fleet.names:
        for snapshot in listed[(name, TARGETS[0])]:
            assert "dataset:%s" % fleet.dataset(name) in snapshot["tags"], (name, snapshot["tags"])


def test_further_copies_are_tagged_with_their_dataset(applied_fleet, listed):
    fleet = applied_fleet.fleet
    for name in fleet.fleet.names:
        for target in TARGETS[1:]:
            for snapshot in listed[(name, target)]:
                assert "dataset:%s" % fleet.dataset(name) in snapshot["tags"], (name, target, snapshot["tags"])


@pytest.mark.parametrize("path", ["scratch.tmp"])
def test_excluded_files_are_not_in_the_snapshot(applied_fleet, path):
    fleet = applied_fleet.fleet
    name = "host2"
    url = fleet.repository_urls(name)["local-disk"]
    result = restic(url, fleet.secrets_dir(name) / "local-disk.password", "ls", "--json", "latest")
    assert result.returncode == 0, result.stderr
    names = {json.loads(line).get("name") for line in result.stdout.splitlines() if line.startswith("{")}
    assert "index.txt" in names and "random.bin" in names
    assert path not in names
