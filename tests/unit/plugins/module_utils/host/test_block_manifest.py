# -*- coding: utf-8 -*-
"""tiers.host.blocks on real qcow2 images (qemu-img, qemu-io): what a delta image holds block by
block, a chain's blocks merged, and a restored image compared with them."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.tiers.host import blocks

pytestmark = pytest.mark.skipif(not (shutil.which("qemu-img") and shutil.which("qemu-io")), reason="needs qemu-img and qemu-io")

KiB = 1024
BLOCK = 64 * KiB
SIZE = 1024 * KiB


def image(path: Path, *writes: str, size: int = SIZE) -> str:
    """A qcow2 of `size` bytes with qemu-io's writes ("write -P 0xab 0 64k") applied in order."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)], check=True)
    if writes:
        args = [arg for write in writes for arg in ("-c", write)]
        subprocess.run(["qemu-io", "-f", "qcow2"] + args + [str(path)], check=True, stdout=subprocess.DEVNULL)
    return str(path)


def digest(byte: int, length: int = BLOCK) -> str:
    return hashlib.sha256(bytes([byte]) * length).hexdigest()[:32]


def test_a_manifest_holds_data_and_zero_blocks_but_not_unallocated_ones(tmp_path):
    path = image(tmp_path / "delta.qcow2", "write -P 0xab 0 64k", "write -z 128k 64k", "write -P 0xcd 192k 128k",
                 "write -P 0 512k 64k")
    assert blocks.manifest(path, SIZE) == {
        "0": digest(0xab),
        "2": blocks.ZERO,  # zeroed: a later layer's zeroes overwrite older data
        "3": digest(0xcd), "4": digest(0xcd),
        "8": blocks.ZERO,  # written, but zeroes
    }


def test_a_delta_with_a_backing_file_holds_only_its_own_blocks(tmp_path):
    base = image(tmp_path / "live.qcow2", "write -P 0xab 0 128k", "write -P 0xcd 256k 64k")
    delta = str(tmp_path / "delta.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", delta], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xee 64k 64k", delta], check=True, stdout=subprocess.DEVNULL)
    assert blocks.manifest(delta, SIZE) == {"1": digest(0xee)}


def test_the_last_block_of_an_image_is_as_long_as_the_image(tmp_path):
    size = 3 * BLOCK + 8 * KiB
    path = image(tmp_path / "odd.qcow2", "write -P 0x11 192k 8k", size=size)
    assert blocks.manifest(path, size) == {"3": digest(0x11, 8 * KiB)}


def test_an_empty_image_has_an_empty_manifest(tmp_path):
    assert blocks.manifest(image(tmp_path / "empty.qcow2"), SIZE) == {}


def test_merge_lets_the_newest_layer_win_and_drops_zero_blocks():
    full = {"0": "a0", "1": "b0", "2": blocks.ZERO, "5": "f0"}
    first = {"1": "b1", "2": "c1", "5": blocks.ZERO}
    second = {"0": blocks.ZERO, "1": "b2"}
    assert blocks.merge([full, first, second]) == {"1": "b2", "2": "c1"}
    assert blocks.merge([]) == {}


def test_a_chains_merged_manifest_matches_the_image_it_restores_to(tmp_path):
    full = image(tmp_path / "full.qcow2", "write -P 0xab 0 64k", "write -P 0xcd 64k 64k", "write -P 0x01 256k 64k")
    delta = image(tmp_path / "delta.qcow2", "write -z 0 64k", "write -P 0xee 64k 64k", "write -P 0x02 320k 64k")
    whole = image(tmp_path / "whole.qcow2", "write -P 0xab 0 64k", "write -P 0xcd 64k 64k", "write -P 0x01 256k 64k",
                  "write -z 0 64k", "write -P 0xee 64k 64k", "write -P 0x02 320k 64k")
    expected = blocks.merge([blocks.manifest(full, SIZE), blocks.manifest(delta, SIZE)])
    assert expected == {"1": digest(0xee), "4": digest(0x01), "5": digest(0x02)}
    assert blocks.compare(expected, whole, SIZE) == []
    assert blocks.compare(blocks.manifest(full, SIZE), whole, SIZE) == [0, 1, 5]


def test_compare_finds_a_block_corrupted_in_the_image_file(tmp_path):
    path = image(tmp_path / "restored.qcow2", "write -P 0xab 0 64k", "write -P 0xcd 128k 64k")
    expected = blocks.merge([blocks.manifest(path, SIZE)])
    assert blocks.compare(expected, path, SIZE) == []
    extents = json.loads(subprocess.run(["qemu-img", "map", "--output=json", path], check=True, capture_output=True).stdout)
    (third,) = [e for e in extents if e["start"] == 128 * KiB]
    with open(path, "r+b") as handle:  # one byte flipped where the image keeps block 2
        handle.seek(third["offset"] + 4321)
        handle.write(b"\x00")
    assert blocks.compare(expected, path, SIZE) == [2]


def test_compare_reports_blocks_missing_from_the_image_or_unexpected_in_it(tmp_path):
    path = image(tmp_path / "restored.qcow2", "write -P 0xab 0 64k")
    assert blocks.compare({"0": digest(0xab), "3": digest(0xcd)}, path, SIZE) == [3]
    assert blocks.compare({}, path, SIZE) == [0]


def test_an_unreadable_image_is_an_image_error(tmp_path):
    bogus = tmp_path / "bogus.qcow2"
    bogus.write_bytes(b"QFI\xfb\x00\x00\x00\x09 a qcow2 header of no version qemu knows")
    with pytest.raises(blocks.ImageError, match="qemu-img map .*bogus.qcow2: .*qcow2 version"):
        blocks.manifest(str(bogus), SIZE)
