# -*- coding: utf-8 -*-
# Private to restorable.backup: the source's end of CDP replication. Every exchange with the
# replica is one SSH call of the replica's forced command (replica_service.py): list, receive one
# point, delete points. A point travels as `btrfs send [-p PARENT] POINT | ssh ... receive POINT`,
# the stream going from process to process without passing through Python. The calls of one run
# share one SSH connection (a master this run starts and stops): one key exchange per run, which
# is most of the CPU a run with nothing new costs.
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Sequence

from ...common.process import CommandResult, base_env, run_command, run_pipeline
from ...core.jobspec import FieldReader
from .points import PointStore, is_point_name

SSH_FAILED = 255  # ssh's own exit code: no connection, or it was lost
CONNECT_TIMEOUT = 10
MASTER_GRACE = 5.0  # beyond ConnectTimeout: authentication, before the master is given up
LIST_TIMEOUT = 60.0
DELETE_TIMEOUT = 300.0
DELETE_BATCH = 500  # names per delete call: the command line travels in one SSH packet
_C_LOCALE = {"LC_ALL": "C"}


class ReplicaError(Exception):
    """Replication could not go on; the message is the run's reason."""


class ReplicaUnreachable(ReplicaError):
    """No SSH connection to the replica, or it broke."""


class NoCommonBase(ReplicaError):
    """The replica holds points but none the source has, and a full resend was not allowed."""


@dataclass
class ReplicaOptions:
    """options.replica of a btrfs CDP job."""

    host: str
    path: str  # the dataset's own directory on the replica (the forced command's --root)
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    known_hosts_file: str | None = None
    ssh_options: list[str] = field(default_factory=list)
    full_resend: bool = False

    @property
    def where(self) -> str:
        return "%s:%s" % (self.host, self.path)

    @classmethod
    def parse(cls, fields: FieldReader) -> "ReplicaOptions":
        options = cls(fields.get("host", str, required=True), fields.get("path", str, required=True),
                      fields.get("port", int), fields.get("user", str), fields.get("identity_file", str),
                      fields.get("known_hosts_file", str), fields.strings("ssh_options"),
                      fields.get("full_resend", bool, False))
        fields.done()
        if not options.host or options.host.startswith("-"):
            raise ValueError("%s: expected a host name or address" % fields.name("host"))
        if not options.path.startswith("/"):
            raise ValueError("%s: expected an absolute path" % fields.name("path"))
        if options.port is not None and not 0 < options.port < 65536:
            raise ValueError("%s: expected a TCP port" % fields.name("port"))
        return options


class ReplicaLink:
    """SSH calls of the replica's forced command for one dataset."""

    def __init__(self, options: ReplicaOptions, store: PointStore, command_prefix: Sequence[str] = (),
                 ssh: str | None = None) -> None:
        self.options = options
        self.store = store
        self.command_prefix = list(command_prefix)
        self.ssh = ssh or shutil.which("ssh") or "/usr/bin/ssh"
        self.master: subprocess.Popen | None = None
        self.control_dir: str | None = None

    def _ssh_argv(self, timeout: float | None) -> list[str]:
        """ssh to the replica; the job's ssh_options first, as ssh keeps the first value it is
        given for an option."""
        options = self.options
        connect = CONNECT_TIMEOUT if timeout is None else max(1, min(CONNECT_TIMEOUT, int(timeout)))
        argv = [self.ssh] + list(options.ssh_options)
        argv += ["-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % connect,
                 "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if options.port:
            argv += ["-p", str(options.port)]
        if options.user:
            argv += ["-l", options.user]
        if options.identity_file:
            argv += ["-i", options.identity_file, "-o", "IdentitiesOnly=yes"]
        if options.known_hosts_file:
            argv += ["-o", "UserKnownHostsFile=%s" % options.known_hosts_file]
        return argv

    @property
    def control_path(self) -> str | None:
        return os.path.join(self.control_dir, "control") if self.control_dir else None

    def argv(self, command: str, timeout: float | None = None) -> list[str]:
        """ssh running `command` on the replica, through the run's connection once it is open."""
        shared = ["-o", "ControlMaster=no", "-o", "ControlPath=%s" % self.control_path] if self.master else []
        return self._ssh_argv(timeout) + shared + [self.options.host, command]

    def open(self, timeout: float | None) -> None:
        """Connect (the master of this run's calls); ReplicaUnreachable when that fails."""
        self.control_dir = tempfile.mkdtemp(prefix="restorable-ssh-")
        argv = self._ssh_argv(timeout) + ["-M", "-N", "-o", "ControlPersist=no", "-o", "ControlPath=%s" % self.control_path,
                                          self.options.host]
        with tempfile.TemporaryFile() as errors:
            self.master = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                           env=base_env(), start_new_session=True, close_fds=True)
            # The control socket appears once the master has logged in.
            deadline = time.monotonic() + _bounded(timeout, CONNECT_TIMEOUT) + MASTER_GRACE
            while not os.path.exists(self.control_path):
                if self.master.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise ReplicaUnreachable("replica %s unreachable: %s" % (self.options.where, _tail(errors)
                                                                             or "no SSH connection within the timeout"))
                time.sleep(0.005)

    def close(self) -> None:
        """Stop this run's master (by its PID) and remove its socket's directory."""
        if self.master is not None:
            if self.master.poll() is None:
                self.master.terminate()
                try:
                    self.master.wait(MASTER_GRACE)
                except subprocess.TimeoutExpired:
                    self.master.kill()
                    self.master.wait()
            self.master = None
        if self.control_dir is not None:
            shutil.rmtree(self.control_dir, ignore_errors=True)
            self.control_dir = None

    def _call(self, command: str, timeout: float) -> CommandResult:
        result = run_command(self.argv(command, timeout), env=base_env(), timeout=timeout)
        self._check(result, command.split()[0])
        return result

    def _check(self, result: CommandResult, what: str) -> None:
        where = self.options.where
        if result.timed_out:
            raise ReplicaError("replica %s: %s timed out after %.0fs" % (where, what, result.duration))
        if result.returncode == SSH_FAILED:
            raise ReplicaUnreachable("replica %s unreachable (or the connection broke) during %s: %s" % (
                where, what, result.stderr_tail(2) or "ssh exited 255"))
        if not result.ok:
            raise ReplicaError("replica %s refused or failed %s: %s" % (
                where, what, result.stderr_tail(2) or "exit code %d" % result.returncode))

    def list(self, timeout: float | None) -> list[str]:
        """The replica's points, oldest first."""
        names = self._call("list", _bounded(timeout, LIST_TIMEOUT)).stdout.split()
        strange = [name for name in names if not is_point_name(name)]
        if strange:
            raise ReplicaError("replica %s answered list with %r, not point names" % (self.options.where, strange[0][:80]))
        return sorted(names)

    def send(self, name: str, parent: str | None, timeout: float | None) -> float:
        """One point (incremental from parent, or full) into place on the replica; the seconds it took."""
        parent_path = self.store.path(parent) if parent else None
        producer = self.command_prefix + self.store.btrfs.send_argv(self.store.path(name), parent_path)
        sent, received = run_pipeline(producer, base_env(_C_LOCALE), self.argv("receive " + name, timeout), base_env(),
                                      timeout=timeout)
        self._check(received, "receive %s" % name)
        if not sent.ok:  # the receiver would have refused a cut stream; this says why it was cut
            raise ReplicaError("btrfs send of point %s failed: %s" % (name, sent.stderr_tail(2) or "exit code %d" % sent.returncode))
        return received.duration

    def delete(self, names: Sequence[str], timeout: float | None) -> None:
        for start in range(0, len(names), DELETE_BATCH):
            self._call("delete " + " ".join(names[start:start + DELETE_BATCH]), _bounded(timeout, DELETE_TIMEOUT))


def _bounded(timeout: float | None, limit: float) -> float:
    return limit if timeout is None else min(timeout, limit)


def _tail(handle: IO[bytes]) -> str:
    handle.seek(0)
    lines = [line for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    return " / ".join(lines[-2:])


# -- what to send, what to keep -----------------------------------------------------------------

@dataclass
class SendPlan:
    """The points to send in order, each with its parent (None: a full send)."""

    base: str | None  # the newest point both sides had before sending
    sends: list[tuple[str, str | None]]
    full_reason: str = ""  # why a point goes in full
    resend: bool = False  # the full send replaces a lost base (the job allowed it), not a first seeding


def plan_sends(local: Sequence[str], remote: Sequence[str], full_resend: bool, where: str) -> SendPlan:
    """Catch up from the newest common point, every missing point in order with the one before
    as its parent. Without a common point: an empty replica is seeded with the newest point in
    full; a replica holding other points is only sent a full copy when the job allows it."""
    local, remote = sorted(local), sorted(remote)
    common = sorted(set(local) & set(remote))
    if common:
        base = common[-1]
        newer = [name for name in local if name > base]
        return SendPlan(base, list(zip(newer, [base] + newer[:-1])))
    if not local:
        return SendPlan(None, [])
    newest = local[-1]
    if not remote:
        return SendPlan(None, [(newest, None)], "the replica held no point yet")
    reason = ("replica %s holds %d point(s) (newest %s) but none of this source's %d (oldest %s): the incremental "
              "base is gone" % (where, len(remote), remote[-1], len(local), local[0]))
    if not full_resend:
        raise NoCommonBase("%s; nothing was sent or deleted. A full send of point %s would start the replica's chain "
                           "again: allow it with replica.full_resend (replica_full_resend in the policy)" % (reason, newest))
    return SendPlan(None, [(newest, None)], reason, resend=True)


def newest_common(local: Sequence[str], remote: Sequence[str]) -> str | None:
    common = set(local) & set(remote)
    return max(common) if common else None


def protected_points(local: Sequence[str], remote: Sequence[str]) -> tuple[set[str], set[str]]:
    """(kept on the source, kept on the replica) whatever the thinning rules say: the incremental
    base on both sides, on the source every point not replicated yet, on the replica its newest."""
    base = newest_common(local, remote)
    source = {name for name in local if base is None or name >= base}
    replica = {base} if base else set()
    if remote:
        replica.add(max(remote))
    return source, replica


@dataclass
class Replication:
    """What one run's replication did."""

    reached: bool
    remote: list[str] = field(default_factory=list)  # the replica's points after this run
    plan: SendPlan | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


class Replicator:
    """Brings the replica up to date with the source's points, over one connection: the caller
    closes it (close()) once the replica is thinned too."""

    def __init__(self, link: ReplicaLink) -> None:
        self.link = link

    def replicate(self, local: Sequence[str], time_left: Callable[[], float | None]) -> Replication:
        try:
            self.link.open(time_left())
            outcome = Replication(True, self.link.list(time_left()))
        except ReplicaError as exc:
            return Replication(False, error=str(exc))
        options = self.link.options
        try:
            outcome.plan = plan_sends(local, outcome.remote, options.full_resend, options.where)
            for name, parent in outcome.plan.sends:
                seconds = self.link.send(name, parent, time_left())
                outcome.remote = sorted(outcome.remote + [name])
                outcome.sent.append({"point": name, "parent": parent, "seconds": round(seconds, 3)})
        except ReplicaError as exc:
            outcome.error = str(exc)
        return outcome

    def prune(self, outcome: Replication, names: Sequence[str], time_left: Callable[[], float | None]) -> None:
        if names:
            self.link.delete(names, time_left())
            outcome.remote = [name for name in outcome.remote if name not in names]

    def close(self) -> None:
        self.link.close()
