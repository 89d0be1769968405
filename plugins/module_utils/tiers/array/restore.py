# -*- coding: utf-8 -*-
# Private to restorable.backup: a group point restored from the tape library into a sandbox.
"""The chain of the point (base first) is read from the library, each volume's stream piped
straight into ``btrfs receive`` (the library writes into receive's stdin: no copy of a stream on
disk), every point of the chain in order, each incremental received against the one before. Then
each volume's final point becomes a writable snapshot ``<sandbox>/<volume name>`` and the received
read-only subvolumes go. The sandbox must be on btrfs and overlap neither a volume nor its
snapshot directory: a restore never writes over production.

A PostgreSQL data directory whose tablespaces (or pg_wal) live on other volumes of the group links
to the production paths, and its ``tablespace_map`` names them: :func:`relocate_postgresql` points
them at the restored copies, so that a server started from the copy never touches production.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from typing import Any, NoReturn, Sequence

from ...common.process import base_env, wait_or_kill
from ...drill.engine import check_sandbox
from ...snapshot.btrfs import BtrfsSnapshotProvider, received_uuid
from ...snapshot.provider import SnapshotError
from ..cdp.points import is_subvolume, require_btrfs

RECEIVE_DIR = ".restorable-receive"
RECEIVE_WAIT = 300.0  # after the stream's end, receive finishes its last writes
STDERR_TAIL = 500
TABLESPACE_MAP = "tablespace_map"


class RestoreError(Exception):
    """Nothing (more) could be restored; the message says why."""


def volumes_of(record: dict[str, Any]) -> list[dict[str, str]]:
    """[{"volume", "snapshot"}] of a committed point, from the group manifest it carries."""
    volumes = (record.get("manifest") or {}).get("volumes") or []
    if not volumes:
        raise RestoreError("point %s carries no manifest with its volumes" % record.get("point"))
    return volumes


def streams_by_volume(record: dict[str, Any], count: int) -> list[str]:
    """The point's stream ids in volume order (a stream id ends in .<volume index>)."""
    found: dict[int, str] = {}
    for stream_id in record.get("streams") or []:
        index = stream_id.rsplit(".", 1)[-1]
        if index.isdigit():
            found[int(index)] = stream_id
    missing = [str(index) for index in range(count) if index not in found]
    if missing:
        raise RestoreError("point %s has no stream of volume(s) %s on tape" % (record.get("point"), ", ".join(missing)))
    return [found[index] for index in range(count)]


def protected_paths(record: dict[str, Any]) -> list[str]:
    """The production paths of a point: its volumes and the directories their snapshots live in."""
    paths = []
    for entry in volumes_of(record):
        paths += [entry["volume"], os.path.dirname(entry["snapshot"])]
    return paths


def vaulted(library: Any, chain: Sequence[dict[str, Any]]) -> list[str]:
    """Barcodes of the cartridges the chain needs that are in the vault."""
    return [cart["barcode"] for cart in library.cartridges_for(list(chain))
            if (cart.get("location") or {}).get("kind") == "vault"]


def recall_for(library: Any, chain: Sequence[dict[str, Any]], recall: bool) -> list[str]:
    """Recall the vaulted cartridges the chain needs (when allowed); the barcodes recalled."""
    away = vaulted(library, chain)
    if away and not recall:
        raise RestoreError("cartridge(s) %s of point %s are in the vault: recall them first (recall: true)" % (
            ", ".join(away), chain[-1]["point"]))
    return library.recall(away) if away else []


class ChainReceiver:
    """Receives a chain of points of one group into a sandbox on btrfs."""

    def __init__(self, library: Any, sandbox: str, btrfs: BtrfsSnapshotProvider | None = None) -> None:
        self.library = library
        self.sandbox = os.path.normpath(sandbox)
        self.btrfs = btrfs or BtrfsSnapshotProvider()
        self.work = os.path.join(self.sandbox, RECEIVE_DIR)
        self.reads: list[dict[str, Any]] = []
        self.identities: dict[str, str | None] = {}  # volume: the snapshot UUID its copy proved to be

    def restore(self, chain: Sequence[dict[str, Any]]) -> dict[str, str]:
        """Every point of the chain received in order; {volume: writable copy} of the last one."""
        final = chain[-1]
        volumes = [entry["volume"] for entry in volumes_of(final)]
        copies = {volume: os.path.join(self.sandbox, os.path.basename(volume)) for volume in volumes}
        for copy in copies.values():
            if os.path.lexists(copy):
                raise RestoreError("%s exists already: a restore never goes over anything" % copy)
        if os.path.lexists(self.work):
            raise RestoreError("%s exists already (left by an interrupted restore?): remove it first" % self.work)
        os.makedirs(self.work, mode=0o700)
        try:
            for record in chain:
                for index, stream_id in enumerate(streams_by_volume(record, len(volumes))):
                    self.receive(stream_id, os.path.join(self.work, str(index)))
            streams = streams_by_volume(final, len(volumes))
            for index, volume in enumerate(volumes):
                received = os.path.join(self.work, str(index), final["point"])
                if not is_subvolume(received):
                    raise RestoreError("btrfs receive left no subvolume %s" % received)
                self.identities[volume] = self.check_identity(received, streams[index])
                self.btrfs.run(self.btrfs.create_argv(received, copies[volume]),
                               "writable copy of the received %s" % received)
        except BaseException:
            with contextlib.suppress(SnapshotError, OSError):
                self.discard()  # the first error is the one to report
            raise
        self.discard()
        return copies

    def check_identity(self, received: str, stream_id: str) -> str | None:
        """The UUID of the snapshot the export sent, which the received subvolume must carry as its
        Received UUID (None for streams written before it was recorded)."""
        expected = self.library.catalog.stream(stream_id).get("uuid")
        got = received_uuid(self.btrfs.show(received))
        if expected and got != expected:
            raise RestoreError("the chain rebuilt %s as subvolume %s, not the snapshot %s that was exported" % (
                os.path.basename(received), got, expected))
        return expected

    def receive(self, stream_id: str, directory: str) -> None:
        """One stream from the library into `btrfs receive` in directory."""
        os.makedirs(directory, mode=0o700, exist_ok=True)
        argv = self.btrfs.receive_argv(directory)
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                    env=base_env({"LC_ALL": "C"}), close_fds=True)
            try:
                read = self.library.read_stream(stream_id, proc.stdin)
                proc.stdin.close()
            except BrokenPipeError:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                proc.wait(RECEIVE_WAIT)
                self.refused(stream_id, "stopped early", errors)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            code = wait_or_kill(proc, RECEIVE_WAIT)
            if code != 0:
                self.refused(stream_id, "exited %d" % code, errors)
        self.reads.append(dict(read, stream=stream_id))

    def refused(self, stream_id: str, how: str, errors: Any) -> NoReturn:
        """Raise why receive refused the stream: the cartridge's damage when reading the stream again
        finds it (receive's own checksums may notice a flipped byte before the library's do), else
        receive's message."""
        self.library.verify_stream(stream_id)  # CartridgeDamaged names the barcode
        raise RestoreError("btrfs receive of stream %s %s: %s" % (stream_id, how, self._tail(errors) or "no message"))

    @staticmethod
    def _tail(errors: Any) -> str:
        errors.seek(0)
        return errors.read().decode("utf-8", "replace").strip()[-STDERR_TAIL:]

    def discard(self) -> None:
        """The received read-only subvolumes (only steps towards the copies) and their directory."""
        if not os.path.isdir(self.work):
            return
        received = [os.path.join(directory, name) for directory in
                    (os.path.join(self.work, entry) for entry in sorted(os.listdir(self.work)))
                    if os.path.isdir(directory) for name in sorted(os.listdir(directory))]
        subvolumes = [path for path in received if is_subvolume(path)]
        if subvolumes:
            self.btrfs.run(self.btrfs.delete_argv(*subvolumes), "removing %d received subvolume(s)" % len(subvolumes))
        shutil.rmtree(self.work)


def restore_point(library: Any, group: str, point: str, sandbox: str, recall: bool = False,
                  protected: Sequence[str] = ()) -> dict[str, Any]:
    """Restore `point` of `group` ("latest": the newest) from the library into sandbox; what was done.

    Raises RestoreError, SandboxRefused (drill.engine) or the library's TapeError (CartridgeDamaged
    names the barcode) saying why nothing, or not everything, was restored.
    """
    points = library.points(group)
    if not points:
        raise RestoreError("the library has no point of group %s" % group)
    point = points[-1]["point"] if point in ("", "latest", None) else point
    chain = library.chain(group, point)
    check_sandbox(sandbox, list(protected) + protected_paths(chain[-1]))
    os.makedirs(sandbox, mode=0o755, exist_ok=True)
    try:
        require_btrfs(sandbox, "sandbox")
    except SnapshotError as exc:
        raise RestoreError(str(exc)) from None
    recalled = recall_for(library, chain, recall)
    receiver = ChainReceiver(library, sandbox)
    try:
        copies = receiver.restore(chain)
    except SnapshotError as exc:
        raise RestoreError(str(exc)) from None
    relocated = relocate_postgresql(copies)
    cartridges: list[str] = []
    for read in receiver.reads:
        cartridges += [barcode for barcode in read.get("cartridges") or [] if barcode not in cartridges]
    return {"group": group, "point": point, "chain": [record["point"] for record in chain], "copies": copies,
            "recalled": recalled, "cartridges": cartridges, "bytes": sum(int(r.get("bytes") or 0) for r in receiver.reads),
            "streams": receiver.reads, "relocated": relocated, "manifest": chain[-1].get("manifest"),
            "identities": receiver.identities}


# -- PostgreSQL links to other volumes of the group ---------------------------------------------

def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _restored_path(path: str, copies: dict[str, str], what: str) -> str:
    """Where the restored copy of production path `path` is; RestoreError when no volume of the group holds it."""
    path = os.path.normpath(path)
    for volume, copy in copies.items():
        if _inside(path, volume):
            return os.path.normpath(os.path.join(copy, os.path.relpath(path, volume)))
    raise RestoreError("%s lies at %s, outside the group's volumes: a server started from the restored copy would "
                       "write there" % (what, path))


def _is_data_directory(path: str, files: list[str]) -> bool:
    return "PG_VERSION" in files and os.path.isfile(os.path.join(path, "global", "pg_control"))


def relocate_postgresql(copies: dict[str, str]) -> dict[str, Any]:
    """Point every restored data directory's links to other volumes of the group (pg_tblspc/<oid>,
    a pg_wal symlink, the tablespace_map PostgreSQL recreates the links from) at the restored
    copies; what was relocated. RestoreError when one leads outside the group."""
    relocated: dict[str, Any] = {"tablespaces": {}, "pg_wal": None}
    for copy in copies.values():
        for directory, dirs, files in os.walk(copy):
            if _is_data_directory(directory, files):
                _relocate(directory, copies, relocated)
                dirs[:] = []
    return relocated


def _repoint(link: str, copies: dict[str, str], what: str) -> str:
    """The link re-pointed from production to the restored copy; a relative one staying inside the
    restored copies is left as it is."""
    current = os.readlink(link)
    if not os.path.isabs(current):
        inside = os.path.normpath(os.path.join(os.path.dirname(link), current))
        if any(_inside(inside, copy) for copy in copies.values()):
            return inside
        raise RestoreError("%s leads to %s, outside the restored copies" % (what, current))
    target = _restored_path(current, copies, what)
    owner = os.lstat(link)
    os.unlink(link)
    os.symlink(target, link)
    os.chown(link, owner.st_uid, owner.st_gid, follow_symlinks=False)
    return target


def _relocate(data_dir: str, copies: dict[str, str], relocated: dict[str, Any]) -> None:
    wal = os.path.join(data_dir, "pg_wal")
    if os.path.islink(wal):
        relocated["pg_wal"] = _repoint(wal, copies, "pg_wal of %s" % data_dir)
    links = os.path.join(data_dir, "pg_tblspc")
    for oid in sorted(os.listdir(links)) if os.path.isdir(links) else []:
        if os.path.islink(os.path.join(links, oid)):
            relocated["tablespaces"][oid] = _repoint(os.path.join(links, oid), copies,
                                                     "tablespace %s of %s" % (oid, data_dir))
    path = os.path.join(data_dir, TABLESPACE_MAP)
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8") as handle:
        entries = [line.partition(" ") for line in handle.read().splitlines() if line.strip()]
    mapped = {oid: _restored_path(location, copies, "tablespace %s of %s" % (oid, data_dir))
              for oid, _sep, location in entries}
    owner = os.stat(path)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join("%s %s\n" % (oid, location) for oid, location in mapped.items()))
    os.chown(path, owner.st_uid, owner.st_gid)
    relocated["tablespaces"].update(mapped)
