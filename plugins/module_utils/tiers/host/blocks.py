# -*- coding: utf-8 -*-
# Private to restorable.backup: what a disk image holds, block by block, without reading what
# it does not hold. A point records the digest of every block its delta image carries; a drill
# merges the chain's records and compares them with the restored image.
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor

from ...common.process import run_command

BLOCK = 64 * 1024  # qcow2's default cluster size and libvirt's bitmap granularity
ZERO = "0"  # the digest of a block that reads as zeroes, whatever its length
ZERO_BLOCK = bytes(BLOCK)
HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))


class ImageError(Exception):
    """qemu-img could not read an image."""


def extents(path: str) -> list[dict]:
    """qemu-img map of one image (not its backing chain): present data and zero extents."""
    result = run_command(["qemu-img", "map", "-U", "--output=json", path], timeout=600)
    if not result.ok:
        raise ImageError("qemu-img map %s: %s" % (path, result.stderr_tail()))
    return json.loads(result.stdout)


def present_blocks(path: str, size: int) -> list[tuple[int, str]]:
    """(block index, digest) of every block the image itself holds, data or zeroes.

    Data is read straight from the image file at the offsets qemu-img reports (uncompressed
    qcow2 or raw), so unallocated blocks cost nothing; the reading and hashing is spread over
    threads (both release the GIL), a backup waits for it.
    """
    reads = _block_reads(path, size)
    slices = [reads[i::HASH_WORKERS] for i in range(HASH_WORKERS)]
    descriptor = os.open(path, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(max_workers=HASH_WORKERS) as pool:
            digested = pool.map(lambda part: [(index, _digest(descriptor, offset, length))
                                              for index, offset, length in part], slices)
            return sorted(item for part in digested for item in part)
    finally:
        os.close(descriptor)


def _block_reads(path: str, size: int) -> list[tuple[int, int, int]]:
    """(block index, offset in the file or -1 for a zero block, length) of every block held."""
    reads = []
    for extent in extents(path):
        if extent.get("depth", 0) != 0 or not extent.get("present", extent.get("data")):
            continue  # a backing file's blocks are not this image's
        start, length = int(extent["start"]), int(extent["length"])
        if start % BLOCK:
            raise ImageError("%s: extent at %d is not aligned to %d bytes" % (path, start, BLOCK))
        for offset in range(start, start + length, BLOCK):
            where = int(extent["offset"]) + offset - start if extent.get("data") else -1
            reads.append((offset // BLOCK, where, min(offset + BLOCK, size) - offset))
    return reads


def manifest(path: str, size: int, base: bool = False) -> dict[str, str]:
    """The digests of the blocks a delta image holds, zero blocks included (they overwrite what
    is below). A chain's base has nothing below it: its zero blocks say nothing and are left out."""
    return {str(index): digest for index, digest in present_blocks(path, size) if not (base and digest == ZERO)}


def merge(manifests: list[dict[str, str]]) -> dict[str, str]:
    """The blocks of a point: its chain's manifests applied oldest first; zero blocks dropped."""
    merged: dict[str, str] = {}
    for layer in manifests:
        merged.update(layer)
    return {index: digest for index, digest in merged.items() if digest != ZERO}


def compare(expected: dict[str, str], path: str, size: int) -> list[int]:
    """Blocks of the image at path whose content differs from expected (absent: zero)."""
    actual = {str(i): d for i, d in present_blocks(path, size) if d != ZERO}
    return sorted(int(i) for i in set(expected) | set(actual) if expected.get(i) != actual.get(i))


def _digest(descriptor: int, offset: int, length: int) -> str:
    if offset < 0:
        return ZERO
    data = os.pread(descriptor, length, offset)
    if data == ZERO_BLOCK[:length]:  # a comparison: far cheaper than counting zero bytes
        return ZERO
    return hashlib.sha256(data).hexdigest()[:32]
