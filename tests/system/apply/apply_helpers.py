# -*- coding: utf-8 -*-
"""Helpers of the end-to-end apply tests: inventories of the agent tier for the test fleet,
ansible-playbook runs with their PLAY RECAP, restic queries against the repositories, and
snapshots of file trees.

Nothing here mocks anything: playbooks run by FQCN as subprocesses against the real sshd hosts
and the systemd container, restic talks to real local, SFTP and S3 (moto) repositories.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.inventory import REPO, ansible_bin, ansible_env, inventory_data

PLAYBOOK_TIMEOUT = 300
# The dataset each fleet host protects (its own files), and the targets every dataset goes to.
DATASETS = {"host1": "www", "host2": "mail", "host3": "home"}
TARGETS = ("local-disk", "nas", "offsite")
_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass
class PlaybookRun:
    """One finished ansible-playbook (or ansible) run."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """{host: {ok, changed, unreachable, failed, ...}} from the PLAY RECAP."""
        return parse_recap(self.stdout)

    def describe(self) -> str:
        tail = self.output[-6000:]
        return "`%s` exited %d after %.1f s; output (tail):\n%s" % (
            " ".join(self.argv), self.returncode, self.seconds, tail)


def parse_recap(stdout: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    lines = stdout.splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    except ValueError:
        return recap
    for line in lines[start + 1:]:
        match = _RECAP_LINE.match(line.strip())
        if not match:
            continue
        recap[match["host"]] = {k: int(v) for k, v in (p.split("=") for p in match["counts"].split())}
    return recap


def _command(argv: Sequence[str]) -> list[str]:
    return [str(a) for a in argv]


def run_ansible(argv: Sequence[str], timeout: float = PLAYBOOK_TIMEOUT) -> PlaybookRun:
    """Run an Ansible command from the checkout with its ansible.cfg."""
    argv = _command(argv)
    start = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                            cwd=REPO, env=ansible_env(), stdin=subprocess.DEVNULL)
    return PlaybookRun(argv, result.returncode, result.stdout, result.stderr, time.monotonic() - start)


def playbook_argv(inventory: Path, playbook: str, *args: str) -> list[str]:
    return _command([ansible_bin("ansible-playbook"), "-i", inventory, "--forks", "10",
                     "restorable.backup.%s" % playbook, *args])


def ansible_playbook(inventory: Path, playbook: str, *args: str,
                     timeout: float = PLAYBOOK_TIMEOUT) -> PlaybookRun:
    """``ansible-playbook -i INVENTORY restorable.backup.PLAYBOOK ARGS``."""
    return run_ansible(playbook_argv(inventory, playbook, *args), timeout)


def start_playbook(inventory: Path, playbook: str, *args: str) -> "BackgroundRun":
    return BackgroundRun.start(playbook_argv(inventory, playbook, *args))


@dataclass
class BackgroundRun:
    """An Ansible run in the background (for overlapping runs); ``wait()`` gives its PlaybookRun."""

    argv: list[str]
    process: subprocess.Popen[str]
    started: float

    @classmethod
    def start(cls, argv: Sequence[str]) -> "BackgroundRun":
        argv = _command(argv)
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   cwd=REPO, env=ansible_env(), stdin=subprocess.DEVNULL)
        return cls(argv, process, time.monotonic())

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float = PLAYBOOK_TIMEOUT) -> PlaybookRun:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
        return PlaybookRun(self.argv, self.process.returncode, stdout, stderr, time.monotonic() - self.started)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# -- inventories --------------------------------------------------------------------------------


def write_yaml_inventory(path: Path, groups: Mapping[str, Iterable[Any]], group_vars: Mapping[str, Any],
                         host_vars: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """A YAML inventory of fixture hosts (their connection variables), ``group_vars`` on ``all``,
    and extra variables per host."""
    data = inventory_data(groups, group_vars)
    for group in data["all"]["children"].values():
        for name, variables in group["hosts"].items():
            variables.update((host_vars or {}).get(name, {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000))
    return path


# -- restic, from the test's side ---------------------------------------------------------------


def restic(url: str, password_file: Path, *args: str, env: Mapping[str, str] | None = None,
           options: Sequence[str] = (), timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """restic against a repository as an operator would query it (no cache left behind)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    environment.update(env or {})
    environment["RESTIC_PASSWORD_FILE"] = str(password_file)
    argv = ["restic", "-r", url, "--no-cache"]
    for option in options:
        argv += ["-o", option]
    return subprocess.run(argv + list(args), capture_output=True, text=True, env=environment,
                          timeout=timeout, check=False)


# -- files --------------------------------------------------------------------------------------


def tree_state(*roots: Path) -> dict[str, tuple]:
    """{path: (kind, mode, size, mtime_ns, sha256)} of everything below the roots (missing roots
    count as empty): equal states mean nothing was written, created, chmod-ed or removed."""
    state: dict[str, tuple] = {}
    for root in roots:
        if not root.exists():
            state[str(root)] = ("missing",)
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in [*dirs, *sorted(files)]:
                path = os.path.join(folder, name)
                info = os.lstat(path)
                digest = ""
                if os.path.isfile(path) and not os.path.islink(path):
                    digest = file_sha256(Path(path))
                state[path] = (oct(info.st_mode), info.st_size, info.st_mtime_ns, digest)
    return state


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def files_below(root: Path, skip: Sequence[Path] = ()) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        found += [Path(folder, f) for f in files]
    return found


# -- process lists ------------------------------------------------------------------------------


@dataclass
class CmdlineRecorder:
    """Polls /proc/*/cmdline of every process while running, keeping each distinct one."""

    interval: float = 0.02
    seen: set[str] = field(default_factory=set)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "CmdlineRecorder":
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> None:
        self.polls += 1
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry.name, "rb") as handle:
                    raw = handle.read()
            except OSError:
                continue
            if raw:
                self.seen.add(raw.replace(b"\0", b" ").decode("utf-8", "replace").strip())


def exec_start(service: Path) -> str:
    """The service's command as a shell line: its PYTHONPATH, umask and ExecStart."""
    lines = service.read_text().splitlines()
    environment = [l.split("=", 1)[1] for l in lines if l.startswith("Environment=")]
    (command,) = [l.split("=", 1)[1] for l in lines if l.startswith("ExecStart=")]
    assert "UMask=0077" in lines
    return "cd / && umask 077 && env %s %s" % (" ".join(shlex.quote(e) for e in environment), command)
