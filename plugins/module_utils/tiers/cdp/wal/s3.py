# -*- coding: utf-8 -*-
# Private to restorable.backup: the WAL store in an S3 bucket, through a small SigV4 client of
# the standard library (hosts have no boto3). Each WAL file is one object written by one PUT
# that also carries its SHA-256 (x-amz-meta-sha256; the same value signs the payload, so S3
# itself refuses a body damaged on the way). http.client and friends are imported on first use:
# a local store's archiver never pays for them.
# pylint: disable=import-outside-toplevel
from __future__ import annotations

import hashlib
import os
import time

from .store import (CHUNK, Missing, Store, StoreError, after, check_name, file_sha256, same_content, verified, write_all,
                    write_verified)

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CHECKSUM_HEADER = "x-amz-meta-sha256"
TIMEOUT = 60.0
ATTEMPTS = 3
PAGE = 1000  # keys per listing request (S3's own maximum)  # a dropped connection or a 5xx is tried again, after 0.5 s then 1 s
UNRESERVED = "-_.~"
S3_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _quote(text: str, safe: str = UNRESERVED) -> str:
    from urllib.parse import quote
    return quote(text, safe=safe)


def canonical_query(query: dict[str, str]) -> str:
    return "&".join("%s=%s" % (_quote(k), _quote(v)) for k, v in sorted(query.items()))


def _hmac(key: bytes, text: str) -> bytes:
    import hmac
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    return key


def sign(method: str, path: str, query: dict[str, str], headers: dict[str, str], payload_hash: str,
         credentials: dict[str, str], region: str, when: time.struct_time) -> dict[str, str]:
    """headers (lower-case names, host included) plus x-amz-date, the payload hash and Authorization."""
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", when)
    signed = dict(headers, **{"x-amz-date": amz_date, "x-amz-content-sha256": payload_hash})
    if credentials.get("AWS_SESSION_TOKEN"):
        signed["x-amz-security-token"] = credentials["AWS_SESSION_TOKEN"]
    names = sorted(signed)
    canonical = "\n".join([
        method, _quote(path, "/" + UNRESERVED), canonical_query(query),
        "".join("%s:%s\n" % (name, " ".join(str(signed[name]).split())) for name in names),
        ";".join(names), payload_hash])
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], region)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    signature = _hmac(signing_key(credentials["AWS_SECRET_ACCESS_KEY"], amz_date[:8], region), to_sign).hex()
    signed["authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        credentials["AWS_ACCESS_KEY_ID"], scope, ";".join(names), signature)
    return signed


def error_code(body: bytes) -> str:
    """`Code: Message` of an S3 error document, or its start."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body[:200].decode("utf-8", "replace").strip()
    code = root.findtext("Code") or root.findtext(S3_XMLNS + "Code") or ""
    message = root.findtext("Message") or root.findtext(S3_XMLNS + "Message") or ""
    return ("%s: %s" % (code, message)).strip(": ")


def parse_listing(body: bytes) -> tuple[list[str], str | None]:
    """(keys, continuation token or None) of one ListObjectsV2 page."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(body)
    namespace = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    keys = [item.findtext(namespace + "Key") or "" for item in root.iter(namespace + "Contents")]
    truncated = (root.findtext(namespace + "IsTruncated") or "").lower() == "true"
    return keys, (root.findtext(namespace + "NextContinuationToken") if truncated else None)


class Response:
    """Status, headers (lower-case names) and, unless streamed, the body of one S3 answer."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, stream: object = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream


class S3Store(Store):
    """Objects <prefix>/<WAL name> in one bucket, path-style addressing (virtual-hosted on AWS)."""

    kind = "s3"

    def __init__(self, endpoint: str, bucket: str, prefix: str, region: str, env_file: str,
                 timeout: float = TIMEOUT) -> None:
        from urllib.parse import urlsplit
        parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError("S3 endpoint %r is not an http(s) URL" % endpoint)
        self.endpoint = endpoint
        self.secure = parts.scheme == "https"
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.region = region
        self.env_file = env_file
        self.timeout = timeout
        self.virtual_host = parts.hostname.endswith(".amazonaws.com")
        self.host = ("%s.%s" % (bucket, parts.netloc)) if self.virtual_host else parts.netloc
        self.page = PAGE
        self._credentials: dict[str, str] | None = None
        self._connection = None

    def describe(self) -> str:
        return "S3 store %s bucket %s prefix %s" % (self.endpoint, self.bucket, self.prefix or "/")

    def key(self, name: str) -> str:
        return "%s/%s" % (self.prefix, check_name(name)) if self.prefix else check_name(name)

    def path(self, key: str = "") -> str:
        return "/" + key if self.virtual_host else "/%s/%s" % (self.bucket, key)

    # -- plumbing -------------------------------------------------------------------------------

    def credentials(self) -> dict[str, str]:
        if self._credentials is None:
            from ....common.process import SecretFileError, read_env_file
            try:
                values = read_env_file(self.env_file, "S3 environment file")
            except SecretFileError as exc:
                raise StoreError(str(exc)) from None
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                if not values.get(name):
                    raise StoreError("S3 environment file %s sets no %s" % (self.env_file, name))
            self._credentials = values
        return self._credentials

    def _connect(self) -> object:
        import http.client
        if self._connection is None:
            kind = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
            self._connection = kind(self.host, timeout=self.timeout, blocksize=CHUNK)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, key: str = "", query: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, body_path: str | None = None,
                payload_hash: str = EMPTY_SHA256, stream: bool = False) -> Response:
        """One signed request, tried again after a dropped connection or a server error."""
        import http.client
        query = dict(query or {})
        path = self.path(key)
        url = _quote(path, "/" + UNRESERVED) + ("?" + canonical_query(query) if query else "")
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.5 * attempt)
            signed = sign(method, path, query, dict(headers or {}, host=self.host), payload_hash, self.credentials(),
                          self.region, time.gmtime())
            try:
                response = self._send(method, url, signed, body_path)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                problem = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
                continue
            if response.status >= 500:
                problem = "HTTP %d %s" % (response.status, error_code(response.read()))
                self.close()
                continue
            names = {k.lower(): v for k, v in response.getheaders()}
            if stream and response.status == 200:
                return Response(response.status, names, b"", response)
            return Response(response.status, names, response.read())
        raise StoreError("%s is unreachable (%s %s): %s" % (self.describe(), method, key or "listing", problem))

    def _send(self, method: str, url: str, headers: dict[str, str], body_path: str | None) -> object:
        connection = self._connect()
        if body_path is None:
            connection.request(method, url, headers=headers)
            return connection.getresponse()
        with open(body_path, "rb") as body:
            headers = dict(headers, **{"content-length": str(os.fstat(body.fileno()).st_size)})
            connection.request(method, url, body=body, headers=headers)
            return connection.getresponse()

    def failed(self, what: str, name: str, response: Response) -> StoreError:
        detail = error_code(response.body) if response.body else ""
        if response.status == 404 and what in ("GET", "HEAD"):
            return Missing("%s is not in %s" % (name, self.describe()))
        if response.status == 403:
            return StoreError("%s: access denied to %s (%s)" % (self.describe(), name, detail or "HTTP 403"))
        return StoreError("%s: %s %s failed: HTTP %d %s" % (self.describe(), what, name, response.status, detail))

    # -- the store ------------------------------------------------------------------------------

    def stored_checksum(self, name: str) -> str | None:
        response = self.request("HEAD", self.key(name))
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
        response = self.request("PUT", self.key(name), headers={
            "content-type": "application/octet-stream", CHECKSUM_HEADER: digest, "if-none-match": "*"},
            body_path=path, payload_hash=digest)
        if response.status == 412:
            return same_content(name, self.stored_checksum(name) or "", digest, self.describe())
        if response.status != 200:
            raise self.failed("PUT", name, response)
        return digest

    def _open(self, name: str) -> Response:
        response = self.request("GET", self.key(name), stream=True)
        if response.status != 200:
            raise self.failed("GET", name, response)
        return response

    def _copy(self, name: str, target: int | None) -> str:
        """Read name, into target when given; compared with its checksum."""
        response = self._open(name)
        import http.client
        expected = self._checksum_of(name, response)
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        try:
            while True:
                count = response.stream.readinto(buffer)
                if not count:
                    break
                digest.update(view[:count])
                if target is not None:
                    write_all(target, view[:count])
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise StoreError("copying %s from %s: %s" % (name, self.describe(), exc or type(exc).__name__)) from None
        return verified(name, expected, digest.hexdigest())

    def get(self, name: str, destination: str) -> str:
        return write_verified(name, destination, lambda fd: self._copy(name, fd))

    def read(self, name: str) -> bytes:
        response = self.request("GET", self.key(name))
        if response.status != 200:
            raise self.failed("GET", name, response)
        verified(name, self._checksum_of(name, response), hashlib.sha256(response.body).hexdigest())
        return response.body

    def check(self, name: str) -> str:
        return self._copy(name, None)

    def list(self, first: str | None = None) -> list[str]:
        prefix = self.prefix + "/" if self.prefix else ""
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(self.page)}
        if first:
            query["start-after"] = prefix + first
        names: list[str] = []
        while True:
            response = self.request("GET", "", query=query)
            if response.status != 200:
                raise self.failed("LIST", prefix or "/", response)
            keys, token = parse_listing(response.body)
            names += [key[len(prefix):] for key in keys if key.startswith(prefix) and "/" not in key[len(prefix):]]
            if not token:
                return after(names, first)
            query["continuation-token"] = token

    def delete(self, names: list[str]) -> None:
        for name in names:
            response = self.request("DELETE", self.key(name))
            if response.status not in (200, 204, 404):
                raise self.failed("DELETE", name, response)

    def modified(self, name: str) -> float:
        from email.utils import parsedate_to_datetime
        response = self.request("HEAD", self.key(name))
        if response.status != 200:
            raise self.failed("HEAD", name, response)
        try:
            return parsedate_to_datetime(response.headers.get("last-modified", "")).timestamp()
        except (TypeError, ValueError):
            raise StoreError("%s in %s has no Last-Modified time" % (name, self.describe())) from None
