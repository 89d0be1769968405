# -*- coding: utf-8 -*-
"""Shared fixtures of the system tests: real engines, started by the tests themselves.

Every daemon a fixture starts is stopped by its own PID; nothing else is touched.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import collection_path  # noqa: F401  pylint: disable=unused-import  # ansible_collections.restorable.backup, one root

pytest_plugins = ["fleet.plugin", "hypervisor.plugin"]
RESTIC_PASSWORD = "system-test-restic-password-0d6f"
S3_ACCESS_KEY = "AKIASYSTEMTEST0001"
S3_SECRET_KEY = "system-test-s3-secret-key-7c1e9a"
S3_REGION = "us-east-1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, process: subprocess.Popen | None = None) -> None:
    """Wait until 127.0.0.1:port accepts connections (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError("process %d exited with %s before listening on %d" % (process.pid, process.returncode, port))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %.0fs" % (port, timeout))


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate one process we started (by its PID), kill it if it does not stop."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@dataclass
class MotoServer:
    """An S3 API server (moto server mode) on 127.0.0.1."""

    process: subprocess.Popen
    port: int
    log_path: Path
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY
    region: str = S3_REGION

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def endpoint(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def client(self, service: str = "s3"):
        import boto3
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def stop(self) -> None:
        stop_process(self.process)


def start_moto_server(log_dir: Path) -> MotoServer:
    """Start `moto_server -H 127.0.0.1 -p PORT`; the caller stops it (MotoServer.stop)."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.fail("moto is not installed: pip install 'moto[server]'")
    binary = Path(sys.executable).with_name("moto_server")
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "moto.server"]
    last_error = None
    for _attempt in range(3):  # the free port may be taken between the probe and the bind
        port = free_port()
        log_path = log_dir / ("moto-%d.log" % port)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command + ["-H", "127.0.0.1", "-p", str(port)], stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_for_port(port, 30.0, process)
            return MotoServer(process, port, log_path)
        except RuntimeError as exc:
            last_error = exc
            stop_process(process)
    raise RuntimeError("moto server did not start: %s" % last_error)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A moto S3 server shared by the session, stopped by PID at the end."""
    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def restic_binary() -> str:
    path = shutil.which("restic")
    if not path:
        pytest.fail("restic is not installed: apt-get install -y restic")
    return path


@dataclass
class ResticLocalRepo:
    """An initialised restic repository in a local directory."""

    path: Path
    password_file: Path
    password: str = RESTIC_PASSWORD

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
        env["RESTIC_PASSWORD_FILE"] = str(self.password_file)
        return env

    def restic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["restic", "-r", str(self.path), *args], env=self.env(), capture_output=True,
                              text=True, check=check)


def write_private(path: Path, text: str) -> Path:
    """A 0600 file (secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="session")
def restic_local_repo(tmp_path_factory, restic_binary) -> ResticLocalRepo:
    """A local restic repository shared by the session (datasets keep apart by tags)."""
    root = tmp_path_factory.mktemp("restic-local")
    repo = ResticLocalRepo(root / "repo", write_private(root / "password", RESTIC_PASSWORD + "\n"))
    repo.restic("init")
    return repo


@pytest.fixture
def private_file():
    """write(path, text) -> path: creates a 0600 file, for passwords and keys."""
    return write_private


@pytest.fixture
def fresh_restic_repo(tmp_path, restic_binary) -> ResticLocalRepo:
    """A new, empty local repository of the test's own (one it may damage)."""
    repo = ResticLocalRepo(tmp_path / "own-repo", write_private(tmp_path / "own-repo.password", RESTIC_PASSWORD + "\n"))
    repo.restic("init")
    return repo


@pytest.fixture
def moto_server_factory(tmp_path):
    """start() -> MotoServer: extra servers for one test (e.g. to break), all stopped after it."""
    servers = []

    def start() -> MotoServer:
        server = start_moto_server(tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


class Net:
    """Loopback helpers: free_port() and wait_for_port(port, timeout, process)."""

    free_port = staticmethod(free_port)
    wait_for_port = staticmethod(wait_for_port)


@pytest.fixture(scope="session")
def net() -> Net:
    return Net()
