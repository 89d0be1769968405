# -*- coding: utf-8 -*-
# Private to restorable.backup: a group snapshot to tape. Each volume's snapshot goes as one
# `btrfs send` stream straight into the library (the process's stdout is what write_stream reads:
# no temporary file of the stream anywhere), full or incremental against the previous exported
# point; the point exists on tape only once commit_point recorded it with the group's manifest.
from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Sequence

from ...common.process import base_env, wait_or_kill
from ...snapshot.btrfs import BtrfsSnapshotProvider
from ...snapshot.group import GroupSnapshotter
from .state import Exported

SEND_WAIT = 120.0  # after the library read the stream to its end, btrfs send only has to exit
STDERR_TAIL = 500


class ExportError(Exception):
    """btrfs send failed; the message says for which snapshot and why."""


@dataclass
class ExportPlan:
    """What one export writes: a full stream (a new chain) or an incremental one against `base`."""

    point: str
    kind: str  # "full" | "incremental"
    chain: str
    position: int
    base: str | None = None
    reason: str = ""  # why a full one

    def exported(self) -> Exported:
        return Exported(self.point, self.chain, self.position)


def plan_export(point: str, last: Exported | None, chain_length: int, local: Sequence[str],
                on_tape: Sequence[str]) -> ExportPlan:
    """Incremental against the last exported point while its chain is shorter than chain_length and
    the point is still both on the storage host (the send's parent) and on tape (the receive's);
    else a full one starting a new chain, named after its first point."""
    reason = ""
    if last is None:
        reason = "no point of the dataset was exported yet"
    elif last.position >= chain_length:
        reason = "chain %s reached chain_length %d" % (last.chain, chain_length)
    elif last.point not in local:
        reason = "the last exported point %s is no longer on the storage host" % last.point
    elif last.point not in on_tape:
        reason = "the last exported point %s is not in the library's catalog" % last.point
    elif last.point >= point:
        reason = "the last exported point %s is not older than %s" % (last.point, point)
    if reason:
        return ExportPlan(point, "full", point, 1, None, reason)
    return ExportPlan(point, "incremental", last.chain, last.position + 1, last.point)


def stream_meta(group: str, plan: ExportPlan, volume: str, index: int) -> dict[str, Any]:
    return {"group": group, "point": plan.point, "volume": volume, "volume_index": index, "kind": plan.kind,
            "base": plan.base, "chain": plan.chain, "position": plan.position}


class Exporter:
    """Writes points of one group to one pool of a library."""

    def __init__(self, library: Any, pool: str, snapshotter: GroupSnapshotter,
                 btrfs: BtrfsSnapshotProvider | None = None, command_prefix: Sequence[str] = ()) -> None:
        self.library = library
        self.pool = pool
        self.snapshotter = snapshotter
        self.btrfs = btrfs or BtrfsSnapshotProvider()
        self.command_prefix = list(command_prefix)

    def export(self, plan: ExportPlan, manifest: dict[str, Any]) -> dict[str, Any]:
        """Every volume's stream, then the point committed; what was written (the run's details)."""
        began = time.monotonic()
        group = self.snapshotter.group
        streams = []
        for index, volume in enumerate(group.volumes):
            snapshot = self.snapshotter.destination(volume, plan.point)
            parent = self.snapshotter.destination(volume, plan.base) if plan.base else None
            meta = stream_meta(group.name, plan, volume, index)
            # btrfs receive stamps this UUID on what it rebuilds: a restore proves it got this very snapshot.
            meta["uuid"] = self.btrfs.show(snapshot).get("UUID")
            streams.append(self.send(snapshot, parent, meta))
        self.library.commit_point({
            "group": group.name, "point": plan.point, "time": manifest.get("time"), "kind": plan.kind,
            "chain": plan.chain, "position": plan.position, "base": plan.base, "pool": self.pool,
            "streams": [stream["id"] for stream in streams], "manifest": manifest})
        seconds = max(time.monotonic() - began, 1e-6)
        size = sum(int(stream.get("bytes") or 0) for stream in streams)
        cartridges = []
        for stream in streams:
            cartridges += [part["barcode"] for part in stream.get("parts") or [] if part["barcode"] not in cartridges]
        return {"point": plan.point, "kind": plan.kind, "chain": plan.chain, "position": plan.position,
                "base": plan.base, "full_reason": plan.reason or None, "bytes": size, "cartridges": cartridges,
                "streams": [stream["id"] for stream in streams], "seconds": round(seconds, 3),
                "mb_per_second": round(size / seconds / 1e6, 2)}

    def send(self, snapshot: str, parent: str | None, meta: dict[str, Any]) -> dict[str, Any]:
        """`btrfs send` of one snapshot, its stdout read by the library to the end; the stream record.

        A stream that an earlier, failed export of the same point wrote whole (the point was never
        committed) is taken as it is: the library never writes a stream id twice."""
        written = self.written_stream(meta)
        if written is not None:
            return written
        argv = self.command_prefix + self.btrfs.send_argv(snapshot, parent)
        with tempfile.TemporaryFile() as errors:
            # stderr to a file: a pipe nobody reads while the library reads stdout could fill and stall send.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                    env=base_env({"LC_ALL": "C"}), close_fds=True)
            try:
                stream = self.library.write_stream(self.pool, meta, proc.stdout)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                proc.stdout.close()
            code = wait_or_kill(proc, SEND_WAIT)
            if code != 0:
                errors.seek(0)
                tail = errors.read().decode("utf-8", "replace").strip()[-STDERR_TAIL:]
                raise ExportError("btrfs send of %s%s exited %d: %s" % (
                    snapshot, " (parent %s)" % parent if parent else "", code, tail or "no message"))
        return stream

    def written_stream(self, meta: dict[str, Any]) -> dict[str, Any] | None:
        """The stream of meta already in the library's catalog, when it is the same send."""
        stream_id = "%s.%s.%d" % (meta["group"], meta["point"], meta["volume_index"])
        self.library.points(meta["group"])  # loads the catalog
        stream = self.library.catalog.streams.get(stream_id)
        if stream is None:
            return None
        if (stream.get("kind"), stream.get("base"), stream.get("chain")) != (meta["kind"], meta["base"], meta["chain"]):
            raise ExportError("stream %s is in the library as a %s stream of chain %s, not the %s stream of chain %s "
                              "this export writes" % (stream_id, stream.get("kind"), stream.get("chain"), meta["kind"],
                                                      meta["chain"]))
        return stream
