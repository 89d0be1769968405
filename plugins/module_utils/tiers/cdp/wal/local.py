# -*- coding: utf-8 -*-
# Private to restorable.backup: the WAL store in a local directory (no subprocess: the archiver
# copies and hashes in one read pass and makes both files durable before PostgreSQL moves on).
from __future__ import annotations

import hashlib
import os

from .store import (CHECKSUM_SUFFIX, FILE_MODE, WRITE_FLAGS, Missing, Store, StoreError, after, check_name,
                    checksum_text, copy_hashing, file_sha256, parse_checksum, same_content, temporary_name, verified,
                    write_verified)

DIRECTORY_MODE = 0o750


def fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore(Store):
    """WAL files and their .sha256 files in one directory."""

    kind = "local"

    def __init__(self, path: str) -> None:
        self.path = path

    def describe(self) -> str:
        return "local store %s" % self.path

    def _file(self, name: str) -> str:
        return os.path.join(self.path, check_name(name))

    def _stored_checksum(self, name: str) -> str:
        try:
            with open(self._file(name) + CHECKSUM_SUFFIX, "r", encoding="ascii") as handle:
                return parse_checksum(handle.read(), name)
        except FileNotFoundError:
            raise StoreError("%s in %s has no checksum file" % (name, self.describe())) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError("cannot read the checksum of %s in %s: %s" % (name, self.describe(), exc)) from None

    def _checksum_if_any(self, name: str) -> str | None:
        try:
            return self._stored_checksum(name)
        except StoreError:
            return None

    def _open(self, name: str) -> int:
        try:
            return os.open(self._file(name), os.O_RDONLY)
        except FileNotFoundError:
            raise Missing("%s is not in %s" % (name, self.describe())) from None
        except OSError as exc:
            raise StoreError("cannot read %s from %s: %s" % (name, self.describe(), exc.strerror)) from None

    def _copy(self, name: str, target: int | None) -> str:
        """Copy (or read, target None) name hashing it; the checksum of what was read."""
        source = self._open(name)
        try:
            return copy_hashing(source, target)
        finally:
            os.close(source)

    # -- writing --------------------------------------------------------------------------------

    def put(self, name: str, path: str) -> str:
        target = self._file(name)
        try:
            if os.path.lexists(target):
                return self._put_again(name, path)
            if not os.path.isdir(self.path):
                os.makedirs(self.path, DIRECTORY_MODE, exist_ok=True)
            return self._put_new(name, path, target)
        except OSError as exc:
            raise StoreError("cannot store %s in %s: %s" % (name, self.describe(), exc.strerror or exc)) from None

    def _put_new(self, name: str, path: str, target: str) -> str:
        temporary = temporary_name(target)
        source = os.open(path, os.O_RDONLY)
        try:
            fd = os.open(temporary, WRITE_FLAGS, FILE_MODE)
        except OSError:
            os.close(source)
            raise
        try:
            try:
                digest = copy_hashing(source, fd)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.close(source)
            # The checksum first: whoever sees the segment finds its checksum.
            self._write_checksum(name, digest)
            try:
                os.link(temporary, target)  # unlike rename, never replaces a file stored meanwhile
            except FileExistsError:  # stored meanwhile: the checksum just written may not be its own
                return self._put_again(name, path, trust_checksum=False)
        finally:
            os.unlink(temporary)
        fsync_directory(self.path)
        return digest

    def _put_again(self, name: str, path: str, trust_checksum: bool = True) -> str:
        """PostgreSQL retries after a crash: the same content is success, other content a Conflict."""
        offered = file_sha256(path)
        stored = self._checksum_if_any(name) if trust_checksum else None
        if stored is None:  # none written yet (a crash between the two files), or maybe not its own
            stored = self._copy(name, None)
            self._write_checksum(name, stored)
            fsync_directory(self.path)
        return same_content(name, stored, offered, self.describe())

    def _write_checksum(self, name: str, digest: str) -> None:
        path = self._file(name) + CHECKSUM_SUFFIX
        temporary = temporary_name(path)
        fd = os.open(temporary, WRITE_FLAGS, FILE_MODE)
        try:
            os.write(fd, checksum_text(digest, name).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)

    # -- reading --------------------------------------------------------------------------------

    def get(self, name: str, destination: str) -> str:
        expected = self._expected(name)
        return write_verified(name, destination, lambda fd: verified(name, expected, self._copy(name, fd)))

    def _expected(self, name: str) -> str:
        """The stored checksum; Missing when the file itself is not there."""
        if not os.path.lexists(self._file(name)):
            raise Missing("%s is not in %s" % (name, self.describe()))
        return self._stored_checksum(name)

    def read(self, name: str) -> bytes:
        expected = self._expected(name)
        try:
            with open(self._file(name), "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise StoreError("cannot read %s from %s: %s" % (name, self.describe(), exc.strerror)) from None
        verified(name, expected, hashlib.sha256(data).hexdigest())
        return data

    def check(self, name: str) -> str:
        expected = self._expected(name)
        return verified(name, expected, self._copy(name, None))

    def list(self, first: str | None = None) -> list[str]:
        try:
            return after(os.listdir(self.path), first)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError("cannot list %s: %s" % (self.describe(), exc.strerror)) from None

    def delete(self, names: list[str]) -> None:
        for name in names:
            for path in (self._file(name), self._file(name) + CHECKSUM_SUFFIX):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise StoreError("cannot delete %s from %s: %s" % (name, self.describe(), exc.strerror)) from None
        if names and os.path.isdir(self.path):
            fsync_directory(self.path)

    def modified(self, name: str) -> float:
        try:
            return os.stat(self._file(name)).st_mtime
        except FileNotFoundError:
            raise Missing("%s is not in %s" % (name, self.describe())) from None
