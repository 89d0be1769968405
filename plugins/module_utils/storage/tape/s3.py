# -*- coding: utf-8 -*-
# Private to restorable.backup: the `s3` media driver (AWS Tape Gateway style). A cartridge is the
# object <prefix>/tapes/<BARCODE>. S3 objects cannot be appended, so a cartridge is written into a
# staging file in the library's state directory and uploaded, once, when its writer closes (the
# cartridge leaves the drive); the library never appends to it again (appendable = False). The
# VersionId of each upload is remembered and only that version is read: a later PUT to the same
# key, with the library's own keys, cannot change what a restore reads. WORM is Object Lock in
# COMPLIANCE mode on that version; the vault is the archive storage class.
"""Cartridges as S3 objects.

Where a cartridge is (slot, drive, ie) is the library's bookkeeping, kept in
``<state_dir>/s3-media.json``; whether it is in the vault is the storage class of its version as
the bucket reports it. Vaulting copies the version into the archive storage class (default
DEEP_ARCHIVE) and reads are refused until a recall restored it (RestoreObject) and copied it back
to STANDARD; each copy keeps the version's Object Lock. Objects of ``<prefix>/tapes/`` the state
file does not know (the state directory was lost) are adopted into free slots by ``list()``.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import os
from typing import Any, BinaryIO, Callable

from ...common.fileio import atomic_write_json, ensure_dir, read_json
from ..s3api import S3Client, S3Error
from .media import MediaStore, TapeError

STATE_FILE = "s3-media.json"
STAGING_DIR = "s3-staging"
STATE_FORMAT = 1
ONLINE_CLASS = "STANDARD"
LOCK_MODE = "COMPLIANCE"
RESTORE_DAYS = 1  # the restored copy only has to live until it was copied back to STANDARD
RESTORE_TIER = "Standard"
CHECKSUM_HEADER = "x-amz-meta-sha256"
REQUIRED = ("endpoint", "bucket", "region", "env_file")


class S3MediaStore(MediaStore):
    """The cartridges of one library as objects of one bucket."""

    kind = "s3"
    appendable = False

    def __init__(self, settings: dict[str, Any], state_dir: str, slots: int, vault_destination: str,
                 now: Callable[[], datetime.datetime]) -> None:
        missing = [name for name in REQUIRED if not settings.get(name)]
        if missing:
            raise TapeError("the s3 tape driver needs s3.%s in the library configuration" % ", s3.".join(missing))
        try:
            self.client = S3Client(settings["endpoint"], settings["bucket"], settings["region"], settings["env_file"])
        except S3Error as exc:
            raise TapeError(str(exc)) from None
        self.prefix = str(settings.get("prefix") or "").strip("/")
        self.archive_class = settings.get("archive_storage_class") or "DEEP_ARCHIVE"
        self.state_dir = state_dir
        self.slots = slots
        self.vault_destination = vault_destination
        self._now = now

    def describe(self) -> str:
        return "bucket %s at %s" % (self.client.bucket, self.client.endpoint)

    def key(self, barcode: str) -> str:
        return "%s/%s" % (self.tapes_prefix(), barcode)

    def tapes_prefix(self) -> str:
        return "%s/tapes" % self.prefix if self.prefix else "tapes"

    def staging_path(self, barcode: str) -> str:
        return os.path.join(self.state_dir, STAGING_DIR, barcode)

    # -- state ----------------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        document = read_json(os.path.join(self.state_dir, STATE_FILE)) or {}
        return document.get("cartridges", {})

    def _save(self, cartridges: dict[str, dict[str, Any]]) -> None:
        atomic_write_json(os.path.join(self.state_dir, STATE_FILE),
                          {"format": STATE_FORMAT, "cartridges": cartridges}, mode=0o640)

    def _entry(self, cartridges: dict[str, dict[str, Any]], barcode: str) -> dict[str, Any]:
        if barcode not in cartridges:
            raise TapeError("cartridge %s is not in the S3 library (%s)" % (barcode, self.describe()))
        return cartridges[barcode]

    def _update(self, barcode: str, **values: Any) -> None:
        cartridges = self._load()
        self._entry(cartridges, barcode).update(values)
        self._save(cartridges)

    def _s3(self, what: str, barcode: str, call: Callable[[], Any]) -> Any:
        """call() with S3's refusal turned into a TapeError naming the cartridge."""
        try:
            return call()
        except S3Error as exc:
            raise TapeError("cartridge %s: %s failed: %s" % (barcode, what, exc)) from None

    # -- the store ------------------------------------------------------------------------------

    def ensure(self, check_mode: bool = False) -> list[str]:
        changed = []
        for folder in (self.state_dir, os.path.join(self.state_dir, STAGING_DIR)):
            if not os.path.isdir(folder):
                changed.append("created %s" % folder)
                if not check_mode:
                    ensure_dir(folder, 0o750)
        # The driver reads the versions it uploaded: the bucket must keep versions (Object Lock implies it).
        lock = self._s3("reading the Object Lock configuration", "-", self.client.object_lock_configuration)
        if lock.get("enabled") != "Enabled" and self._s3("reading versioning", "-", self.client.versioning) != "Enabled":
            raise TapeError("%s has no versioning: the s3 tape driver reads the versions it uploaded (create the "
                            "bucket with Object Lock, which WORM pools need and which turns versioning on)"
                            % self.describe())
        return changed

    def list(self) -> dict[str, dict[str, Any]]:
        cartridges = self._load()
        versions = self._s3("listing", "-", lambda: self.client.list(self.tapes_prefix() + "/", versions=True))
        classes = {(entry["key"], entry["version_id"]): entry["storage_class"] for entry in versions}
        if self._adopt(cartridges, versions):
            self._save(cartridges)
        found = {}
        for barcode, entry in cartridges.items():
            archived = classes.get((self.key(barcode), entry.get("version")), ONLINE_CLASS) != ONLINE_CLASS
            found[barcode] = self._vault() if archived else dict(entry["location"])
        return found

    def _vault(self) -> dict[str, Any]:
        return {"kind": "vault", "vault": self.vault_destination}

    def _adopt(self, cartridges: dict[str, dict[str, Any]], versions: list[dict[str, Any]]) -> bool:
        """Objects no state knows (state_dir lost): their latest version, in a free slot or the vault."""
        start = len(self.tapes_prefix()) + 1
        unknown = sorted((entry for entry in versions if entry["latest"] and "/" not in entry["key"][start:]
                          and entry["key"][start:] not in cartridges), key=lambda entry: entry["key"])
        taken = {entry["location"].get("slot") for entry in cartridges.values() if entry["location"]["kind"] == "slot"}
        free = [slot for slot in range(1, self.slots + 1) if slot not in taken]
        for entry in unknown:
            barcode = entry["key"][start:]
            archived = entry["storage_class"] != ONLINE_CLASS
            if not archived and not free:
                raise TapeError("cartridge %s of %s has no free slot to be adopted into" % (barcode, self.describe()))
            head = self._s3("HEAD", barcode, lambda: self.client.head(entry["key"], entry["version_id"]))
            cartridges[barcode] = {
                "location": self._vault() if archived else {"kind": "slot", "slot": free.pop(0)},
                "version": entry["version_id"], "size": entry["size"], "etag": head.headers.get("etag", ""),
                "sha256": head.headers.get(CHECKSUM_HEADER),
                "until": head.headers.get("x-amz-object-lock-retain-until-date")}
        return bool(unknown)

    def create(self, barcode: str, location: dict[str, Any]) -> None:
        cartridges = self._load()
        if barcode in cartridges or self._s3("HEAD", barcode, lambda: self.client.head(self.key(barcode))).status == 200:
            raise TapeError("cartridge %s already exists in %s" % (barcode, self.describe()))
        cartridges[barcode] = {"location": dict(location), "version": None, "size": 0, "etag": "", "sha256": None,
                               "until": None}
        self._save(cartridges)

    def open_append(self, barcode: str) -> BinaryIO:
        entry = self._entry(self._load(), barcode)
        if entry.get("version"):
            raise TapeError("cartridge %s is closed: it was uploaded to %s and S3 objects cannot be appended"
                            % (barcode, self.describe()))
        ensure_dir(os.path.join(self.state_dir, STAGING_DIR), 0o750)
        # A staging file left by a writer that died never reached S3: nothing refers to its bytes.
        return _StagedWriter(self.staging_path(barcode), lambda digest, size: self._upload(barcode, digest, size))

    def _upload(self, barcode: str, digest: str, size: int) -> None:
        path = self.staging_path(barcode)
        # The payload's SHA-256 signs the request: S3 refuses a body damaged on the way.
        response = self._s3("upload", barcode, lambda: self.client.put(
            self.key(barcode), path, headers={CHECKSUM_HEADER: digest, "if-none-match": "*"}, payload_hash=digest))
        if response.status != 200:
            refusal = self.client.refused("PUT", self.key(barcode), response)
            raise TapeError("cartridge %s: upload refused: %s" % (barcode, refusal))
        version = response.headers.get("x-amz-version-id", "null")
        if version == "null":
            raise TapeError("bucket %s has no versioning: the s3 tape driver reads the version it uploaded "
                            "(create the bucket with Object Lock, which turns versioning on)" % self.client.bucket)
        until = self._entry(self._load(), barcode).get("until")
        self._update(barcode, version=version, size=size, sha256=digest, etag=response.headers.get("etag", ""))
        os.unlink(path)
        if until:
            self._retain(barcode, version, until)

    def open_read(self, barcode: str, offset: int = 0) -> BinaryIO:
        entry = self._entry(self._load(), barcode)
        if not entry.get("version"):
            # Not uploaded yet: still in the drive (staging) or empty.
            path = self.staging_path(barcode)
            handle = open(path, "rb") if os.path.exists(path) else io.BytesIO()  # pylint: disable=consider-using-with
            handle.seek(offset)
            return handle  # type: ignore[return-value]
        if offset >= entry["size"]:
            return io.BytesIO()
        try:
            response = self.client.get(self.key(barcode), entry["version"], offset,
                                       lambda problem: TapeError("cartridge %s: %s" % (barcode, problem)))
        except S3Error as exc:
            if exc.code == "InvalidObjectState":
                raise TapeError("cartridge %s is in the vault (S3 storage class %s): recall it first"
                                % (barcode, self.archive_class)) from None
            raise TapeError("cartridge %s: reading failed: %s" % (barcode, exc)) from None
        return response.stream  # type: ignore[return-value]

    def size(self, barcode: str) -> int:
        entry = self._entry(self._load(), barcode)
        if entry.get("version"):
            return int(entry["size"])
        path = self.staging_path(barcode)
        return os.path.getsize(path) if os.path.exists(path) else 0

    def move(self, barcode: str, location: dict[str, Any]) -> None:
        entry = self._entry(self._load(), barcode)
        version = entry.get("version")
        archived = bool(version) and self._storage_class(barcode, version) != ONLINE_CLASS
        if location.get("kind") == "vault" and not archived:
            if not version:
                raise TapeError("cartridge %s holds nothing uploaded: an empty cartridge is not vaulted" % barcode)
            self._copy(barcode, entry, self.archive_class)
        elif location.get("kind") != "vault" and archived:
            self._recall(barcode, version)
            self._copy(barcode, self._entry(self._load(), barcode), ONLINE_CLASS)
        self._update(barcode, location=dict(location))

    def _storage_class(self, barcode: str, version: str) -> str:
        response = self._s3("HEAD", barcode, lambda: self.client.head(self.key(barcode), version))
        if response.status == 404:
            raise TapeError("cartridge %s: version %s of %s is gone from %s" % (barcode, version, self.key(barcode),
                                                                                self.describe()))
        return response.headers.get("x-amz-storage-class", ONLINE_CLASS)

    def _recall(self, barcode: str, version: str) -> None:
        """RestoreObject, once; TapeError while S3 is still restoring (hours on AWS), so the caller retries."""
        head = self._s3("HEAD", barcode, lambda: self.client.head(self.key(barcode), version))
        if not head.headers.get("x-amz-restore"):
            self._s3("restore", barcode, lambda: self.client.restore(self.key(barcode), version, RESTORE_DAYS,
                                                                     RESTORE_TIER))
            head = self._s3("HEAD", barcode, lambda: self.client.head(self.key(barcode), version))
        if 'ongoing-request="false"' not in head.headers.get("x-amz-restore", ""):
            raise TapeError("the recall of cartridge %s is in progress (S3 is restoring it from %s): try again later"
                            % (barcode, self.archive_class))

    def _copy(self, barcode: str, entry: dict[str, Any], storage_class: str) -> None:
        """The cartridge's version copied into storage_class; the copy, locked like it, becomes the version read."""
        response = self._s3("copy to %s" % storage_class, barcode, lambda: self.client.copy(
            self.key(barcode), self.key(barcode), entry["version"], storage_class))
        copied = _copy_etag(response.body)
        if entry.get("etag") and copied and copied != entry["etag"]:
            raise TapeError("cartridge %s: the copy to %s has ETag %s, the cartridge %s"
                            % (barcode, storage_class, copied, entry["etag"]))
        version = response.headers["x-amz-version-id"]
        # The lock by a retention PUT of its own: a copy carrying lock headers needs a Content-MD5 of a body it has not.
        if entry.get("until") and _parse_time(entry["until"]) > self._now():
            self._retain(barcode, version, entry["until"])
        self._update(barcode, version=version)
        self._drop_version(barcode, entry["version"])

    def _drop_version(self, barcode: str, version: str) -> None:
        """Delete a version no longer read; a locked one stays until its lock expires (erase removes it)."""
        try:
            self.client.delete(self.key(barcode), version)
        except S3Error as exc:
            if exc.status != 403:
                raise TapeError("cartridge %s: deleting old version %s failed: %s" % (barcode, version, exc)) from None

    def protect(self, barcode: str, until: datetime.datetime, closed: bool) -> None:
        # `closed` needs nothing more: an uploaded object takes no appends, and one not uploaded
        # yet is locked right after its upload.
        entry = self._entry(self._load(), barcode)
        wanted = _iso(until)
        if entry.get("until") and _parse_time(entry["until"]) >= until:
            wanted = entry["until"]  # COMPLIANCE retention can only be extended
        self._update(barcode, until=wanted)
        if entry.get("version"):
            self._retain(barcode, entry["version"], wanted)

    def _retain(self, barcode: str, version: str, until: str) -> None:
        if _parse_time(until) <= self._now():
            return  # S3 takes only a future date; a lock that has ended protects nothing (retention_days 0)
        try:
            self.client.put_retention(self.key(barcode), version, LOCK_MODE, until)
        except S3Error as exc:
            hint = " (WORM pools need a bucket created with Object Lock enabled)" if exc.code == "InvalidRequest" else ""
            raise TapeError("cartridge %s: Object Lock until %s refused: %s%s" % (barcode, until, exc, hint)) from None

    def protection(self, barcode: str) -> dict[str, Any]:
        entry = self._entry(self._load(), barcode)
        version = entry.get("version")
        if not version:
            return {"key": self.key(barcode), "version": None, "mode": None, "until": entry.get("until"),
                    "storage_class": None, "restore": None}
        # HEAD of the version carries its retention (x-amz-object-lock-*) and storage class in one answer.
        head = self._s3("HEAD", barcode, lambda: self.client.head(self.key(barcode), version))
        return {"key": self.key(barcode), "version": version, "mode": head.headers.get("x-amz-object-lock-mode"),
                "until": head.headers.get("x-amz-object-lock-retain-until-date"),
                "storage_class": head.headers.get("x-amz-storage-class", ONLINE_CLASS),
                "restore": head.headers.get("x-amz-restore")}

    def erase(self, barcode: str) -> None:
        entry = self._entry(self._load(), barcode)
        key = self.key(barcode)
        listed = self._s3("listing versions", barcode, lambda: self.client.list(key, versions=True))
        # The version read first: while it is locked nothing else is touched.
        versions = sorted((item["version_id"] for item in listed if item["key"] == key),
                          key=lambda version: version != entry.get("version"))
        for version in versions:
            try:
                self.client.delete(key, version)
            except S3Error as exc:
                raise TapeError("cartridge %s cannot be erased: S3 refused to delete version %s of %s (%s%s)"
                                % (barcode, version, key, exc.code or exc,
                                   ", Object Lock until %s" % entry["until"] if entry.get("until") else "")) from None
        if os.path.exists(self.staging_path(barcode)):
            os.unlink(self.staging_path(barcode))
        self._update(barcode, version=None, size=0, sha256=None, etag="", until=None)


class _StagedWriter(io.FileIO):
    """The staging file of a cartridge in a drive; hashed while written, uploaded on close."""

    def __init__(self, path: str, upload: Callable[[str, int], None]) -> None:
        self._uploaded = False  # first: the finaliser of a file that failed to open calls close()
        super().__init__(path, "wb")
        self._digest = hashlib.sha256()
        self._size = 0
        self._upload = upload

    def write(self, data: Any) -> int:
        count = super().write(data) or 0
        self._digest.update(memoryview(data).cast("B")[:count])
        self._size += count
        return count

    def close(self) -> None:
        if self._uploaded:  # close() runs again from the finaliser
            return
        super().close()
        self._uploaded = True
        self._upload(self._digest.hexdigest(), self._size)


def _copy_etag(body: bytes) -> str:
    """The ETag in a CopyObjectResult ("" when the answer has none)."""
    start = body.find(b"<ETag>")
    end = body.find(b"</ETag>")
    return body[start + 6:end].decode("utf-8", "replace").replace("&quot;", '"') if 0 <= start < end else ""


def _iso(moment: datetime.datetime) -> str:
    """UTC to the second, rounded up: a lock never ends before the moment asked for."""
    moment = moment.astimezone(datetime.timezone.utc)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + datetime.timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
