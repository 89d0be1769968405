# -*- coding: utf-8 -*-
# Private to restorable.backup: the array tier's job options (what the planner writes in `options`).
"""Options of an array dataset::

    volumes: [/srv/pg, /srv/pgts]           # btrfs subvolumes, snapshotted in ONE quiesce window
    provider: btrfs                         # the only provider that runs on hosts in this version
    snapshot_dir: null                      # default beside each volume (snapshot/provider.py)
    retention: {last: 10, hourly: 24, daily: 7, max_age: 1d}   # keep rules (core/retention.py)
    thinning: [{older_than: 1h, keep_every: 15m}]               # optional (tiers/cdp/thinning.py)
    rpo: 15m                                # optional
    export: {library_config: /etc/restorable/tape/vtl01.json, pool: daily, every: 1, chain_length: 7}

A snapshot stays on the storage host while a keep rule or a thinning band keeps it; with neither,
every snapshot stays (thinning is opt-in: deleting recovery points is never a default).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ...core.jobspec import RETENTION_KEYS, ConfigError, FieldReader
from ..cdp.thinning import ThinRule, read_thinning_rules

PROVIDERS = ("btrfs",)
# Accepted by the policy schema, refused on hosts: no host-side implementation in this version.
PLANNED_PROVIDERS = ("ebs", "lvm_thin", "zfs")
DEFAULT_EVERY = 1
DEFAULT_CHAIN_LENGTH = 7


@dataclass
class ExportOptions:
    """Every `every`-th snapshot goes to `pool` of the library; chains of `chain_length` points."""

    library_config: str
    pool: str
    every: int = DEFAULT_EVERY
    chain_length: int = DEFAULT_CHAIN_LENGTH


@dataclass
class ArrayOptions:
    volumes: list[str]
    provider: str = "btrfs"
    snapshot_dir: str | None = None
    retention: dict[str, Any] = field(default_factory=dict)
    thinning: list[ThinRule] = field(default_factory=list)
    rpo: int | None = None
    export: ExportOptions | None = None

    @property
    def thins(self) -> bool:
        """Whether any rule may delete a snapshot."""
        return bool(self.retention or self.thinning)


def _absolute(path: str, where: str) -> str:
    if not os.path.isabs(path):
        raise ValueError("%s: expected an absolute path, got %r" % (where, path))
    return os.path.normpath(path)


def _positive(fields: FieldReader, key: str, default: int) -> int:
    value = fields.get(key, int, default)
    if value < 1:
        raise ValueError("%s: expected at least 1, got %d" % (fields.name(key), value))
    return value


def _volumes(fields: FieldReader) -> list[str]:
    volumes = [_absolute(path, "%s[%d]" % (fields.name("volumes"), index))
               for index, path in enumerate(fields.strings("volumes"))]
    if not volumes:
        raise ValueError("%s: at least one volume is required" % fields.name("volumes"))
    if len(set(volumes)) != len(volumes):
        raise ValueError("%s: a volume is listed twice" % fields.name("volumes"))
    names = [os.path.basename(path) for path in volumes]
    if len(set(names)) != len(names):
        # Snapshots and restores name each volume's copy by its last path component.
        raise ValueError("%s: the volumes' names (last path components) must differ" % fields.name("volumes"))
    return volumes


def _provider(fields: FieldReader) -> str:
    provider = fields.get("provider", str, "btrfs")
    if provider in PLANNED_PROVIDERS:
        raise ValueError("%s: %s is accepted by the policy schema but cannot run in this version of the array tier "
                         "(available: %s)" % (fields.name("provider"), provider, ", ".join(PROVIDERS)))
    if provider not in PROVIDERS:
        raise ValueError("%s: unknown provider %r (available: %s)" % (
            fields.name("provider"), provider, ", ".join(PROVIDERS)))
    return provider


def _retention(fields: FieldReader) -> dict[str, Any]:
    retention: dict[str, Any] = {}
    for key in RETENTION_KEYS:
        value = fields.duration(key) if key == "max_age" else fields.get(key, int)
        if value is not None:
            if value < 0:
                raise ValueError("%s: cannot be negative" % fields.name(key))
            retention[key] = value
    fields.done()
    return retention


def _export(fields: FieldReader) -> ExportOptions | None:
    if not fields.data:
        return None
    export = ExportOptions(_absolute(fields.get("library_config", str, required=True), fields.name("library_config")),
                           fields.get("pool", str, required=True), _positive(fields, "every", DEFAULT_EVERY),
                           _positive(fields, "chain_length", DEFAULT_CHAIN_LENGTH))
    fields.done()
    return export


def parse_options(fields: FieldReader) -> ArrayOptions:
    """The options of `fields` (the job's `options`); ValueError naming the field."""
    options = ArrayOptions(_volumes(fields), _provider(fields))
    snapshot_dir = fields.get("snapshot_dir", str)
    options.snapshot_dir = _absolute(snapshot_dir, fields.name("snapshot_dir")) if snapshot_dir else None
    for volume in options.volumes:
        if options.snapshot_dir and (options.snapshot_dir + "/").startswith(volume + "/"):
            raise ValueError("%s: the snapshots cannot live inside volume %s" % (fields.name("snapshot_dir"), volume))
    options.retention = _retention(fields.sub("retention"))
    options.thinning = read_thinning_rules(fields)
    options.rpo = fields.duration("rpo")
    options.export = _export(fields.sub("export"))
    fields.done()
    return options


def options_from_config(config: Any) -> ArrayOptions:
    """The options of a job configuration; ConfigError naming the file and the field."""
    try:
        return parse_options(FieldReader(config.options, "options"))
    except ValueError as exc:
        raise ConfigError("job config %s: %s" % (config.source or config.dataset, exc)) from None
