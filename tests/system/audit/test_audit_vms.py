# -*- coding: utf-8 -*-
"""The audit's VM states on a real libvirtd (the session's hv01): a host-tier job's VM that is
defined but not running is reported `shut off`, one it names that the hypervisor does not know
`absent`, so the audit keeps both, marked."""
from __future__ import annotations

import uuid

from ansible_collections.restorable.backup.plugins.module_utils.audit.vms import vm_states
from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig


def test_a_stopped_vm_and_a_missing_one_are_reported(hypervisors, tmp_path) -> None:
    daemon = hypervisors.hv01
    name = "audit-stopped-%s" % uuid.uuid4().hex[:6]
    xml = tmp_path / "domain.xml"
    xml.write_text("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                   "<os><type arch='x86_64'>hvm</type></os></domain>" % name)
    daemon.virsh("define", str(xml))
    try:
        job = JobConfig(dataset="vms", tier="host", options={"vms": {"names": [name, "audit-gone01"]}, "libvirt_uri": daemon.uri})
        states, problems = vm_states([job])
    finally:
        daemon.virsh("undefine", name)
    assert problems == []
    assert states == {name: "shut off", "audit-gone01": "absent"}
