# -*- coding: utf-8 -*-
# Private to restorable.backup: the libvirt state of every VM a host-tier job protects, so that a
# stopped or paused VM stays in the audit, marked, instead of silently missing from it.
from __future__ import annotations

from ..core.jobspec import ConfigError, JobConfig
from ..tiers.host.libvirt import LibvirtError, Virsh
from ..tiers.host.options import HostOptions


def vm_states(configs: list[JobConfig]) -> tuple[dict[str, str], list[str]]:
    """({VM name: virsh domstate}, problems) over the host-tier jobs' VM selections."""
    states: dict[str, str] = {}
    problems = []
    for config in configs:
        try:
            options = HostOptions.from_config(config)
            virsh = Virsh(options.libvirt_uri)
            listing = virsh.listing()
            for domain in options.vms.select(listing):
                states[domain.name] = virsh.run("domstate", domain.uuid).stdout.strip() or "unknown"
            for name in options.vms.absent(listing):
                states.setdefault(name, "absent")
        except (ConfigError, LibvirtError, OSError) as exc:
            problems.append("job %s: cannot read the VM states: %s" % (config.dataset, exc))
    return states, problems
