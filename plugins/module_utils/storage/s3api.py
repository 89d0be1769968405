# -*- coding: utf-8 -*-
# Private to restorable.backup: a small S3 client of the standard library (hosts have no boto3),
# shared by the WAL store and the tape library's s3 driver. SigV4 signing, path-style addressing
# (virtual-hosted on AWS), one kept-alive connection for small requests and a connection of its
# own for each streamed GET (a reader may stay open while other requests run). http.client and
# friends are imported on first use: a host that never talks to S3 never pays for them.
# pylint: disable=import-outside-toplevel
from __future__ import annotations

import base64
import functools
import hashlib
import io
import os
import time
from typing import Any, BinaryIO, Callable, Union

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
TIMEOUT = 60.0
ATTEMPTS = 3  # a dropped connection or a 5xx is tried again, after 0.5 s then 1 s
PAGE = 1000  # keys per listing request (S3's own maximum)
BLOCK = 1 << 20
UNRESERVED = "-_.~"
S3_XMLNS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
ISO_SECONDS = "%Y-%m-%dT%H:%M:%S.000Z"

Body = Union[None, bytes, str, BinaryIO]  # nothing, the bytes, a file's path, a seekable open file


class S3Error(Exception):
    """An S3 request failed: unreachable (status 0) or refused (status and S3's error code)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _quote(text: str, safe: str = UNRESERVED) -> str:
    from urllib.parse import quote
    return quote(text, safe=safe)


def canonical_query(query: dict[str, str]) -> str:
    return "&".join("%s=%s" % (_quote(k), _quote(v)) for k, v in sorted(query.items()))


def _hmac(key: bytes, text: str) -> bytes:
    import hmac
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=8)
def signing_key(secret: str, date: str, region: str) -> bytes:
    """Derived once per day and region (four HMACs), not for every request."""
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


def _xml(body: bytes) -> tuple[Any, str]:
    """(root element, its namespace in braces or "")."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error("the answer is not an XML document: %r" % body[:80]) from None
    return root, (root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else "")


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


def parse_listing(body: bytes) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(entries, query of the next page or {}) of one ListObjectsV2 or ListObjectVersions page.

    Entries: {"key", "size", "storage_class", "version_id" (versions only), "latest" (versions only)};
    delete markers are left out."""
    root, ns = _xml(body)
    entries = []
    for item in list(root.iter(ns + "Contents")) + list(root.iter(ns + "Version")):
        entry = {"key": item.findtext(ns + "Key") or "", "size": int(item.findtext(ns + "Size") or 0),
                 "storage_class": item.findtext(ns + "StorageClass") or "STANDARD"}
        if item.tag == ns + "Version":
            entry.update(version_id=item.findtext(ns + "VersionId") or "",
                         latest=(item.findtext(ns + "IsLatest") or "").lower() == "true")
        entries.append(entry)
    if (root.findtext(ns + "IsTruncated") or "").lower() != "true":
        return entries, {}
    if root.find(ns + "NextContinuationToken") is not None:
        return entries, {"continuation-token": root.findtext(ns + "NextContinuationToken") or ""}
    return entries, {"key-marker": root.findtext(ns + "NextKeyMarker") or "",
                     "version-id-marker": root.findtext(ns + "NextVersionIdMarker") or ""}


def retention_document(mode: str, until: str) -> bytes:
    return ('<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>%s</Mode>'
            "<RetainUntilDate>%s</RetainUntilDate></Retention>" % (mode, until)).encode("utf-8")


def restore_document(days: int, tier: str) -> bytes:
    return ('<RestoreRequest xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Days>%d</Days>'
            "<GlacierJobParameters><Tier>%s</Tier></GlacierJobParameters></RestoreRequest>" % (days, tier)).encode()


def content_md5(body: bytes) -> str:
    """Content-MD5 (base64 of the MD5): S3 wants it for Object Lock configuration and retention."""
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")  # nosec: S3's integrity header


def _body_size(body: Body) -> int:
    if isinstance(body, bytes):
        return len(body)
    if isinstance(body, str):
        return os.stat(body).st_size
    return os.fstat(body.fileno()).st_size


class Stream(io.RawIOBase):
    """The body of a streamed answer; closing it closes its connection. A connection that breaks
    off while reading raises `error` (S3Error unless the caller wants its own exception)."""

    def __init__(self, response: Any, connection: Any, what: str, error: Callable[[str], Exception]) -> None:
        super().__init__()
        self._response = response
        self._connection = connection
        self._what = what
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        import http.client
        try:
            return self._response.readinto(buffer)
        except (OSError, http.client.HTTPException) as exc:
            raise self._error("reading %s broke off: %s" % (self._what, exc or type(exc).__name__)) from None

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._connection.close()
        super().close()


class Response:
    """Status, headers (lower-case names) and, unless streamed, the body of one S3 answer."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, stream: Any = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream


class S3Client:
    """Requests to one bucket of one endpoint, signed with the keys of an environment file."""

    def __init__(self, endpoint: str, bucket: str, region: str, env_file: str, timeout: float = TIMEOUT) -> None:
        from urllib.parse import urlsplit
        parts = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise S3Error("S3 endpoint %r is not an http(s) URL" % endpoint)
        self.endpoint = endpoint
        self.secure = parts.scheme == "https"
        self.bucket = bucket
        self.region = region
        self.env_file = env_file
        self.timeout = timeout
        self.virtual_host = parts.hostname.endswith(".amazonaws.com")
        self.host = ("%s.%s" % (bucket, parts.netloc)) if self.virtual_host else parts.netloc
        self.page = PAGE
        self._credentials: dict[str, str] | None = None
        self._connection: Any = None

    def describe(self) -> str:
        return "S3 %s bucket %s" % (self.endpoint, self.bucket)

    def path(self, key: str = "") -> str:
        return "/" + key if self.virtual_host else "/%s/%s" % (self.bucket, key)

    def credentials(self) -> dict[str, str]:
        if self._credentials is None:
            from ..common.process import SecretFileError, read_env_file
            try:
                values = read_env_file(self.env_file, "S3 environment file")
            except SecretFileError as exc:
                raise S3Error(str(exc)) from None
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                if not values.get(name):
                    raise S3Error("S3 environment file %s sets no %s" % (self.env_file, name))
            self._credentials = values
        return self._credentials

    # -- plumbing -------------------------------------------------------------------------------

    def _new_connection(self) -> Any:
        import http.client
        kind = http.client.HTTPSConnection if self.secure else http.client.HTTPConnection
        return kind(self.host, timeout=self.timeout, blocksize=BLOCK)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, key: str = "", query: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, body: Body = None,
                payload_hash: str = EMPTY_SHA256, stream: bool = False,
                error: Callable[[str], Exception] = S3Error) -> Response:
        """One signed request, tried again after a dropped connection or a server error.

        Any answer below 500 is returned; `stream`: a 200's body is left to read from .stream (on a
        connection of its own, closed with it; `error` is raised when it breaks off)."""
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
            connection = self._new_connection() if stream else self._shared()
            try:
                response = self._send(connection, method, url, signed, body)
            except (OSError, http.client.HTTPException) as exc:
                self._drop(connection)
                problem = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
                continue
            if response.status >= 500:
                problem = "HTTP %d %s" % (response.status, error_code(response.read()))
                self._drop(connection)
                continue
            names = {k.lower(): v for k, v in response.getheaders()}
            if stream and response.status in (200, 206):
                what = "%s from %s" % (key, self.describe())
                return Response(response.status, names, b"", Stream(response, connection, what, error))
            answer = Response(response.status, names, response.read())
            if stream:
                connection.close()
            return answer
        raise S3Error("%s is unreachable (%s %s): %s" % (self.describe(), method, key or "bucket", problem))

    def _shared(self) -> Any:
        if self._connection is None:
            self._connection = self._new_connection()
        return self._connection

    def _drop(self, connection: Any) -> None:
        connection.close()
        if connection is self._connection:
            self._connection = None

    @staticmethod
    def _send(connection: Any, method: str, url: str, headers: dict[str, str], body: Body) -> Any:
        if body is None:
            connection.request(method, url, headers=headers)
            return connection.getresponse()
        headers = dict(headers, **{"content-length": str(_body_size(body))})
        if isinstance(body, str):
            with open(body, "rb") as handle:
                connection.request(method, url, body=handle, headers=headers)
                return connection.getresponse()
        if not isinstance(body, bytes):
            body.seek(0)  # a retry sends the file again from its start
        connection.request(method, url, body=body, headers=headers)
        return connection.getresponse()

    def refused(self, what: str, key: str, response: Response) -> S3Error:
        """The error of an answer that is not the expected one, with S3's code (AccessDenied, ...)."""
        detail = error_code(response.body) if response.body else ""
        code = detail.split(":", 1)[0] if detail else ""
        message = "%s: %s %s refused: HTTP %d %s" % (self.describe(), what, key or "/", response.status, detail or "")
        return S3Error(message, response.status, code)

    def _expect(self, what: str, key: str, response: Response, statuses: tuple[int, ...] = (200,)) -> Response:
        if response.status not in statuses:
            if response.stream is not None:
                response.stream.close()
            raise self.refused(what, key, response)
        return response

    @staticmethod
    def _version(query: dict[str, str], version: str | None) -> dict[str, str]:
        return dict(query, versionId=version) if version else query

    # -- objects --------------------------------------------------------------------------------

    def put(self, key: str, body: Body, headers: dict[str, str] | None = None,
            payload_hash: str = UNSIGNED_PAYLOAD) -> Response:
        """PUT an object from bytes, a file's path or a seekable file; its VersionId is in the headers."""
        headers = dict({"content-type": "application/octet-stream"}, **(headers or {}))
        return self.request("PUT", key, headers=headers, body=body, payload_hash=payload_hash)

    def get(self, key: str, version: str | None = None, offset: int = 0,
            error: Callable[[str], Exception] = S3Error) -> Response:
        """A streamed GET (Range from offset); close .stream when done. S3Error unless 200/206."""
        headers = {"range": "bytes=%d-" % offset} if offset else {}
        response = self.request("GET", key, query=self._version({}, version), headers=headers, stream=True,
                                error=error)
        return self._expect("GET", key, response, (200, 206))

    def head(self, key: str, version: str | None = None) -> Response:
        """HEAD of an object (404 returned, not raised)."""
        return self._expect("HEAD", key, self.request("HEAD", key, query=self._version({}, version)), (200, 404))

    def list(self, prefix: str, versions: bool = False, start_after: str | None = None) -> list[dict[str, Any]]:
        """Every object (or every version) below prefix; see parse_listing."""
        query = {"prefix": prefix, "max-keys": str(self.page)}
        query.update({"versions": ""} if versions else {"list-type": "2"})
        if start_after:
            query["start-after"] = start_after
        entries: list[dict[str, Any]] = []
        while True:
            response = self._expect("LIST", prefix, self.request("GET", "", query=query))
            page, following = parse_listing(response.body)
            entries += page
            if not following:
                return entries
            query.update(following)

    def delete(self, key: str, version: str | None = None) -> Response:
        """DELETE an object or one version of it (a missing one is no error)."""
        response = self.request("DELETE", key, query=self._version({}, version))
        return self._expect("DELETE", key, response, (200, 204, 404))

    def copy(self, key: str, source_key: str, source_version: str | None = None, storage_class: str | None = None,
             headers: dict[str, str] | None = None, metadata_directive: str = "COPY") -> Response:
        """Server-side copy (same bucket); the new VersionId is in the headers."""
        source = "/%s/%s" % (self.bucket, _quote(source_key, "/" + UNRESERVED))
        if source_version:
            source += "?versionId=" + source_version
        wanted = dict(headers or {}, **{"x-amz-copy-source": source, "x-amz-metadata-directive": metadata_directive})
        if storage_class:
            wanted["x-amz-storage-class"] = storage_class
        response = self._expect("COPY", key, self.request("PUT", key, headers=wanted))
        # A copy can fail after its 200 started: the error is then in the body (S3's documented quirk).
        if b"<Error>" in response.body[:512]:
            raise self.refused("COPY", key, Response(500, response.headers, response.body))
        return response

    def restore(self, key: str, version: str | None = None, days: int = 1, tier: str = "Standard") -> Response:
        """POST ?restore: a temporary readable copy of an archived object (202 started, 200 done,
        409 RestoreAlreadyInProgress returned, not raised)."""
        document = restore_document(days, tier)
        response = self.request("POST", key, query=self._version({"restore": ""}, version),
                                headers={"content-md5": content_md5(document)}, body=document,
                                payload_hash=hashlib.sha256(document).hexdigest())
        return self._expect("RESTORE", key, response, (200, 202, 409))

    def put_retention(self, key: str, version: str | None, mode: str, until: str) -> Response:
        """Object Lock retention of a version (mode COMPLIANCE or GOVERNANCE, until: ISO 8601 UTC)."""
        document = retention_document(mode, until)
        response = self.request("PUT", key, query=self._version({"retention": ""}, version),
                                headers={"content-md5": content_md5(document)}, body=document,
                                payload_hash=hashlib.sha256(document).hexdigest())
        return self._expect("PUT retention", key, response)

    def versioning(self) -> str:
        """The bucket's versioning status: "Enabled", "Suspended" or "" (never enabled)."""
        root, ns = _xml(self._expect("GET versioning", "", self.request("GET", "", query={"versioning": ""})).body)
        return root.findtext(ns + "Status") or ""

    def object_lock_configuration(self) -> dict[str, str]:
        """{"enabled": "Enabled"|"", "mode", "days", "years"} of the bucket's Object Lock ({} if none)."""
        response = self.request("GET", "", query={"object-lock": ""})
        if response.status == 404 and "ObjectLockConfigurationNotFound" in error_code(response.body):
            return {}
        root, ns = _xml(self._expect("GET object-lock", "", response).body)
        return {"enabled": root.findtext(ns + "ObjectLockEnabled") or "",
                "mode": root.findtext(".//%sMode" % ns) or "", "days": root.findtext(".//%sDays" % ns) or "",
                "years": root.findtext(".//%sYears" % ns) or ""}
