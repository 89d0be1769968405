# -*- coding: utf-8 -*-
# Private to restorable.backup: a VM's point made whole again: its chain read from the
# repository (full first), each delta committed into the disk below it, so the result is one
# standalone qcow2 per disk. Optionally defined as a new VM that shares nothing with the original.
from __future__ import annotations

import json
import os
import shutil
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

from ...common.process import CommandResult, run_command
from ...drill.engine import parse_time
from ...storage.repository import Repository
from . import blocks
from .chain import PointInfo, lineage

POINT_FILES = ("domain.xml", "point.json")
RESTORE_WORKERS = 4


class RestoreRefused(Exception):
    """The restore would touch what it must not (an original disk, a non-empty directory, a used name)."""


@dataclass
class MaterialisedPoint:
    point: PointInfo
    directory: str
    disks: dict[str, str]  # target -> restored image
    sizes: dict[str, int]
    domain_xml: str  # path of the point's domain XML
    manifests: dict[str, dict[str, str]]  # target -> merged block digests of the point
    chain: list[str] = field(default_factory=list)  # point ids read, full first
    restore_seconds: float = 0.0  # reading from the repository
    merge_seconds: float = 0.0

    def verify(self) -> dict[str, list[int]]:
        """Blocks of each restored disk that differ from the digests recorded when the points were taken."""
        return {t: blocks.compare(self.manifests[t], path, self.sizes[t]) for t, path in self.disks.items()}


def materialise(repo: Repository, point: PointInfo, points: Sequence[PointInfo], directory: str,
                protected: Sequence[str] = (), timeout: float | None = None) -> MaterialisedPoint:
    """The point's disks as standalone qcow2 images in directory (empty or new)."""
    chain = lineage(point, points)
    _check_target(directory, protected)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    work = os.path.join(directory, ".chain")
    result = MaterialisedPoint(point, directory, {}, {}, os.path.join(directory, "domain.xml"), {},
                               [p.id for p in chain])
    layers: dict[str, list[dict[str, str]]] = {}
    try:
        began = time.monotonic()
        # Each restic restore pays a repository open before any data moves: the chain's points
        # are read side by side, then merged in order.
        with ThreadPoolExecutor(max_workers=RESTORE_WORKERS) as pool:
            restored = list(pool.map(lambda item: _restore_one(repo, item[1], os.path.join(work, str(item[0])), timeout),
                                     enumerate(chain)))
        result.restore_seconds = time.monotonic() - began
        began = time.monotonic()
        for files in restored:
            for target in files["disks"]:
                layers.setdefault(target, []).append(_read_json(files["manifests"][target]))
        for target in layers:
            _merge([files["disks"][target] for files in restored], os.path.join(directory, target + ".qcow2"))
        shutil.move(restored[-1]["domain.xml"], result.domain_xml)
        shutil.move(restored[-1]["point.json"], os.path.join(directory, "point.json"))
        result.merge_seconds = time.monotonic() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)
    document = _read_json(os.path.join(directory, "point.json"))
    for target in layers:
        result.disks[target] = os.path.join(directory, target + ".qcow2")
        result.sizes[target] = int(document["disks"][target]["size"])
        result.manifests[target] = blocks.merge(layers[target])
    return result


def _check_target(directory: str, protected: Sequence[str]) -> None:
    real = os.path.realpath(directory)
    for path in protected:
        other = os.path.realpath(path)
        if real == other or real.startswith(other.rstrip("/") + "/") or other.startswith(real.rstrip("/") + "/"):
            raise RestoreRefused("restore directory %s overlaps %s, which the restore must not touch" % (directory, path))
    if os.path.isdir(directory) and os.listdir(directory):
        raise RestoreRefused("restore directory %s is not empty" % directory)


def _restore_one(repo: Repository, point: PointInfo, target: str, timeout: float | None) -> dict:
    # Not restic's --verify: every block of the merged image is compared with the digests taken
    # with the points (MaterialisedPoint.verify), which restore_vm and drills always do.
    repo.restore(point.id, target, timeout=timeout, verify=False)
    found: dict = {"disks": {}, "manifests": {}}
    for root, _dirs, names in os.walk(target):
        for name in names:
            path = os.path.join(root, name)
            if name in POINT_FILES or name == "checkpoint.xml":
                found[name] = path
            elif name.endswith(".blocks.json"):
                found["manifests"][name[:-len(".blocks.json")]] = path
            elif name.endswith(".qcow2"):
                found["disks"][name[:-len(".qcow2")]] = path
    if "point.json" not in found or not found["disks"]:
        raise RestoreRefused("point %s holds no VM point (no point.json or disk)" % point.id[:8])
    return found


def _merge(layers: list[str], image: str) -> None:
    """The full becomes the image; the deltas are stacked on it (each backed by the one before)
    and committed in one pass, each block written once, from the newest delta holding it.
    Cache mode unsafe: a restore is written like a restic restore, without a flush per layer."""
    shutil.move(layers[0], image)
    below = os.path.abspath(image)
    for delta in layers[1:]:
        _qemu_img(["rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", below, delta])
        below = os.path.abspath(delta)
    if len(layers) > 1:
        _qemu_img(["commit", "-q", "-d", "-t", "unsafe", "-f", "qcow2", "-b", os.path.abspath(image), layers[-1]])


def _qemu_img(args: list[str]) -> CommandResult:
    result = run_command(["qemu-img"] + args, timeout=None)
    if not result.ok:
        raise RestoreRefused("qemu-img %s: %s" % (args[0], result.stderr_tail()))
    return result


def check_images(images: dict[str, str]) -> dict[str, str]:
    """qemu-img check of each restored image: target -> problem ("" when clean)."""
    problems = {}
    for target, path in images.items():
        result = run_command(["qemu-img", "check", "-q", "-f", "qcow2", path], timeout=600)
        problems[target] = "" if result.ok else (result.stderr_tail() or result.stdout.strip() or "exit %d" % result.returncode)
    return problems


def isolated_domain_xml(original: str, name: str, disks: dict[str, str]) -> str:
    """A new VM from a point's domain XML: new name and UUID, the restored disks, no network,
    no file or socket path of the original (its console log, its agent socket)."""
    root = ET.fromstring(original)
    root.find("name").text = name
    uuid_node = root.find("uuid")
    if uuid_node is not None:
        uuid_node.text = str(uuidlib.uuid4())
    devices = root.find("devices")
    for element in list(devices):
        if element.tag in ("interface", "hostdev", "redirdev", "filesystem", "console", "serial"):
            devices.remove(element)
        elif element.tag == "channel":
            for source in element.findall("source"):
                element.remove(source)
    for disk in devices.findall("disk"):
        target = disk.find("target").get("dev")
        source = disk.find("source")
        if disk.get("device", "disk") != "disk" or target not in disks:
            devices.remove(disk)
            continue
        disk.set("type", "file")
        for attribute in list(source.attrib):
            del source.attrib[attribute]
        source.set("file", disks[target])
        driver = disk.find("driver")
        if driver is not None:
            driver.set("type", "qcow2")
        for extra in disk.findall("backingStore"):
            disk.remove(extra)
    for graphics in devices.findall("graphics"):
        # A fixed display port of the original would make the copy fail to start beside it.
        graphics.set("autoport", "yes")
        for attribute in ("port", "tlsPort", "websocket"):
            graphics.attrib.pop(attribute, None)
    for element in root.findall("seclabel"):
        root.remove(element)
    for nvram in root.findall("./os/nvram"):  # the original's UEFI variables: libvirt makes new ones from the template
        nvram.text = None
        nvram.attrib.pop("type", None)  # <nvram type='file'><source file=.../></nvram> of newer libvirt
        for child in list(nvram):
            nvram.remove(child)
    return ET.tostring(root, encoding="unicode")


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def choose(points: Sequence[PointInfo], vm: str, point: str = "latest", at: str | None = None) -> PointInfo:
    """A VM's point (by name or UUID): the latest, one by id (prefix), or the newest at or before `at`."""
    mine = [p for p in points if vm in (p.vm, p.vm_name)]
    if not mine:
        raise RestoreRefused("the repository holds no point of VM %s" % vm)
    if at:
        limit = parse_time(at)
        mine = [p for p in mine if p.time <= limit]
        if not mine:
            raise RestoreRefused("VM %s has no point at or before %s" % (vm, at))
    elif point != "latest":
        mine = [p for p in mine if p.id.startswith(point)]
        if len(mine) != 1:
            raise RestoreRefused("VM %s: %s point(s) match id %s" % (vm, len(mine), point))
    return max(mine, key=lambda p: (p.time, p.position))


def already_restored(directory: str, point: PointInfo) -> bool:
    """Whether directory holds this point's restore already (a second run changes nothing)."""
    try:
        document = _read_json(os.path.join(directory, "point.json"))
    except (OSError, ValueError):
        return False
    return document.get("vm") == point.vm and document.get("checkpoint") == point.checkpoint and all(
        os.path.isfile(os.path.join(directory, t + ".qcow2")) for t in document.get("disks", {}))
