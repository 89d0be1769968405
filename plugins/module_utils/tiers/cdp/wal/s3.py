# -*- coding: utf-8 -*-
# Private to restorable.backup: the WAL store in an S3 bucket, through the standard library's
# S3 client (storage/s3api.py; hosts have no boto3). Each WAL file is one object written by one
# PUT that also carries its SHA-256 (x-amz-meta-sha256; the same value signs the payload, so S3
# itself refuses a body damaged on the way).
from __future__ import annotations

import hashlib
from typing import Any

from ....storage.s3api import Response, S3Client, S3Error, error_code
from .store import (CHUNK, Missing, Store, StoreError, after, check_name, file_sha256, same_content, verified, write_all,
                    write_verified)

CHECKSUM_HEADER = "x-amz-meta-sha256"


class S3Store(Store):
    """Objects <prefix>/<WAL name> in one bucket."""

    kind = "s3"

    def __init__(self, endpoint: str, bucket: str, prefix: str, region: str, env_file: str) -> None:
        try:
            self.client = S3Client(endpoint, bucket, region, env_file)
        except S3Error as exc:
            raise StoreError(str(exc)) from None
        self.prefix = prefix.strip("/")

    def describe(self) -> str:
        return "S3 store %s bucket %s prefix %s" % (self.client.endpoint, self.client.bucket, self.prefix or "/")

    def key(self, name: str) -> str:
        return "%s/%s" % (self.prefix, check_name(name)) if self.prefix else check_name(name)

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, name: str, **options: Any) -> Response:
        """One signed request about a WAL file; any answer below 500 is returned."""
        try:
            return self.client.request(method, self.key(name), **options)
        except S3Error as exc:
            raise StoreError(str(exc)) from None

    def failed(self, what: str, name: str, response: Response) -> StoreError:
        detail = error_code(response.body) if response.body else ""
        if response.status == 404 and what in ("GET", "HEAD"):
            return Missing("%s is not in %s" % (name, self.describe()))
        if response.status == 403:
            return StoreError("%s: access denied to %s (%s)" % (self.describe(), name, detail or "HTTP 403"))
        return StoreError("%s: %s %s failed: HTTP %d %s" % (self.describe(), what, name, response.status, detail))

    # -- the store ------------------------------------------------------------------------------

    def stored_checksum(self, name: str) -> str | None:
        response = self.request("HEAD", name)
        if response.status == 404:
            return None
        if response.status != 200:
            raise self.failed("HEAD", name, response)
        return self._checksum_of(name, response)

    def _checksum_of(self, name: str, response: Response) -> str:
        digest = response.headers.get(CHECKSUM_HEADER, "").strip().lower()
        if len(digest) != 64:
            raise StoreError("%s in %s carries no %s" % (name, self.describe(), CHECKSUM_HEADER))
        return digest

    def put(self, name: str, path: str) -> str:
        digest = file_sha256(path)
        stored = self.stored_checksum(name)
        if stored is not None:
            return same_content(name, stored, digest, self.describe())
        # If-None-Match: servers that know it refuse to replace an object stored meanwhile.
        response = self.request("PUT", name, headers={
            "content-type": "application/octet-stream", CHECKSUM_HEADER: digest, "if-none-match": "*"},
            body=path, payload_hash=digest)
        if response.status == 412:
            return same_content(name, self.stored_checksum(name) or "", digest, self.describe())
        if response.status != 200:
            raise self.failed("PUT", name, response)
        return digest

    def _copy(self, name: str, target: int | None) -> str:
        """Read name, into target when given; compared with its checksum."""
        response = self.request("GET", name, stream=True, error=StoreError)
        if response.status != 200:
            raise self.failed("GET", name, response)
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with response.stream as body:
            expected = self._checksum_of(name, response)
            while True:
                count = body.readinto(buffer)
                if not count:
                    break
                digest.update(view[:count])
                if target is not None:
                    write_all(target, view[:count])
        return verified(name, expected, digest.hexdigest())

    def get(self, name: str, destination: str) -> str:
        return write_verified(name, destination, lambda fd: self._copy(name, fd))

    def read(self, name: str) -> bytes:
        response = self.request("GET", name)
        if response.status != 200:
            raise self.failed("GET", name, response)
        verified(name, self._checksum_of(name, response), hashlib.sha256(response.body).hexdigest())
        return response.body

    def check(self, name: str) -> str:
        return self._copy(name, None)

    def list(self, first: str | None = None) -> list[str]:
        prefix = self.prefix + "/" if self.prefix else ""
        try:
            entries = self.client.list(prefix, start_after=prefix + first if first else None)
        except S3Error as exc:
            raise StoreError(str(exc)) from None
        keys = [entry["key"][len(prefix):] for entry in entries if entry["key"].startswith(prefix)]
        return after([key for key in keys if "/" not in key], first)

    def delete(self, names: list[str]) -> None:
        for name in names:
            response = self.request("DELETE", name)
            if response.status not in (200, 204, 404):
                raise self.failed("DELETE", name, response)

    def modified(self, name: str) -> float:
        from email.utils import parsedate_to_datetime  # pylint: disable=import-outside-toplevel
        response = self.request("HEAD", name)
        if response.status != 200:
            raise self.failed("HEAD", name, response)
        try:
            return parsedate_to_datetime(response.headers.get("last-modified", "")).timestamp()
        except (TypeError, ValueError):
            raise StoreError("%s in %s has no Last-Modified time" % (name, self.describe())) from None
