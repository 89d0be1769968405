# -*- coding: utf-8 -*-
# Private to restorable.backup: the cartridge format. A cartridge is a POSIX tar stream without an
# end-of-archive marker (members are only appended, as on tape and on append-only WORM files), so
# GNU tar reads it and `cat` of the chunk members in order gives back the stream. Chunks are read
# into a buffer first because a tar header needs the member's size before its data.
"""Writing and reading cartridge members: label, stream parts (chunks + index) and points."""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import stat
import tarfile
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable

from .media import CartridgeDamaged

FORMAT = 1
BLOCK = 512
CHUNK_BYTES = 8 * 1024 * 1024
MIN_CHUNK = 64 * 1024  # a part never ends on a sliver of a chunk: below this the cartridge is full
LABEL_NAME = "LABEL.json"
# Room kept free on every cartridge for the point member written after a point's streams.
POINT_RESERVE = 128 * 1024
_HEADER_BOUND = 3 * BLOCK  # ustar header plus a pax header for a long name
_CHUNK_ENTRY = len(json.dumps({"bytes": CHUNK_BYTES, "sha256": "0" * 64}, sort_keys=True)) + 2
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_BYTES = 1024 * 1024
FULL_MARGIN = POINT_RESERVE + _HEADER_BOUND + MIN_CHUNK + 4 * BLOCK


def padding(size: int) -> int:
    return -size % BLOCK


def tar_header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def json_bytes(document: Any) -> bytes:
    return (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def json_member(name: str, document: Any, mtime: float) -> bytes:
    data = json_bytes(document)
    return tar_header(name, len(data), mtime) + data + b"\0" * padding(len(data))


def chunk_name(stream_id: str, part: int, chunk: int) -> str:
    return "streams/%s/%04d/%06d" % (stream_id, part, chunk)


def index_name(stream_id: str, part: int) -> str:
    return "streams/%s/%04d.json" % (stream_id, part)


def point_name(group: str, point: str) -> str:
    return "points/%s/%s.json" % (group, point)


def index_bound(base: dict[str, Any], chunks: int) -> int:
    """An upper bound of the index member's size with `chunks` chunk entries (O(1) per chunk)."""
    widest = dict(base, chunks=[], bytes=10 ** 16, sha256="0" * 64, last=False, stream_bytes=10 ** 16,
                  stream_sha256="0" * 64, written="2000-01-01T00:00:00.000000Z")
    size = len(json.dumps(widest, sort_keys=True, separators=(",", ":"))) + 1 + chunks * _CHUNK_ENTRY
    return _HEADER_BOUND + size + padding(size)


def is_full(free: int, has_continued_part: bool) -> bool:
    """Full: a stream had to continue elsewhere, or too little room for another part and a point."""
    return has_continued_part or free < FULL_MARGIN


class Worker:
    """One thread running jobs in submission order. hashlib and file writes drop the GIL, so the
    digests and the sink run beside the reads instead of after them."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def submit(self, job: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(job, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _hash_chunk(digests: list, view: memoryview) -> str:
    for digest in digests:
        digest.update(view)
    return hashlib.sha256(view).hexdigest()


class ChunkSource:
    """The stream being written. A reader thread fills BUFFERS buffers of CHUNK_BYTES ahead (the
    producer, btrfs send, never waits for our writes); the hash worker digests each chunk and the
    whole stream after it was written; a buffer is refilled once its last digest job ran."""

    BUFFERS = 3

    def __init__(self, source: BinaryIO) -> None:
        widen_pipe(source)
        self.digest = hashlib.sha256()
        self.size = 0
        self.hasher = Worker("tape-hash")
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._filled: queue.SimpleQueue = queue.SimpleQueue()
        for _number in range(self.BUFFERS):
            self._free.put(bytearray(CHUNK_BYTES))
        self._buffer: bytearray | None = None
        self._view = memoryview(b"")
        self._eof = False
        self._reader = threading.Thread(target=self._fill, args=(source,), name="tape-read", daemon=True)
        self._reader.start()

    def _fill(self, source: BinaryIO) -> None:
        try:
            while True:
                buffer = self._free.get()
                if buffer is None:
                    return
                view = memoryview(buffer)
                filled = 0
                while filled < CHUNK_BYTES:
                    got = _readinto(source, view[filled:])
                    if not got:
                        break
                    filled += got
                self._filled.put((buffer, filled, None))
                if filled < CHUNK_BYTES:
                    return
        except BaseException as exc:  # pylint: disable=broad-exception-caught  # re-raised by the writer
            self._filled.put((None, 0, exc))

    def take(self, limit: int) -> memoryview:
        """Up to limit bytes of the stream (empty at its end)."""
        if not len(self._view) and not self._eof:
            self._advance()
        view, self._view = self._view[:limit], self._view[limit:]
        self.size += len(view)
        return view

    def at_end(self) -> bool:
        if not len(self._view) and not self._eof:
            self._advance()
        return not len(self._view)

    def hash_chunk(self, digests: list, view: memoryview) -> Future:
        """The chunk's sha256 (a Future), the digests updated with it in stream order."""
        return self.hasher.submit(_hash_chunk, digests, view)

    def _advance(self) -> None:
        if self._buffer is not None:
            self.hasher.submit(self._free.put, self._buffer)  # after the jobs still reading it
            self._buffer = None
        buffer, filled, error = self._filled.get()
        if error is not None:
            self._eof = True
            raise error
        self._eof = filled < CHUNK_BYTES
        self._buffer = buffer
        self._view = memoryview(buffer)[:filled]

    def close(self) -> None:
        self._free.put(None)  # a reader waiting for a buffer stops; one blocked in a read ends with it
        self.hasher.close()


def widen_pipe(handle: Any) -> None:
    """A pipe (btrfs send, btrfs receive) moves 64 KiB per switch between the processes by default;
    1 MiB cuts the switches, which is what keeps pace with the bare pipeline. Best effort."""
    try:
        fd = handle.fileno()
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass


def _readinto(source: BinaryIO, view: memoryview) -> int:
    reader = getattr(source, "readinto", None)
    if reader is not None:
        return reader(view) or 0
    data = source.read(len(view))
    view[:len(data)] = data
    return len(data)


@dataclass
class PartOutcome:
    index: dict[str, Any]
    index_sha256: str  # of the index member's data: the catalog keeps it, a read checks it
    written: int  # bytes appended to the cartridge (chunks and index)
    ended_for_room: bool


def write_part(out: BinaryIO, source: ChunkSource, stream_id: str, part: int, free: int, meta: dict[str, Any],
               written_at: str, mtime: float) -> PartOutcome:
    """Append one part (chunks, then its index) within `free` bytes, keeping POINT_RESERVE."""
    base = {"stream": stream_id, "part": part, "meta": meta}
    # Part 1 of a stream has the same data as the stream: one digest serves both until a span.
    part_digest = source.digest if part == 1 else hashlib.sha256()
    digests = [source.digest] if part == 1 else [source.digest, part_digest]
    chunks: list[tuple[int, Future]] = []
    used = 0
    part_bytes = 0
    ended_for_room = False
    while True:
        room = free - used - POINT_RESERVE - index_bound(base, len(chunks) + 1) - _HEADER_BOUND
        room -= room % BLOCK
        if room < MIN_CHUNK:
            ended_for_room = not source.at_end()
            break
        view = source.take(min(room, CHUNK_BYTES))
        if not len(view):
            break
        size = len(view)
        header = tar_header(chunk_name(stream_id, part, len(chunks) + 1), size, mtime)
        out.write(header)
        out.write(view)
        if size % BLOCK:
            out.write(b"\0" * padding(size))
        chunks.append((size, source.hash_chunk(digests, view)))
        used += len(header) + size + padding(size)
        part_bytes += size
    last = not ended_for_room
    listed = [{"bytes": size, "sha256": future.result()} for size, future in chunks]
    source.hasher.submit(int).result()  # every digest job of this part ran
    part_sha = (source.digest.copy() if part == 1 else part_digest).hexdigest()
    index = dict(base, chunks=listed, bytes=part_bytes, sha256=part_sha, last=last, written=written_at)
    if last:
        index["stream_bytes"] = source.size
        index["stream_sha256"] = source.digest.hexdigest()
    data = json_bytes(index)
    member = tar_header(index_name(stream_id, part), len(data), mtime) + data + b"\0" * padding(len(data))
    out.write(member)
    return PartOutcome(index, hashlib.sha256(data).hexdigest(), used + len(member), ended_for_room)


def label_document(barcode: str, pool: str, library: str, media: str, capacity: int, labelled: str,
                   generation: int, worm: bool) -> dict[str, Any]:
    return {"format": FORMAT, "barcode": barcode, "pool": pool, "library": library, "media": media,
            "capacity_bytes": capacity, "labelled": labelled, "generation": generation, "worm": worm}


@dataclass
class Member:
    name: str
    size: int
    offset: int  # of the member's first header on the cartridge
    data_offset: int


class CartridgeReader:
    """Members of a cartridge read sequentially from a reader positioned at `offset`."""

    def __init__(self, handle: BinaryIO, barcode: str, offset: int = 0) -> None:
        self.handle = handle
        self.barcode = barcode
        self.position = offset
        self._header = bytearray(BLOCK)

    def next_member(self) -> Member | None:
        """The next member's header, None at the end of the data; CartridgeDamaged when cut."""
        start = self.position
        name, size = None, None
        while True:
            got = self._read_exact(memoryview(self._header), allow_eof=True)
            if got == 0:
                if name is not None:
                    raise CartridgeDamaged(self.barcode, "a pax header at offset %d has no member" % start)
                return None
            if not any(self._header):
                raise CartridgeDamaged(self.barcode, "end-of-archive block at offset %d in the data"
                                       % (self.position - BLOCK))
            try:
                info = tarfile.TarInfo.frombuf(bytes(self._header), "utf-8", "surrogateescape")
            except tarfile.TarError as exc:
                raise CartridgeDamaged(self.barcode, "bad tar header at offset %d (%s)"
                                       % (self.position - BLOCK, exc)) from None
            if info.type not in (tarfile.XHDTYPE, tarfile.XGLTYPE):
                break
            records = self.read_bytes(info.size)
            self.skip(padding(info.size))
            name, size = _pax_fields(records, name, size)
        return Member(name if name is not None else info.name, size if size is not None else info.size,
                      start, self.position)

    def read_bytes(self, size: int) -> bytes:
        buffer = bytearray(size)
        self._read_exact(memoryview(buffer))
        return bytes(buffer)

    def read_json(self, member: Member) -> Any:
        return self.read_json_digest(member)[0]

    def read_json_digest(self, member: Member) -> tuple[Any, str]:
        """A JSON member and the sha256 of its bytes."""
        data = self.read_bytes(member.size)
        self.skip(padding(member.size))
        try:
            return json.loads(data), hashlib.sha256(data).hexdigest()
        except ValueError:
            raise CartridgeDamaged(self.barcode, "member %s is not valid JSON" % member.name) from None

    def read_into(self, view: memoryview) -> None:
        self._read_exact(view)

    def skip(self, size: int) -> None:
        if not size:
            return
        seek = getattr(self.handle, "seek", None)
        if seek is not None and getattr(self.handle, "seekable", lambda: False)() and size > BLOCK:
            seek(size, 1)
            self.position += size
            return
        scratch = memoryview(bytearray(min(size, CHUNK_BYTES)))
        left = size
        while left:
            step = min(left, len(scratch))
            self._read_exact(scratch[:step])
            left -= step

    def _read_exact(self, view: memoryview, allow_eof: bool = False) -> int:
        filled = 0
        while filled < len(view):
            got = _readinto(self.handle, view[filled:])
            if not got:
                if allow_eof and filled == 0:
                    return 0
                raise CartridgeDamaged(self.barcode, "truncated at offset %d (%d of %d bytes of a member)"
                                       % (self.position + filled, filled, len(view)))
            filled += got
        self.position += filled
        return filled


def _pax_fields(records: bytes, name: str | None, size: int | None) -> tuple[str | None, int | None]:
    position = 0
    while position < len(records):
        length_text, rest = records[position:].split(b" ", 1)
        length = int(length_text)
        key, value = rest[:length - len(length_text) - 2].split(b"=", 1)
        if key == b"path":
            name = value.decode("utf-8", "surrogateescape")
        elif key == b"size":
            size = int(value)
        position += length
    return name, size


def read_label(reader: CartridgeReader) -> dict[str, Any]:
    member = reader.next_member()
    if member is None:
        raise CartridgeDamaged(reader.barcode, "it is empty (no label)")
    if member.name != LABEL_NAME:
        raise CartridgeDamaged(reader.barcode, "the first member is %s, not %s" % (member.name, LABEL_NAME))
    label = reader.read_json(member)
    if not isinstance(label, dict):
        raise CartridgeDamaged(reader.barcode, "the label is not a JSON object")
    return label


LABEL_FIELDS = ("pool", "labelled", "media", "capacity_bytes", "worm")


def check_label(label: dict[str, Any], barcode: str, generation: int,
                expected: dict[str, Any] | None = None) -> None:
    """The label names this barcode and generation; with `expected` (the catalog's cartridge
    record) every other label field must match it too, so no damaged byte of a label goes unseen."""
    if label.get("barcode") != barcode:
        raise CartridgeDamaged(barcode, "its label says barcode %r" % label.get("barcode"))
    if label.get("generation") != generation:
        raise CartridgeDamaged(barcode, "its label is generation %r, the catalog expects %d"
                               % (label.get("generation"), generation))
    for name in LABEL_FIELDS if expected else ():
        if expected.get(name) is not None and label.get(name) != expected[name]:
            raise CartridgeDamaged(barcode, "its label says %s %r, the catalog %r"
                                   % (name, label.get(name), expected[name]))


class StreamReader:
    """Reads parts of one stream: the cartridge is read in the calling thread, the sink is written
    and the digests computed on two workers, with BUFFERS buffers in flight between them."""

    BUFFERS = 3

    def __init__(self, sink_write: Callable[[memoryview], Any] | None) -> None:
        self.size = 0
        self._sink_write = sink_write
        self._hasher = Worker("tape-hash")
        self._sink = Worker("tape-sink")
        self._buffers = [bytearray(CHUNK_BYTES) for _number in range(self.BUFFERS)]
        self._busy: list[list[Future]] = [[] for _number in range(self.BUFFERS)]
        self._turn = 0

    def close(self) -> None:
        self._sink.close()
        self._hasher.close()

    def _buffer(self) -> tuple[int, bytearray]:
        slot = self._turn % self.BUFFERS
        self._turn += 1
        for future in self._busy[slot]:
            future.result()  # also raises a failed sink write (btrfs receive died)
        self._busy[slot] = []
        return slot, self._buffers[slot]

    def _settle(self) -> None:
        for futures in self._busy:
            for future in futures:
                future.result()

    def read_part(self, reader: CartridgeReader, stream_id: str, part: int, expected: dict[str, Any]) -> dict[str, Any]:
        """Read one part from the reader's position into the sink; every chunk's sha256 is checked
        against the part's index, and the index against the catalog's `index_sha256` of it. That
        proves the bytes are the ones whose part and stream digests were recorded, so those are not
        computed again: one sha256 pass per byte. Without `index_sha256` the part's data digest is
        computed and compared with `sha256`."""
        part_digest = hashlib.sha256()
        digests = [] if expected.get("index_sha256") else [part_digest]
        seen: list[tuple[int, Future]] = []
        while True:
            member = reader.next_member()
            if member is None:
                raise CartridgeDamaged(reader.barcode, "stream %s part %d ends after %d chunks without its index"
                                       % (stream_id, part, len(seen)))
            if member.name == index_name(stream_id, part):
                index, index_sha = reader.read_json_digest(member)
                break
            if member.name != chunk_name(stream_id, part, len(seen) + 1):
                raise CartridgeDamaged(reader.barcode, "found %s where %s was expected"
                                       % (member.name, chunk_name(stream_id, part, len(seen) + 1)))
            if member.size > CHUNK_BYTES:
                raise CartridgeDamaged(reader.barcode, "chunk %s claims %d bytes" % (member.name, member.size))
            slot, buffer = self._buffer()
            view = memoryview(buffer)[:member.size]
            reader.read_into(view)
            reader.skip(padding(member.size))
            hashed = self._hasher.submit(_hash_chunk, digests, view)
            self._busy[slot].append(hashed)
            if self._sink_write is not None:
                self._busy[slot].append(self._sink.submit(self._sink_write, view))
            seen.append((member.size, hashed))
            self.size += member.size
        self._settle()
        listed = [{"bytes": size, "sha256": future.result()} for size, future in seen]
        where = "stream %s part %d" % (stream_id, part)
        if expected.get("index_sha256") and index_sha != expected["index_sha256"]:
            raise CartridgeDamaged(reader.barcode, "the index of %s has sha256 %s, the catalog recorded %s"
                                   % (where, index_sha, expected["index_sha256"]))
        _check_index(reader.barcode, where, index, listed)
        if not digests:
            return index
        part_sha = part_digest.hexdigest()
        if part_sha != index.get("sha256") or part_sha != expected.get("sha256", part_sha):
            raise CartridgeDamaged(reader.barcode, "%s: sha256 %s does not match the recorded %s"
                                   % (where, part_sha, expected.get("sha256", index.get("sha256"))))
        return index


def _check_index(barcode: str, where: str, index: Any, seen: list[dict[str, Any]]) -> None:
    if not isinstance(index, dict):
        raise CartridgeDamaged(barcode, "the index of %s is not a JSON object" % where)
    recorded = index.get("chunks") or []
    for number, (got, want) in enumerate(zip(seen, recorded), start=1):
        if got != want:
            raise CartridgeDamaged(barcode, "%s chunk %d: sha256 %s, the index says %s"
                                   % (where, number, got["sha256"], want.get("sha256")))
    if len(seen) != len(recorded):
        raise CartridgeDamaged(barcode, "%s has %d chunks, its index lists %d" % (where, len(seen), len(recorded)))
