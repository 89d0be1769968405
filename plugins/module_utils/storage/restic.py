# -*- coding: utf-8 -*-
# Private to restorable.backup: the restic repository engine.
# The password reaches restic through RESTIC_PASSWORD_FILE and the S3 keys through the
# environment, never argv. Failures are classified (no repository, wrong password,
# unreachable, access denied, locked) so operators read what went wrong, not a trace.
from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from ..common.durations import format_duration
from ..common.process import CommandResult, Redactor, base_env, run_command, run_pipeline

STOP_GRACE = 10.0  # seconds restic gets after SIGINT to remove its lock before SIGKILL


class ResticError(Exception):
    """A restic command failed; kind says how, message says it for humans."""

    NO_REPOSITORY = "no_repository"
    WRONG_PASSWORD = "wrong_password"
    UNREACHABLE = "unreachable"
    ACCESS_DENIED = "access_denied"
    LOCKED = "locked"
    TIMEOUT = "timeout"
    INCOMPLETE = "incomplete"
    SOURCE_FAILED = "source_failed"  # the program feeding a stdin backup failed: its data is not whole
    FAILED = "failed"

    def __init__(self, kind: str, message: str, detail: str = "", timed_out: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail
        self.timed_out = timed_out  # restic was stopped because its time was up


@dataclass
class BackupSummary:
    """The summary line of `restic backup --json`."""

    snapshot_id: str | None = None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    dirs_new: int = 0
    dirs_changed: int = 0
    dirs_unmodified: int = 0
    data_added: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    total_duration: float = 0.0
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_output(cls, stdout: str) -> "BackupSummary | None":
        """Parse restic's JSON lines; None when no summary was printed."""
        summary = None
        errors = []
        for line in stdout.splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            kind = message.get("message_type")
            if kind == "summary":
                known = {k: message[k] for k in cls.__dataclass_fields__ if k in message and k != "errors"}
                summary = cls(**known)
            elif kind == "error":
                error = message.get("error") or {}
                text = error.get("message") if isinstance(error, dict) else str(error)
                errors.append("%s: %s" % (message.get("item", "?"), text or "error during %s" % message.get("during")))
        if summary is not None:
            summary.errors = errors
        return summary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckResult:
    ok: bool
    read_data_subset: str | None
    message: str


@dataclass
class ForgetResult:
    kept: int
    removed: int
    removed_ids: list[str] = field(default_factory=list)


# What restic prints, lower-cased, and what it means. Order matters: an unreachable
# server also makes restic ask "Is there a repository at the following location?".
_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                "no route to host", "connection reset", "context deadline exceeded", "tls handshake",
                "timeout awaiting", "unable to start the sftp session", "ssh: connect to host",
                "host key verification failed", "server misbehaving", "broken pipe")
_ACCESS_DENIED = ("access denied", "accessdenied", "invalidaccesskeyid", "signaturedoesnotmatch",
                  "the aws access key id you provided does not exist", "permission denied")
_NO_REPOSITORY = ("is there a repository at the following location", "the specified bucket does not exist",
                  "nosuchbucket", "the specified key does not exist")


def classify_failure(stderr: str) -> str:
    """The ResticError kind that restic's error output shows."""
    text = stderr.lower()
    if "wrong password or no key found" in text:
        return ResticError.WRONG_PASSWORD
    if "repository is already locked" in text or "unable to create lock" in text:
        return ResticError.LOCKED
    if any(p in text for p in _UNREACHABLE):
        return ResticError.UNREACHABLE
    if any(p in text for p in _ACCESS_DENIED):
        return ResticError.ACCESS_DENIED
    if any(p in text for p in _NO_REPOSITORY):
        return ResticError.NO_REPOSITORY
    return ResticError.FAILED


_RETRY_RE = re.compile(r"^(.*?) returned error, retrying after [^:]+: (.*)$")


def error_detail(stderr: str, limit: int = 400) -> str:
    """The most telling line of restic's error output, shortened.

    A "Fatal:" line wins; else the first failed attempt of a retried backend call (its
    cause; later lines are consequences such as the lock that cannot be removed); else
    the last line.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    pick = ""
    for line in lines:
        if line.startswith("Fatal:"):
            pick = line[len("Fatal:"):].strip()
            break
    if not pick:
        for line in lines:
            match = _RETRY_RE.match(line)
            if match:
                pick = "%s failed: %s" % match.groups()
                break
    if not pick and lines:
        pick = lines[-1]
    if len(pick) > limit:
        pick = pick[:limit] + "..."
    return pick


def retention_args(retention: dict[str, Any]) -> list[str]:
    """restic forget --keep-* arguments of a GFS retention (counts of 0 are not a policy)."""
    args: list[str] = []
    for key in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        count = retention.get(key)
        if count:
            args += ["--keep-%s" % key, str(int(count))]
    max_age = retention.get("max_age")
    if max_age:
        args += ["--keep-within", restic_duration(int(max_age))]
    return args


def restic_duration(seconds: int) -> str:
    """A restic duration (y, m, d, h units) covering at least `seconds`."""
    hours = -(-int(seconds) // 3600)  # restic has no minutes: round up, keep more rather than less
    days, hours = divmod(hours, 24)
    text = ("%dd" % days if days else "") + ("%dh" % hours if hours else "")
    return text or "1h"


def ionice_prefix(klass: str | None, level: int | None, ionice: str | None) -> list[str]:
    """`ionice -c N [-n L]` for an I/O class, or [] when no class or no ionice binary."""
    if not klass or not ionice:
        return []
    number = {"realtime": "1", "best-effort": "2", "idle": "3"}[klass]
    prefix = [ionice, "-c", number]
    if klass != "idle" and level is not None:
        prefix += ["-n", str(level)]
    return prefix


class ResticRepository:
    """One restic repository, driven through the restic binary."""

    def __init__(self, url: str, password_file: str, env: dict[str, str] | None = None,
                 options: Sequence[str] = (), binary: str = "restic", cache_dir: str | None = None,
                 limit_upload_kbps: int | None = None, limit_download_kbps: int | None = None,
                 command_prefix: Sequence[str] = (), redactor: Redactor | None = None) -> None:
        self.url = url
        self.password_file = password_file
        self.secret_env = dict(env or {})
        self.options = list(options)
        self.binary = binary
        self.cache_dir = cache_dir
        self.limit_upload_kbps = limit_upload_kbps
        self.limit_download_kbps = limit_download_kbps
        self.command_prefix = list(command_prefix)
        self.redact = redactor or Redactor(self.secret_env.values())

    # -- plumbing -------------------------------------------------------------------------

    def command(self, args: Sequence[str]) -> list[str]:
        """The full argv for a restic subcommand (no secret ever appears in it)."""
        argv = self.command_prefix + [self.binary, "-r", self.url]
        for option in self.options:
            argv += ["-o", option]
        if self.cache_dir:
            argv += ["--cache-dir", self.cache_dir]
        elif not (os.environ.get("HOME") or os.environ.get("XDG_CACHE_HOME")):
            argv.append("--no-cache")  # cron/systemd without HOME: restic cannot place a cache
        if self.limit_upload_kbps:
            argv += ["--limit-upload", str(self.limit_upload_kbps)]
        if self.limit_download_kbps:
            argv += ["--limit-download", str(self.limit_download_kbps)]
        return argv + list(args)

    def environment(self) -> dict[str, str]:
        env = base_env(self.secret_env)
        env["RESTIC_PASSWORD_FILE"] = self.password_file
        env["RESTIC_PROGRESS_FPS"] = "0.0166"  # at most one progress line a minute in logs
        return env

    def run(self, args: Sequence[str], timeout: float | None = None) -> CommandResult:
        result = run_command(self.command(args), env=self.environment(), timeout=timeout,
                             stop_signal=signal.SIGINT, stop_grace=STOP_GRACE)
        result.stderr = self.redact(result.stderr)
        result.stdout = self.redact(result.stdout)
        return result

    def error(self, action: str, result: CommandResult, timeout: float | None = None) -> ResticError:
        """A ResticError describing why `restic <action>` failed."""
        if result.returncode == 127 and not result.timed_out:
            return ResticError(ResticError.FAILED, "restic is not installed: %s not found" % self.binary)
        kind = classify_failure(result.stderr)
        detail = error_detail(result.stderr)
        url = self.url
        if kind == ResticError.WRONG_PASSWORD:
            message = ("wrong password for the restic repository at %s: the password file %s opens no key of it"
                       % (url, self.password_file))
        elif kind == ResticError.NO_REPOSITORY:
            message = ("no restic repository at %s (not initialised, wrong path or bucket, or the storage is "
                       "not mounted): %s" % (url, detail))
        elif kind == ResticError.UNREACHABLE:
            message = "the repository at %s is unreachable: %s" % (url, detail)
        elif kind == ResticError.ACCESS_DENIED:
            message = "access to the repository at %s was denied: %s" % (url, detail)
        elif kind == ResticError.LOCKED:
            message = "the repository at %s is locked by another process: %s" % (url, detail)
        elif result.timed_out:
            kind = ResticError.TIMEOUT
            message = "restic %s did not finish within %s" % (action, format_duration(timeout or 0))
            if detail:
                message += ": %s" % detail
        else:
            message = "restic %s failed (exit %d): %s" % (action, result.returncode, detail or "no error output")
        if result.timed_out and kind != ResticError.TIMEOUT:
            message += "; restic %s was stopped after %s" % (action, format_duration(timeout or 0))
        return ResticError(kind, message, detail, result.timed_out)

    # -- operations -----------------------------------------------------------------------

    def version(self) -> str:
        result = run_command([self.binary, "version"], env=base_env())
        if not result.ok:
            raise self.error("version", result)
        return result.stdout.strip()

    def exists(self) -> bool:
        """True when the repository opens with the password; False when there is none."""
        result = self.run(["cat", "config"])
        if result.ok:
            return True
        error = self.error("cat config", result)
        if error.kind == ResticError.NO_REPOSITORY:
            return False
        raise error

    def verify(self) -> None:
        """Open the repository (cheap): raise the classified error if it cannot be used."""
        result = self.run(["cat", "config"])
        if not result.ok:
            raise self.error("cat config", result)

    def init_if_needed(self) -> bool:
        """Create the repository unless it exists; True when it was created."""
        if self.exists():
            return False
        result = self.run(["init"])
        if not result.ok:
            raise self.error("init", result)
        return True

    def backup(self, paths: Sequence[str], host: str, tags: Sequence[str] = (), excludes: Sequence[str] = (),
               one_file_system: bool = False, timeout: float | None = None) -> BackupSummary:
        args = ["backup", "--json", "--quiet", "--host", host]
        for tag in tags:
            args += ["--tag", tag]
        for pattern in excludes:
            args += ["--exclude", pattern]
        if one_file_system:
            args.append("--one-file-system")
        args.append("--")
        args += list(paths)
        result = self.run(args, timeout=timeout)
        summary = BackupSummary.from_output(result.stdout)
        if result.ok and summary is not None and summary.snapshot_id:
            return summary
        if result.returncode == 3 and not result.timed_out and summary is not None:
            # Exit 3: a snapshot was saved, but some source files could not be read.
            unread = summary.errors or [error_detail(result.stderr)]
            raise ResticError(ResticError.INCOMPLETE,
                              "restic backup could not read %d item(s); snapshot %s is incomplete: %s"
                              % (len(unread), summary.snapshot_id, "; ".join(unread[:5])),
                              summary.snapshot_id or "")
        if result.ok:
            raise ResticError(ResticError.FAILED, "restic backup printed no summary: %s" % error_detail(result.stderr))
        raise self.error("backup", result, timeout)

    def backup_stream(self, name: str, producer: Sequence[str], producer_env: dict[str, str], host: str,
                      tags: Sequence[str] = (), timeout: float | None = None) -> BackupSummary:
        """The stdout of producer (pg_dump, mariabackup --stream) stored as the file `name`.

        A producer that fails mid-way leaves a truncated copy: that snapshot is forgotten again
        so no recovery point ever holds half a dump.
        """
        args = ["backup", "--json", "--quiet", "--host", host, "--stdin", "--stdin-filename", name]
        for tag in tags:
            args += ["--tag", tag]
        source, result = run_pipeline(producer, base_env(producer_env), self.command(args), self.environment(),
                                      timeout=timeout, stop_signal=signal.SIGINT, stop_grace=STOP_GRACE)
        result.stderr = self.redact(result.stderr)
        summary = BackupSummary.from_output(result.stdout)
        if not source.ok:
            if summary is not None and summary.snapshot_id:
                self.run(["forget", summary.snapshot_id])
            what = "timed out" if source.timed_out else "exited %d" % source.returncode
            raise ResticError(ResticError.SOURCE_FAILED, "stream %s: %s %s: %s" % (
                name, os.path.basename(source.argv[0]), what, error_detail(self.redact(source.stderr)) or "no error output"))
        if result.ok and summary is not None and summary.snapshot_id:
            return summary
        raise self.error("backup of stream %s" % name, result, timeout)

    def forget(self, retention: dict[str, Any], host: str, tags: Sequence[str] = (), prune: bool = True,
               timeout: float | None = None) -> ForgetResult:
        """Apply retention to this host's snapshots carrying all `tags` (one group)."""
        keep = retention_args(retention)
        if not keep:
            raise ResticError(ResticError.FAILED, "the retention policy keeps nothing explicitly; refusing to forget")
        # Grouped by paths too: each stream (a database dump) keeps its own retention.
        args = ["forget", "--json", "--host", host, "--group-by", "host,paths"]
        if tags:
            args += ["--tag", ",".join(tags)]
        args += keep
        if prune:
            args.append("--prune")
        result = self.run(args, timeout=timeout)
        if not result.ok:
            raise self.error("forget", result, timeout)
        kept, removed = 0, []
        for group in _leading_json(result.stdout) or []:
            kept += len(group.get("keep") or [])
            removed += [s.get("short_id") or s.get("id", "")[:8] for s in group.get("remove") or []]
        return ForgetResult(kept, len(removed), removed)

    def check(self, read_data_subset: str | None = None, timeout: float | None = None) -> CheckResult:
        args = ["check"]
        if read_data_subset:
            args += ["--read-data-subset", read_data_subset]
        result = self.run(args, timeout=timeout)
        if result.ok:
            return CheckResult(True, read_data_subset, "no errors were found")
        error = self.error("check", result, timeout)
        if error.kind in (ResticError.FAILED, ResticError.TIMEOUT):
            # The repository opened but has errors: report them rather than raising.
            return CheckResult(False, read_data_subset, error.message)
        raise error

    def snapshots(self, host: str | None = None, tags: Sequence[str] = ()) -> list[dict[str, Any]]:
        args = ["snapshots", "--json"]
        if host:
            args += ["--host", host]
        if tags:
            args += ["--tag", ",".join(tags)]
        result = self.run(args)
        if not result.ok:
            raise self.error("snapshots", result)
        return _leading_json(result.stdout) or []

    def locks(self) -> list[str]:
        """IDs of the lock files in the repository."""
        result = self.run(["list", "locks", "--no-lock"])
        if not result.ok:
            raise self.error("list locks", result)
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def unlock(self) -> None:
        """Remove stale locks only (left by killed restic processes); live ones stay."""
        result = self.run(["unlock"])
        if not result.ok:
            raise self.error("unlock", result)


def _leading_json(text: str) -> Any:
    # restic may print text after its JSON (forget --prune does); read the first value only.
    text = text.lstrip()
    if not text:
        return None
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except ValueError:
        return None
