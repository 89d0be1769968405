# -*- coding: utf-8 -*-
# Private to restorable.backup: what every WAL store does (local directory, SFTP, S3).
"""A WAL store keeps archived WAL files of one dataset, each with its SHA-256 beside it.

``put(name, path)`` stores a file under a WAL name and returns its checksum. It is idempotent
for PostgreSQL's retries: a file already stored with the same content is success, with other
content :class:`Conflict` (never overwritten). A stored file becomes visible whole or not at
all (temporary name, then a rename that never replaces; for S3 one PUT). ``get`` writes a file
to a destination after verifying its checksum, ``read`` returns a small one, ``check`` re-reads
one and compares, ``list`` names the WAL files sorted (after a name), ``delete`` removes files
with their checksums, ``modified`` is when a file was stored (seconds since the epoch).

The checksum of ``NAME`` is ``NAME.sha256`` in the format of ``sha256sum`` (the local and SFTP
stores) or the object's ``x-amz-meta-sha256`` (S3, written by the same PUT).

SHA-256 because it is the fastest strong hash Python has on current CPUs (SHA extensions):
about 1.3 GB/s here, against 0.5 GB/s for BLAKE2b.
"""
from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Callable

from .names import is_wal_name

CHECKSUM_SUFFIX = ".sha256"
CHUNK = 1 << 20
FILE_MODE = 0o640
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
STORE_TYPES = ("local", "sftp", "s3")
# (key, type, required) of each store type's settings, as the archiver configuration and the
# job's options.wal_store hold them. Secrets are never here: files named by path hold them.
STORE_FIELDS: dict[str, tuple] = {
    "local": (("path", str, True),),
    "sftp": (("host", str, True), ("port", int, False), ("user", str, True), ("path", str, True),
             ("identity_file", str, True), ("known_hosts_file", str, True)),
    "s3": (("endpoint", str, True), ("bucket", str, True), ("prefix", str, False), ("region", str, True),
           ("env_file", str, True)),
}


class StoreError(Exception):
    """A store operation failed; the message says which and why (never a secret)."""


class Missing(StoreError):
    """The named file is not in the store."""


class ChecksumMismatch(StoreError):
    """A stored file's content does not match its checksum."""


class Conflict(StoreError):
    """A file of that name is stored already, with other content."""


def parse_store(data: object, where: str) -> dict:
    """A store's settings checked field by field; ValueError names the field."""
    if not isinstance(data, dict):
        raise ValueError("%s: expected an object" % where)
    kind = data.get("type")
    if kind not in STORE_FIELDS:
        raise ValueError("%s.type: expected one of %s, got %r" % (where, ", ".join(STORE_TYPES), kind))
    settings = {"type": kind}
    for key, kind_of, required in STORE_FIELDS[kind]:
        value = data.get(key)
        if value is None:
            if required:
                raise ValueError("%s.%s is required for a %s store" % (where, key, kind))
            continue
        if not isinstance(value, kind_of) or isinstance(value, bool):
            raise ValueError("%s.%s: expected %s" % (where, key, "an integer" if kind_of is int else "a string"))
        settings[key] = value
    unknown = sorted(set(data) - {key for key, _kind, _required in STORE_FIELDS[kind]} - {"type"})
    if unknown:
        raise ValueError("%s: unknown option %s" % (where, ", ".join(unknown)))
    return settings


def check_name(name: str) -> str:
    if not is_wal_name(name):
        raise StoreError("%r is not a WAL file name" % name)
    return name


def checksum_text(digest: str, name: str) -> str:
    """The checksum file of name, as sha256sum writes it (sha256sum -c verifies a store by hand)."""
    return "%s  %s\n" % (digest, name)


def parse_checksum(text: str, name: str) -> str:
    digest = text.split(" ", 1)[0].strip().lower()
    if len(digest) != 64 or text.split()[-1:] != [name]:
        raise StoreError("the checksum file of %s is damaged" % name)
    return digest


def copy_hashing(source: int, target: int | None) -> str:
    """Copy between descriptors (or only read, target None), hashing in the same read pass."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        count = os.readv(source, [buffer])
        if not count:
            return digest.hexdigest()
        digest.update(view[:count])
        if target is not None:
            write_all(target, view[:count])


def write_all(fd: int, data: memoryview) -> None:
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])


def file_sha256(path: str) -> str:
    fd = os.open(path, os.O_RDONLY)
    try:
        return copy_hashing(fd, None)
    finally:
        os.close(fd)


def temporary_name(path: str) -> str:
    """A hidden name beside path, unique to this process (listings skip it: not a WAL name)."""
    directory, name = os.path.split(path)
    return os.path.join(directory, ".%s.%d.tmp" % (name, os.getpid()))


def write_verified(name: str, destination: str, copy: Callable[[int], str]) -> str:
    """destination replaced whole by what copy(descriptor) writes, which raises when the checksum
    does not match: a damaged copy never takes the destination's name. The checksum."""
    temporary = temporary_name(destination)
    try:
        fd = os.open(temporary, WRITE_FLAGS, 0o600)
        try:
            digest = copy(fd)
        finally:
            os.close(fd)
        os.replace(temporary, destination)
    except OSError as exc:
        raise StoreError("cannot write %s to %s: %s" % (name, destination, exc.strerror or exc)) from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    return digest


def verified(name: str, expected: str, actual: str) -> str:
    if expected != actual:
        raise ChecksumMismatch("%s does not match its checksum (stored sha256 %s, content sha256 %s)" % (
            name, expected[:16], actual[:16]))
    return actual


def same_content(name: str, stored: str, offered: str, where: str) -> str:
    """The put of a name that is stored already: success when the content is the same."""
    if stored != offered:
        raise Conflict("%s is archived in %s already with other content (sha256 %s, this file %s): "
                       "refusing to replace it" % (name, where, stored[:16], offered[:16]))
    return stored


def after(names: list[str], first: str | None) -> list[str]:
    """WAL names sorted, those after first only."""
    return sorted(name for name in names if is_wal_name(name) and (first is None or name > first))


class Store(abc.ABC):
    """One dataset's WAL files in one place (see the module docstring)."""

    kind = ""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the store is, for messages (never a secret)."""

    @abc.abstractmethod
    def put(self, name: str, path: str) -> str:
        """Store the file at path as name; its checksum. Conflict when name holds other content."""

    @abc.abstractmethod
    def get(self, name: str, destination: str) -> str:
        """Write name to destination (replaced whole) once its checksum matches; the checksum."""

    @abc.abstractmethod
    def read(self, name: str) -> bytes:
        """The verified content of a small file (a timeline history, a backup history file)."""

    @abc.abstractmethod
    def check(self, name: str) -> str:
        """Re-read name and compare with its checksum; the checksum, else ChecksumMismatch."""

    @abc.abstractmethod
    def list(self, first: str | None = None) -> list[str]:
        """The stored WAL names, sorted; only those after first when given."""

    @abc.abstractmethod
    def delete(self, names: list[str]) -> None:
        """Remove the files (and their checksums); absent ones are no error."""

    @abc.abstractmethod
    def modified(self, name: str) -> float:
        """When name was stored, in seconds since the epoch."""
