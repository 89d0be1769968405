# -*- coding: utf-8 -*-
# Private to restorable.backup: the host tier's part of a job configuration (its `options`).
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any

from ...core.jobspec import ConfigError, FieldReader
from ...core.layout import HostLayout
from .libvirt import DEFAULT_URI, Disk, Domain, DomainName

MODES = ("full", "incremental", "differential")
DEFAULT_SCRATCH_DIR = HostLayout().scratch_dir


@dataclass
class VmSelection:
    names: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    all: bool = False

    def wants(self, name: str) -> bool:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude):
            return False
        return self.all or name in self.names or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def select(self, domains: list[DomainName]) -> list[DomainName]:
        return sorted((d for d in domains if self.wants(d.name)), key=lambda d: d.name)

    def absent(self, domains: list[DomainName]) -> list[str]:
        """Named VMs this hypervisor neither defines nor runs (they may live on another one)."""
        here = {d.name for d in domains}
        return sorted(n for n in self.names if n not in here)


@dataclass
class HostOptions:
    vms: VmSelection
    disks_include: list[str] = field(default_factory=list)
    disks_exclude: list[str] = field(default_factory=list)
    quiesce: bool = False
    mode: str = "incremental"
    full_every: int | None = None
    libvirt_uri: str = DEFAULT_URI
    scratch_dir: str = DEFAULT_SCRATCH_DIR
    quiesce_max_seconds: int = 60  # the watchdog thaws the guest after this long

    def disks(self, domain: Domain) -> list[Disk]:
        return [d for d in domain.disks
                if (not self.disks_include or d.target in self.disks_include) and d.target not in self.disks_exclude]

    def staging(self, dataset: str, uuid: str) -> str:
        return os.path.join(self.scratch_dir, dataset, uuid)

    @classmethod
    def from_config(cls, config: Any) -> "HostOptions":
        try:
            return _parse(FieldReader(config.options, "options"))
        except ValueError as exc:
            raise ConfigError("job config %s: %s" % (config.source or config.dataset, exc)) from None


def _parse(fields: FieldReader) -> HostOptions:
    vms = fields.sub("vms")
    selection = VmSelection(vms.strings("names"), vms.strings("patterns"), vms.strings("exclude"),
                            vms.get("all", bool, False))
    vms.done()
    if not (selection.names or selection.patterns or selection.all):
        raise ValueError("options.vms: names, patterns or all is required")
    disks = fields.sub("disks")
    options = HostOptions(selection, disks.strings("include"), disks.strings("exclude"))
    disks.done()
    options.quiesce = fields.get("quiesce", bool, False)
    options.mode = fields.get("mode", str, "incremental")
    if options.mode not in MODES:
        raise ValueError("options.mode: expected one of %s, got %r" % (", ".join(MODES), options.mode))
    options.full_every = fields.get("full_every", int)
    options.libvirt_uri = fields.get("libvirt_uri", str, DEFAULT_URI)
    options.scratch_dir = fields.get("scratch_dir", str, DEFAULT_SCRATCH_DIR)
    options.quiesce_max_seconds = fields.get("quiesce_max_seconds", int, 60)
    fields.done()
    return options
