# -*- coding: utf-8 -*-
# Private to restorable.backup: restore drills of array datasets, from the tape library.
"""Parameters (the drill module's, or a scheduled drill's)::

    {tier: array, dataset, drill, library_config, group (default: dataset), volumes: [...],
     point: latest | <id>, recall: true, sandbox, checks: [...], profile: {type: postgresql, ...},
     rpo, rto, expect_volumes: [names] | count, protected_paths, timeout}

Layers: ``catalog`` (the point's chain is complete in the catalog, base first), ``restore`` (every
stream of the chain read from its cartridges into ``btrfs receive`` in the sandbox), ``media``
(while reading: each cartridge's label and every chunk's checksum; a damaged cartridge fails the
restore naming its barcode), ``freshness`` (the newest point on tape against the RPO), ``content``
(every volume restored; a PostgreSQL point's backup_label is the one its manifest recorded),
``application`` (the profile's restore step: PostgreSQL starts from the restored data directory on
its own socket, no TCP, and passes pg_amcheck). The RTO is the restore plus the application start.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import time
from typing import Any, Sequence

from ...drill.application import SCRATCH_DIR, PostgreSQLApplicationCheck, check_settings
from ...drill.engine import (FAILED, OK, SKIPPED, DrillEngine, DrillError, Layer, RecoveryPoint, RestoreDriver,
                             RestoreStats, check_sandbox, hours)
from ...snapshot.btrfs import BtrfsSnapshotProvider
from ...snapshot.provider import SnapshotError
from ...storage.tape.library import open_library
from ...storage.tape.media import CartridgeDamaged, TapeError
from ..drill_params import check_only_record, spec_from_params
from ..cdp.points import require_btrfs
from .restore import ChainReceiver, RestoreError, protected_paths, recall_for, relocate_postgresql
from .thin import point_time

DEFAULT_CHECKS = ["catalog", "media", "freshness", "content", "application"]


def _label_of(manifest: dict[str, Any]) -> str | None:
    """The backup_label a PostgreSQL point's manifest recorded (None for other profiles)."""
    try:
        return json.loads(manifest.get("label") or "null", strict=False).get("backup_label")
    except (ValueError, AttributeError):
        return None


class ArrayRestoreDriver(RestoreDriver):
    """Points of one group in a tape library, restored with btrfs receive into the sandbox."""

    tier = "array"

    def __init__(self, library: Any, group: str, point: str = "latest", recall: bool = False,
                 profile: dict[str, Any] | None = None, rpo_seconds: float | None = None,
                 expect_volumes: Any = None, timeout: float | None = None) -> None:
        self.library = library
        self.group = group
        self.point_id = point or "latest"
        self.recall = recall
        self.profile = dict(profile or {})
        self.rpo_seconds = rpo_seconds
        self.expect_volumes = expect_volumes
        self.timeout = timeout
        self.records: dict[str, dict[str, Any]] = {}
        self.chain: list[dict[str, Any]] = []
        self.copies: dict[str, str] = {}
        self.identities: dict[str, str | None] = {}  # volume: snapshot UUID its copy carries
        self.reads: list[dict[str, Any]] = []
        self.recalled: list[str] = []
        self.chosen: RecoveryPoint | None = None

    # -- points ---------------------------------------------------------------------------------

    def points(self) -> list[RecoveryPoint]:
        try:
            records = self.library.points(self.group)
        except TapeError as exc:
            raise DrillError("tape library catalog: %s" % exc) from None
        self.records = {record["point"]: record for record in records}
        return [RecoveryPoint(record["point"], point_time(record["point"]), record["point"][:15], [],
                              {"kind": record.get("kind"), "chain": record.get("chain")}) for record in records]

    def choose_point(self, points: Sequence[RecoveryPoint], choice: dict[str, Any],
                     now: datetime.datetime) -> RecoveryPoint | None:
        if self.point_id == "latest":
            self.chosen = super().choose_point(points, choice, now)
            return self.chosen
        found = [point for point in points if point.id == self.point_id]
        if not found:
            raise DrillError("point %s of group %s is not in the library's catalog" % (self.point_id, self.group))
        self.chosen = found[0]
        return self.chosen

    # -- layers ---------------------------------------------------------------------------------

    def repository_layers(self, checks: Sequence[str]) -> list[Layer]:
        """catalog: the chosen point's chain, complete from its full point on."""
        return [self.catalog()] if "catalog" in checks and self.chosen is not None else []

    def catalog(self) -> Layer:
        began = time.monotonic()
        point = self.chosen.id
        try:
            self.chain = self.library.chain(self.group, point)
            cartridges = self.library.cartridges_for(self.chain)
        except TapeError as exc:
            return Layer("catalog", FAILED, "point %s: %s" % (point, exc), time.monotonic() - began)
        details = {"chain": [record["point"] for record in self.chain],
                   "streams": sum(len(record.get("streams") or []) for record in self.chain),
                   "cartridges": [{"barcode": cart["barcode"], "location": cart.get("location")} for cart in cartridges]}
        return Layer("catalog", OK, "point %s: chain of %d point(s) from full %s, %d stream(s) on cartridge(s) %s" % (
            point, len(self.chain), self.chain[0]["point"], details["streams"],
            ", ".join(cart["barcode"] for cart in cartridges)), time.monotonic() - began, details)

    def restore(self, point: RecoveryPoint, target: str, sample: dict[str, Any]) -> RestoreStats:
        try:
            if not self.chain or self.chain[-1]["point"] != point.id:
                self.chain = self.library.chain(self.group, point.id)
            check_sandbox(target, protected_paths(self.chain[-1]))
            require_btrfs(target, "sandbox")
            self.recalled = recall_for(self.library, self.chain, self.recall)
            receiver = ChainReceiver(self.library, target)
            try:
                self.copies = receiver.restore(self.chain)
            finally:
                self.reads = receiver.reads
                self.identities = receiver.identities
            relocate_postgresql(self.copies)
        except CartridgeDamaged as exc:
            raise DrillError("media: cartridge %s is damaged: %s" % (exc.barcode, exc)) from None
        except (TapeError, RestoreError, SnapshotError, OSError) as exc:
            raise DrillError("restore of point %s: %s" % (point.id, exc)) from None
        return RestoreStats()

    def verify_layers(self, point: RecoveryPoint, target: str, checks: Sequence[str]) -> list[Layer]:
        layers = []
        if "media" in checks:
            layers.append(self.media())
        if "freshness" in checks:
            layers.append(self.freshness())
        if "content" in checks:
            layers.append(self.content(point))
        return layers

    def media(self) -> Layer:
        cartridges: list[str] = []
        for read in self.reads:
            cartridges += [barcode for barcode in read.get("cartridges") or [] if barcode not in cartridges]
        size = sum(int(read.get("bytes") or 0) for read in self.reads)
        recalled = " (recalled from the vault: %s)" % ", ".join(self.recalled) if self.recalled else ""
        return Layer("media", OK, "%d stream(s), %d bytes read from cartridge(s) %s: labels and chunk checksums "
                     "verified%s" % (len(self.reads), size, ", ".join(cartridges), recalled),
                     details={"cartridges": cartridges, "bytes": size, "recalled": self.recalled,
                              "streams": [{"stream": r.get("stream"), "sha256": r.get("sha256"), "bytes": r.get("bytes")}
                                          for r in self.reads]})

    def freshness(self) -> Layer:
        """The newest point on tape against the RPO."""
        newest = max(self.records)
        age = max(0.0, (datetime.datetime.now(datetime.timezone.utc) - point_time(newest)).total_seconds())
        details = {"newest": newest, "age_seconds": round(age, 1), "rpo_seconds": self.rpo_seconds}
        if self.rpo_seconds is not None and age > self.rpo_seconds:
            return Layer("freshness", FAILED, "the newest point on tape %s is %s old, beyond the RPO of %s" % (
                newest, hours(age), hours(self.rpo_seconds)), details=details)
        return Layer("freshness", OK, "the newest point on tape %s is %s old%s" % (
            newest, hours(age), ", within the RPO of %s" % hours(self.rpo_seconds) if self.rpo_seconds else ""),
            details=details)

    def content(self, point: RecoveryPoint) -> Layer:
        """Every volume of the point restored (and as many as expected); a PostgreSQL label intact."""
        manifest = self.chain[-1].get("manifest") or {}
        names = sorted(os.path.basename(volume) for volume in self.copies)
        problems = ["volume %s was restored empty" % volume for volume, copy in sorted(self.copies.items())
                    if not os.listdir(copy)]
        expected = self.expect_volumes
        if isinstance(expected, int) and not isinstance(expected, bool) and expected != len(names):
            problems.append("%d volume(s) restored, %d expected" % (len(names), expected))
        elif isinstance(expected, list) and sorted(os.path.basename(str(name)) for name in expected) != names:
            problems.append("volumes %s restored, %s expected" % (", ".join(names), ", ".join(map(str, expected))))
        label = _label_of(manifest)
        proven = sorted(os.path.basename(volume) for volume, uuid in self.identities.items() if uuid)
        details = {"volumes": names, "backup_label": bool(label), "identical_to_snapshot": proven}
        if label is not None and not problems:
            problems += self._label_problems(label)
        if problems:
            return Layer("content", FAILED, "point %s: %s" % (point.id, "; ".join(problems)), details=details)
        return Layer("content", OK, "point %s: volume(s) %s restored%s%s" % (
            point.id, ", ".join(names),
            ", each the very snapshot exported (received UUID)" if proven == names else "",
            ", the backup_label is the one recorded at the snapshot" if label else ""), details=details)

    def _label_problems(self, label: str) -> list[str]:
        for copy in self.copies.values():
            for directory, dirs, files in os.walk(copy):
                if "backup_label" in files and "PG_VERSION" in files:
                    with open(os.path.join(directory, "backup_label"), encoding="utf-8") as handle:
                        if handle.read() != label:
                            return ["the restored backup_label differs from the one recorded at the snapshot"]
                    return []
                dirs[:] = [name for name in dirs if name != "pg_wal"]
        return ["no PostgreSQL data directory with a backup_label among the restored volumes"]

    def application(self, point: RecoveryPoint, target: str) -> Layer:
        """The profile's restore step: PostgreSQL starts from the restored data directory."""
        kind = self.profile.get("type")
        if kind != "postgresql":
            return Layer("application", SKIPPED, "no application check for a %s profile on the array tier" % (
                kind or "missing"))
        settings = dict(check_settings(self.profile, "postgresql"), mode="backup_api")
        check = PostgreSQLApplicationCheck(settings, os.path.join(target, SCRATCH_DIR), self.timeout)
        layer = check.check(None, target)
        layer.details["mode"] = "snapshot restored from tape"
        return layer


def _failed(spec: Any, reason: str) -> dict[str, Any]:
    record = check_only_record(spec)
    record.update(result="failed", reason=reason)
    return record


def array_drill(params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    """The drill record of one array dataset (see the module docstring)."""
    volumes = [os.path.normpath(str(volume)) for volume in params.get("volumes") or []]
    btrfs = BtrfsSnapshotProvider()
    protected = list(params.get("protected_paths") or []) + volumes + [
        btrfs.snapshot_root(volume, params.get("snapshot_dir")) for volume in volumes]
    spec = spec_from_params(dict(params, tier="array", source_host=params.get("source_host") or socket.gethostname(),
                                 checks=params.get("checks") or DEFAULT_CHECKS, protected_paths=protected))
    if check_only:
        return check_only_record(spec)
    if not params.get("library_config"):
        return _failed(spec, "dataset %s exports to no tape library: nothing on tape to drill" % spec.dataset)
    try:
        library = open_library(params["library_config"])
    except (TapeError, OSError) as exc:
        return _failed(spec, "tape library: %s" % exc)
    driver = ArrayRestoreDriver(library, params.get("group") or params["dataset"], str(params.get("point") or "latest"),
                                bool(params.get("recall")), params.get("profile"), spec.rpo_seconds,
                                params.get("expect_volumes"), params.get("timeout"))
    try:
        record = DrillEngine(spec, driver).run()
    finally:
        library.close()
    if driver.chain:
        record["chain"] = [entry["point"] for entry in driver.chain]
        record["protected_paths"] = sorted(set(protected + protected_paths(driver.chain[-1])))
    return record
