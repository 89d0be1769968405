# -*- coding: utf-8 -*-
"""S3 targets set up from the controller (restorable.backup.s3_provision) against a moto
server that enforces IAM (INITIAL_NO_AUTH_ACTION_COUNT): bucket settings, one IAM user per
host whose key reaches only the host's own prefix, idempotence and check mode."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fleet.inventory import ansible_bin, ansible_env

boto3 = pytest.importorskip("boto3")
from botocore.exceptions import ClientError  # noqa: E402

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
PLAYBOOK = """
- ansible.builtin.import_playbook: restorable.backup.validate
- hosts: all
  gather_facts: false
  tasks:
    - restorable.backup.s3_provision:
      run_once: true
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def iam_moto(tmp_path_factory):
    """A moto server that checks every request against IAM once an admin user exists."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    binary = Path(sys.executable).with_name("moto_server")
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "moto.server"]
    # Three unauthenticated calls create the admin user, its policy and its key.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    with open(log, "wb") as handle:
        process = subprocess.Popen(command + ["-H", "127.0.0.1", "-p", str(port)], env=env, stdout=handle,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = "http://127.0.0.1:%d" % port
    try:
        _wait_for_port(port, process)
        iam = _client("iam", endpoint, "bootstrap", "bootstrap")
        iam.create_user(UserName="restorable-admin")
        iam.put_user_policy(UserName="restorable-admin", PolicyName="all", PolicyDocument=json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(UserName="restorable-admin")["AccessKey"]
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def _client(service: str, endpoint: str, key: str, secret: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("moto server exited with %s" % process.returncode)
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("moto server did not listen on %d" % port)


def _inventory(path: Path, endpoint: str, key: str, secret: str, bucket: str, store: Path) -> Path:
    target = {
        "type": "s3", "endpoint": endpoint, "bucket": bucket, "prefix": "hosts", "versioning": True,
        "object_lock": {"mode": "compliance", "days": 2}, "lifecycle": {"noncurrent_days": 30},
        "scoped_credentials": True, "password": "{{ vault_pw }}",
        "access_key_id": "{{ vault_admin_key }}", "secret_access_key": "{{ vault_admin_secret }}",
    }
    common = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "vault_pw": "s3-provision-test-pw", "vault_admin_key": key, "vault_admin_secret": secret,
        "restorable_controller": {"credential_store": str(store)},
        "restorable_targets": {"cloud": target},
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
    }
    hosts = {
        name: {"restorable_datasets": {"data": {"tier": "agent", "paths": ["/srv/" + name], "targets": ["cloud"],
                                                "schedule": "nightly", "retention": {"daily": 7}}}}
        for name in ("alpha", "beta")
    }
    path.write_text(yaml.safe_dump({"all": {"vars": common, "hosts": hosts}}))
    return path


def _play(tmp_path: Path, inventory: Path, *extra: str) -> subprocess.CompletedProcess:
    playbook = tmp_path / "provision.yml"
    playbook.write_text(PLAYBOOK)
    return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory), str(playbook), *extra],
                          env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)


def _recap_changed(output: str) -> int:
    lines = [line for line in output.splitlines() if "changed=" in line and "ok=" in line]
    return sum(int(line.split("changed=")[1].split()[0]) for line in lines)


def test_buckets_and_scoped_credentials(iam_moto, tmp_path):
    endpoint, key, secret = iam_moto
    store = tmp_path / "store"
    inventory = _inventory(tmp_path / "inv.yml", endpoint, key, secret, "acme-backup", store)

    first = _play(tmp_path, inventory)
    assert first.returncode == 0, first.stdout + first.stderr
    s3 = _client("s3", endpoint, key, secret)
    assert s3.get_bucket_versioning(Bucket="acme-backup")["Status"] == "Enabled"
    retention = s3.get_object_lock_configuration(Bucket="acme-backup")["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", 2)
    rules = s3.get_bucket_lifecycle_configuration(Bucket="acme-backup")["Rules"]
    assert rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30

    keys = {}
    for host in ("alpha", "beta"):
        [path] = list(store.rglob(host + ".json"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        keys[host] = json.loads(path.read_text())
        assert keys[host]["AWS_ACCESS_KEY_ID"] != key  # hosts never get the controller's key
    alpha = _client("s3", endpoint, keys["alpha"]["AWS_ACCESS_KEY_ID"], keys["alpha"]["AWS_SECRET_ACCESS_KEY"])
    alpha.put_object(Bucket="acme-backup", Key="hosts/alpha/probe", Body=b"mine")
    assert alpha.get_object(Bucket="acme-backup", Key="hosts/alpha/probe")["Body"].read() == b"mine"
    s3.put_object(Bucket="acme-backup", Key="hosts/beta/probe", Body=b"theirs")
    for action in (lambda: alpha.get_object(Bucket="acme-backup", Key="hosts/beta/probe"),
                   lambda: alpha.put_object(Bucket="acme-backup", Key="hosts/beta/evil", Body=b"x"),
                   lambda: alpha.delete_object(Bucket="acme-backup", Key="hosts/beta/probe")):
        with pytest.raises(ClientError) as denied:
            action()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"

    second = _play(tmp_path, inventory)
    assert second.returncode == 0, second.stdout
    assert _recap_changed(second.stdout) == 0, second.stdout
    for host in ("alpha", "beta"):
        [path] = list(store.rglob(host + ".json"))
        assert json.loads(path.read_text()) == keys[host]  # no new key on a converged run


def test_check_mode_creates_nothing(iam_moto, tmp_path):
    endpoint, key, secret = iam_moto
    store = tmp_path / "store"
    inventory = _inventory(tmp_path / "inv.yml", endpoint, key, secret, "fresh-bucket", store)
    result = _play(tmp_path, inventory, "--check", "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "would create bucket fresh-bucket" in result.stdout
    assert "would create IAM user" in result.stdout
    s3 = _client("s3", endpoint, key, secret)
    assert "fresh-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not store.exists()
    assert secret not in result.stdout
