# -*- coding: utf-8 -*-
"""The agent runner against restic S3 repositories on a moto server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from agent_helpers import random_tree, restic_snapshots, scan_cmdlines

HERE = Path(__file__).resolve().parent
PASSWORD = "s3-repository-password-41fa"


class S3Job:
    """A bucket on a moto server and the job config / restic environment that use it."""

    def __init__(self, agent, server, private_file, tmp_path, endpoint: str | None = None) -> None:
        self.server = server
        self.bucket = "agent-%s" % uuid.uuid4().hex[:10]
        self.password_file = private_file(tmp_path / "s3-password", PASSWORD + "\n")
        self.env_file = private_file(tmp_path / "s3.env", "AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n" % (
            server.access_key, server.secret_key))
        self.url = "s3:%s/%s/hosts/testhost" % (endpoint or server.endpoint, self.bucket)
        self.agent = agent

    def config(self, dataset: str, paths: list[str], **fields) -> Path:
        return self.agent.config(dataset, self.url, self.password_file, paths, env_file=str(self.env_file), **fields)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
        env.update(RESTIC_PASSWORD_FILE=str(self.password_file), AWS_ACCESS_KEY_ID=self.server.access_key,
                   AWS_SECRET_ACCESS_KEY=self.server.secret_key)
        return env

    def restic(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["restic", "-r", self.url, *args], env=self.env(), capture_output=True, text=True,
                              check=False)


def test_s3_backup_retention_check_and_no_secret_leaks(agent, moto_server, private_file, tmp_path, restic_binary):
    job = S3Job(agent, moto_server, private_file, tmp_path)
    moto_server.client().create_bucket(Bucket=job.bucket)
    data = random_tree(tmp_path / "data", 2, 3 << 20)
    config = job.config("s3www", [str(data)], retention={"last": 1, "prune_every": 1}, check={"every": 1},
                        schedule={"bandwidth": {"upload_kbps": 2048}})
    init = agent.cli("init", config)
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["created"] is True

    secrets = [PASSWORD, moto_server.secret_key]
    for round_ in range(2):
        (data / "changing.txt").write_text("round %d" % round_)
        proc = agent.start(config)
        hits, saw_backup = [], False
        while proc.poll() is None:
            found, argvs = scan_cmdlines(secrets)
            hits += found
            saw_backup = saw_backup or any("backup" in argv and job.url in argv for argv in argvs)
            time.sleep(0.02)
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert saw_backup and hits == []
        result = json.loads(out)
        assert result["check"]["ok"] is True
        for text in (out, err, json.dumps(agent.status("s3www")), agent.metrics("s3www")):
            for secret in secrets:
                assert secret not in text
    assert result["retention"] == {"forgot": True, "pruned": True, "kept": 1, "removed": 1,
                                   "removed_ids": result["retention"]["removed_ids"]}
    snapshots = restic_snapshots(job.env(), job.url)
    assert [s["short_id"] for s in snapshots] == [result["snapshot_id"]]


def test_s3_object_lock_bucket_keeps_locked_versions(agent, moto_server, private_file, tmp_path, restic_binary):
    job = S3Job(agent, moto_server, private_file, tmp_path)
    s3 = moto_server.client()
    s3.create_bucket(Bucket=job.bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=job.bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    data = random_tree(tmp_path / "data", 2, 256 << 10)
    config = job.config("locked", [str(data)], retention={"last": 1, "prune_every": 1}, check={"every": 1, "read_data_subset": "100%"})
    assert agent.cli("init", config).returncode == 0
    results = []
    for round_ in range(2):
        (data / "changing.txt").write_text("round %d" % round_)
        run = agent.run(config)
        assert run.returncode == 0, run
        results.append(run.result)
    assert results[1]["retention"]["removed"] == 1
    assert results[1]["check"]["ok"] is True
    assert [s["short_id"] for s in restic_snapshots(job.env(), job.url)] == [results[1]["snapshot_id"]]

    # restic's deletes only added delete markers: every version written is still there and
    # cannot be deleted before its retention ends.
    versions = s3.list_object_versions(Bucket=job.bucket)
    assert versions.get("DeleteMarkers"), "forget/prune should have deleted something"
    first_snapshot = [v for v in versions["Versions"] if "/snapshots/" in v["Key"]]
    assert len(first_snapshot) == 2
    with pytest.raises(ClientError) as denied:
        s3.delete_object(Bucket=job.bucket, Key=first_snapshot[0]["Key"], VersionId=first_snapshot[0]["VersionId"])
    assert denied.value.response["Error"]["Code"] == "AccessDenied"


def _start_proxy(listen: int, upstream: int, stats: Path, net) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(HERE / "tcp_proxy.py"), str(listen), str(upstream), str(stats)],
                            stdin=subprocess.DEVNULL)
    net.wait_for_port(listen, 15.0, proc)
    return proc


def _forwarded(stats: Path) -> int:
    try:
        return int(stats.read_text() or 0)
    except (OSError, ValueError):
        return 0


def test_s3_connection_lost_mid_backup_fails_clearly_then_recovers(agent, moto_server_factory, private_file,
                                                                   tmp_path, net, restic_binary):
    server = moto_server_factory()  # its own server: this test fills it with 256 MiB
    proxy_port = net.free_port()
    stats = tmp_path / "proxy-bytes"
    proxy = _start_proxy(proxy_port, server.port, stats, net)
    job = S3Job(agent, server, private_file, tmp_path, endpoint="http://127.0.0.1:%d" % proxy_port)
    server.client().create_bucket(Bucket=job.bucket)
    data = random_tree(tmp_path / "data", 8, 32 << 20)
    # max_runtime bounds how long restic may keep retrying a dead endpoint (it would for minutes).
    config = job.config("fragile", [str(data)], retention={"last": 2}, schedule={"max_runtime": "10s"})
    try:
        assert agent.cli("init", config).returncode == 0
        run = agent.start(config)
        deadline = time.monotonic() + 60
        while _forwarded(stats) < (48 << 20):
            assert run.poll() is None, "the backup finished before the network broke: %s" % (run.communicate(),)
            assert time.monotonic() < deadline, "the backup never got going"
            time.sleep(0.02)
        os.kill(proxy.pid, signal.SIGKILL)  # the network dies mid-backup; moto keeps its data
        proxy.wait()
        out, err = run.communicate(timeout=120)
        assert run.returncode == 1, err
        result = json.loads(out)
        assert result["result"] == "failed"
        reason = result["reason"]
        assert reason.startswith("the repository at %s is unreachable: " % job.url), reason
        assert "connection refused" in reason and reason.endswith("(the run's max_runtime is 10s)")
        assert "Traceback" not in err
        status = agent.status("fragile")
        assert status["result"] == "failed" and status["consecutive_failures"] == 1
        assert status["last_success"] is None

        proxy = _start_proxy(proxy_port, server.port, stats, net)
        config = job.config("fragile", [str(data)], retention={"last": 2, "prune_every": 1})
        again = agent.run(config)
        assert again.returncode == 0, again
        result = again.result
        assert result["unlocked_stale_locks"] is True
        assert result["files_new"] + result["files_unmodified"] + result["files_changed"] == 9  # 8 + canary
        assert result["retention"]["kept"] == 1
        assert agent.status("fragile")["consecutive_failures"] == 0
        check = job.restic("check")
        assert check.returncode == 0, check.stderr
        locks = job.restic("list", "locks", "--no-lock")
        assert locks.returncode == 0 and locks.stdout.strip() == ""
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait()
