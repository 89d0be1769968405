# -*- coding: utf-8 -*-
# Private to restorable.backup: the restic repository engine, the one place restic is run.
# The password reaches restic through RESTIC_PASSWORD_FILE and the S3 keys through the
# environment, never argv. Failures are classified (no repository, wrong password,
# unreachable, access denied, locked) so operators read what went wrong, not a trace.
from __future__ import annotations

import json
import os
import re
import signal
from typing import Any, Sequence

from ..common.durations import format_duration
from ..common.process import CommandResult, Redactor, base_env, run_command, run_pipeline
from .repository import BackupSummary, CheckResult, ForgetResult, Repository, RepositoryError, RestoreResult

STOP_GRACE = 10.0  # seconds restic gets after SIGINT to remove its lock before SIGKILL
_PACK_RES = (re.compile(r"want ([0-9a-f]{64})"), re.compile(r"\bpack ([0-9a-f]{8,64})\b", re.I),
             re.compile(r"\bdata/[0-9a-f]{2}/([0-9a-f]{64})\b"))
_VERIFY_RE = re.compile(r"finished verifying (\d+) files.*\(took ([0-9a-zµ.]+)\)", re.I)
_GO_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns)")
_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration_seconds(text: str) -> float | None:
    """Seconds of a Go duration as restic prints it ("1m2.5s", "26ms"); None when it is not one."""
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _GO_UNITS[unit] for number, unit in parts)


def _glob_escape(path: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", path)


def damaged_packs(text: str) -> list[str]:
    """Pack IDs restic check names in its output, in order, once each."""
    found: list[str] = []
    for pattern in _PACK_RES:
        for match in pattern.finditer(text):
            if match.group(1) not in found and not any(p.startswith(match.group(1)) for p in found):
                found.append(match.group(1))
    return found


class ResticError(RepositoryError):
    """A restic command failed (the kinds are RepositoryError's)."""


def parse_backup_summary(stdout: str) -> BackupSummary | None:
    """The summary of `restic backup --json` with the errors it printed; None without a summary."""
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
            known = {k: message[k] for k in BackupSummary.__dataclass_fields__ if k in message and k != "errors"}
            summary = BackupSummary(**known)
        elif kind == "error":
            error = message.get("error") or {}
            text = error.get("message") if isinstance(error, dict) else str(error)
            errors.append("%s: %s" % (message.get("item", "?"), text or "error during %s" % message.get("during")))
    if summary is not None:
        summary.errors = errors
    return summary


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


class ResticRepository(Repository):
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
        summary = parse_backup_summary(result.stdout)
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
        summary = parse_backup_summary(result.stdout)
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

    def forget_points(self, point_ids: Sequence[str], prune: bool = True, timeout: float | None = None) -> None:
        if not point_ids:
            return
        result = self.run(["forget"] + (["--prune"] if prune else []) + ["--"] + list(point_ids), timeout=timeout)
        if not result.ok:
            raise self.error("forget", result, timeout)

    def check(self, read_data_subset: str | None = None, timeout: float | None = None) -> CheckResult:
        args = ["check"]
        if read_data_subset:
            args += ["--read-data-subset", read_data_subset]
        result = self.run(args, timeout=timeout)
        if result.ok:
            return CheckResult(True, read_data_subset, "no errors were found")
        packs = damaged_packs(result.stdout + "\n" + result.stderr)
        if packs:
            return CheckResult(False, read_data_subset, "damaged pack(s) %s" % ", ".join(packs[:10]), packs)
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

    def list_files(self, point_id: str, timeout: float | None = None) -> list[str]:
        result = self.run(["ls", "--json", point_id], timeout=timeout)
        if not result.ok:
            raise self.error("ls", result, timeout)
        files = []
        for line in result.stdout.splitlines():
            try:
                node = json.loads(line)
            except ValueError:
                continue
            if node.get("struct_type") == "node" and node.get("type") == "file":
                files.append(node["path"])
        return files

    def restore(self, point_id: str, target: str, includes: Sequence[str] = (),
                timeout: float | None = None, verify: bool = True) -> RestoreResult:
        args = ["restore", point_id, "--target", target] + (["--verify"] if verify else [])
        for path in includes:
            args += ["--include", _glob_escape(path)]
        result = self.run(args, timeout=timeout)
        output = result.stdout + "\n" + result.stderr
        match = _VERIFY_RE.search(output)
        if not result.ok:
            raise self.error("restore", result, timeout)
        # restic verifies after restoring, in the same command, and times the verification
        # itself: the restore alone is what a recovery waits for.
        verify_seconds = go_duration_seconds(match.group(2)) if match else None
        seconds = max(0.0, result.duration - verify_seconds) if verify_seconds is not None else None
        problems = [line.strip() for line in output.splitlines()
                    if line.strip() and ("error" in line.lower() or "mismatch" in line.lower())]
        return RestoreResult(seconds, int(match.group(1)) if match else None, verify_seconds, problems,
                             error_detail(output))

    def read_file(self, point_id: str, path: str, timeout: float | None = None) -> str:
        result = self.run(["dump", point_id, path], timeout=timeout)
        if not result.ok:
            raise self.error("dump", result, timeout)
        return result.stdout

    def pipe_file(self, point_id: str, path: str, consumer: Sequence[str], consumer_env: dict[str, str],
                  timeout: float | None = None) -> CommandResult:
        source, result = run_pipeline(self.command(["dump", point_id, path]), self.environment(), consumer,
                                      consumer_env, timeout=timeout)
        if not source.ok:
            raise ResticError(ResticError.FAILED, "restic dump of %s: %s" % (
                path, self.redact(source.stderr_tail() or "exit code %d" % source.returncode)))
        return result


def _leading_json(text: str) -> Any:
    # restic may print text after its JSON (forget --prune does); read the first value only.
    text = text.lstrip()
    if not text:
        return None
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except ValueError:
        return None
