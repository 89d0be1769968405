# -*- coding: utf-8 -*-
# Private to restorable.backup: the WAL store on an SFTP server (SFTP-only servers included),
# driven by OpenSSH's sftp client in batch mode: the identity file and known_hosts file the
# configuration names, no other ssh configuration, host keys checked strictly.
# A file is uploaded to a hidden temporary name, then renamed with the SFTP protocol's own
# rename (`rename -l`), which never replaces an existing file; its .sha256 follows.
# pylint: disable=import-outside-toplevel
from __future__ import annotations

import hashlib
import os
import time

from .store import (CHECKSUM_SUFFIX, Missing, Store, StoreError, after, check_name, checksum_text, file_sha256,
                    parse_checksum, same_content, temporary_name, verified)

TIMEOUT = 300.0
CONNECT_TIMEOUT = 15
# Characters sftp's batch parser would read as quoting, escapes or globs.
UNSAFE = set('"\\*?[]\n\r')
MISSING_MARKS = ("not found", "No such file")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def quoted(path: str) -> str:
    if UNSAFE & set(path):
        raise StoreError("path %r holds a character sftp batch files cannot carry (quote, backslash, glob)" % path)
    return '"%s"' % path


def parents(path: str) -> list[str]:
    """Every directory from the top down to path (mkdir -p, one level per command)."""
    found = []
    while path not in ("", "/", "."):
        found.append(path)
        path = os.path.dirname(path)
    return found[::-1]


def long_listing_time(line: str, now: float) -> float:
    """The time of an `ls -l` line (`... 1048576 Dec  3 12:34 name`, or a year instead of the time
    for old files), local time, to the minute: all the SFTP client tells."""
    fields = line.split()
    for index in range(len(fields) - 3):
        if fields[index] in MONTHS:
            month, day, clock = MONTHS.index(fields[index]) + 1, int(fields[index + 1]), fields[index + 2]
            if ":" in clock:
                year = time.localtime(now).tm_year
                hour, minute = (int(part) for part in clock.split(":"))
                when = time.mktime((year, month, day, hour, minute, 0, 0, 0, -1))
                return when if when <= now + 86400 else time.mktime((year - 1, month, day, hour, minute, 0, 0, 0, -1))
            return time.mktime((int(clock), month, day, 0, 0, 0, 0, 0, -1))
    raise StoreError("cannot read a time in the sftp listing %r" % line)


class SftpStore(Store):
    """WAL files and their .sha256 files in one directory of an SFTP server."""

    kind = "sftp"

    def __init__(self, host: str, user: str, path: str, identity_file: str, known_hosts_file: str,
                 port: int = 22, timeout: float = TIMEOUT) -> None:
        self.host = host
        self.user = user
        self.path = path.rstrip("/") or "/"
        self.identity_file = identity_file
        self.known_hosts_file = known_hosts_file
        self.port = int(port)
        self.timeout = timeout
        quoted(self.path)

    def describe(self) -> str:
        return "SFTP store %s@%s:%d%s" % (self.user, self.host, self.port, self.path)

    def remote(self, name: str) -> str:
        return "%s/%s" % (self.path, check_name(name))

    def argv(self) -> list[str]:
        return ["sftp", "-b", "-", "-F", "/dev/null", "-i", self.identity_file, "-P", str(self.port),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=%s" % self.known_hosts_file, "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=%d" % CONNECT_TIMEOUT, "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR",
                "%s@%s" % (self.user, self.host)]

    def batch(self, commands: list[str]) -> tuple[bool, str, str]:
        """(all commands succeeded, stdout, stderr) of one sftp session running commands."""
        import subprocess
        try:
            result = subprocess.run(self.argv(), input="\n".join(commands) + "\n", capture_output=True, text=True,
                                    timeout=self.timeout, check=False, close_fds=True)
        except subprocess.TimeoutExpired:
            raise StoreError("%s did not answer within %.0fs" % (self.describe(), self.timeout)) from None
        except OSError as exc:
            raise StoreError("cannot run sftp: %s" % exc.strerror) from None
        return result.returncode == 0, result.stdout, result.stderr.strip()

    def failed(self, what: str, stderr: str) -> StoreError:
        lines = [line for line in stderr.splitlines() if line.strip()]
        return StoreError("%s: %s failed: %s" % (self.describe(), what, " / ".join(lines[-3:]) or "sftp exited non-zero"))

    # -- writing --------------------------------------------------------------------------------

    def put(self, name: str, path: str) -> str:
        digest = file_sha256(path)
        remote = self.remote(name)
        data_tmp, sum_tmp = temporary_name(remote), temporary_name(remote + CHECKSUM_SUFFIX)
        staging = self._staging()
        try:
            checksum_file = os.path.join(staging, name + CHECKSUM_SUFFIX)
            with open(checksum_file, "w", encoding="ascii") as handle:
                handle.write(checksum_text(digest, name))
            commands = ["-@mkdir %s" % quoted(directory) for directory in parents(self.path)]
            commands += ["@put %s %s" % (quoted(path), quoted(data_tmp)),
                         "@put %s %s" % (quoted(checksum_file), quoted(sum_tmp)),
                         "@rename -l %s %s" % (quoted(data_tmp), quoted(remote)),  # never replaces
                         "@rename %s %s" % (quoted(sum_tmp), quoted(remote + CHECKSUM_SUFFIX))]
            done, _out, stderr = self.batch(commands)
        finally:
            self._remove_staging(staging)
        if done:
            return digest
        self.batch(["-@rm %s" % quoted(data_tmp), "-@rm %s" % quoted(sum_tmp)])
        try:
            stored = self._existing_checksum(name)
        except StoreError:
            stored = None
        if stored is None:  # not stored by another attempt: the session itself failed
            raise self.failed("storing %s" % name, stderr)
        return same_content(name, stored, digest, self.describe())

    def _existing_checksum(self, name: str) -> str | None:
        """The checksum of a stored name (from the content when its .sha256 is missing); None: not stored."""
        try:
            return parse_checksum(self._fetch([name + CHECKSUM_SUFFIX])[0].decode("ascii", "replace"), name)
        except Missing:
            pass
        try:
            return hashlib.sha256(self._fetch([name])[0]).hexdigest()
        except Missing:
            return None

    @staticmethod
    def _staging() -> str:
        import tempfile
        return tempfile.mkdtemp(prefix="restorable-sftp-")

    @staticmethod
    def _remove_staging(path: str) -> None:
        import shutil
        shutil.rmtree(path, ignore_errors=True)

    # -- reading --------------------------------------------------------------------------------

    def _download(self, names: list[str], directory: str) -> None:
        """names (WAL files, .sha256 files) into directory; Missing when one is not stored."""
        commands = ["@get %s %s" % (quoted("%s/%s" % (self.path, name)), quoted(os.path.join(directory, name)))
                    for name in names]
        done, _out, stderr = self.batch(commands)
        if not done:
            if any(mark in stderr for mark in MISSING_MARKS):
                raise Missing("%s is not in %s" % (names[0], self.describe()))
            raise self.failed("reading %s" % names[0], stderr)

    def _fetch(self, names: list[str]) -> list[bytes]:
        staging = self._staging()
        try:
            self._download(names, staging)
            contents = []
            for name in names:
                with open(os.path.join(staging, name), "rb") as handle:
                    contents.append(handle.read())
            return contents
        finally:
            self._remove_staging(staging)

    def _download_verified(self, name: str, directory: str) -> tuple[str, str]:
        """(local path, checksum) of name downloaded into directory and verified."""
        check_name(name)
        self._download([name, name + CHECKSUM_SUFFIX], directory)
        with open(os.path.join(directory, name + CHECKSUM_SUFFIX), "r", encoding="ascii", errors="replace") as handle:
            expected = parse_checksum(handle.read(), name)
        local = os.path.join(directory, name)
        return local, verified(name, expected, file_sha256(local))

    def get(self, name: str, destination: str) -> str:
        staging = self._staging()
        try:
            local, digest = self._download_verified(name, staging)
            try:
                os.replace(local, destination)
            except OSError:  # another file system: copy beside the destination, then rename
                import shutil
                temporary = temporary_name(destination)
                shutil.copyfile(local, temporary)
                os.replace(temporary, destination)
            return digest
        except OSError as exc:
            raise StoreError("cannot write %s to %s: %s" % (name, destination, exc.strerror or exc)) from None
        finally:
            self._remove_staging(staging)

    def read(self, name: str) -> bytes:
        staging = self._staging()
        try:
            local, _digest = self._download_verified(name, staging)
            with open(local, "rb") as handle:
                return handle.read()
        finally:
            self._remove_staging(staging)

    def check(self, name: str) -> str:
        staging = self._staging()
        try:
            return self._download_verified(name, staging)[1]
        finally:
            self._remove_staging(staging)

    def list(self, first: str | None = None) -> list[str]:
        done, out, stderr = self.batch(["@cd %s" % quoted(self.path), "@ls -1"])
        if not done:
            if any(mark in stderr for mark in MISSING_MARKS):
                return []  # nothing archived yet
            raise self.failed("listing", stderr)
        return after([line.strip() for line in out.splitlines()], first)

    def delete(self, names: list[str]) -> None:
        stored = set(self.list())
        commands = []
        for name in names:
            if name in stored:
                commands += ["@rm %s" % quoted(self.remote(name)), "-@rm %s" % quoted(self.remote(name) + CHECKSUM_SUFFIX)]
        if commands:
            done, _out, stderr = self.batch(commands)
            if not done:
                raise self.failed("deleting", stderr)

    def modified(self, name: str) -> float:
        done, out, stderr = self.batch(["@ls -l %s" % quoted(self.remote(name))])
        if not done:
            if any(mark in stderr for mark in MISSING_MARKS):
                raise Missing("%s is not in %s" % (name, self.describe()))
            raise self.failed("listing %s" % name, stderr)
        return long_listing_time(out.strip().splitlines()[-1], time.time())
