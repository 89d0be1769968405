# -*- coding: utf-8 -*-
"""tiers.host.options: the host tier's part of a job configuration, and the VMs it selects."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.libvirt import Disk, Domain
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.options import HostOptions, VmSelection


def config(options: dict) -> JobConfig:
    return JobConfig.from_dict({"dataset": "vms", "tier": "host", "repository": {"url": "/srv/restic", "password_file": "/pw"},
                                "options": options}, source="/etc/restorable/vms.json")


def test_every_option_is_read():
    options = HostOptions.from_config(config({
        "vms": {"names": ["erp01"], "patterns": ["web-*"], "exclude": ["web-test"], "all": False},
        "disks": {"include": ["vda", "vdb"], "exclude": ["vdb"]}, "quiesce": True, "mode": "differential",
        "full_every": 3, "libvirt_uri": "qemu+ssh://root@hv02/system", "scratch_dir": "/srv/scratch",
        "quiesce_max_seconds": 20}))
    assert options.vms == VmSelection(["erp01"], ["web-*"], ["web-test"], False)
    assert (options.disks_include, options.disks_exclude) == (["vda", "vdb"], ["vdb"])
    assert (options.quiesce, options.mode, options.full_every) == (True, "differential", 3)
    assert (options.libvirt_uri, options.scratch_dir, options.quiesce_max_seconds) == ("qemu+ssh://root@hv02/system", "/srv/scratch", 20)
    assert options.staging("vms", "uuid-1") == "/srv/scratch/vms/uuid-1"


def test_defaults_beside_the_vm_selection():
    options = HostOptions.from_config(config({"vms": {"all": True}}))
    assert (options.mode, options.full_every, options.quiesce) == ("incremental", None, False)
    assert (options.libvirt_uri, options.scratch_dir) == ("qemu:///system", "/var/lib/restorable/scratch")


@pytest.mark.parametrize("options, message", [
    ({}, "options.vms: names, patterns or all is required"),
    ({"vms": {"all": False}}, "options.vms: names, patterns or all is required"),
    ({"vms": {"all": True}, "mode": "weekly"}, "options.mode: expected one of full, incremental, differential, got 'weekly'"),
    ({"vms": {"all": True}, "full_every": "3"}, "options.full_every: expected an integer, got str"),
    ({"vms": {"all": "yes"}}, "options.vms.all: expected a boolean, got str"),
    ({"vms": {"names": ["erp01", 7]}}, r"options.vms.names\[1\]: expected a string, got int"),
    ({"vms": {"all": True}, "paths": ["/srv"]}, "options: unknown option paths"),
    ({"vms": {"all": True, "regex": "web"}}, "options.vms: unknown option regex"),
    ({"vms": {"all": True}, "disks": {"only": ["vda"]}}, "options.disks: unknown option only"),
])
def test_errors_name_the_file_and_the_field(options, message):
    with pytest.raises(ConfigError, match="^job config /etc/restorable/vms.json: " + message + "$"):
        HostOptions.from_config(config(options))


def domain(name: str, *targets: str) -> Domain:
    return Domain(uuid="uuid-" + name, name=name, state="running",
                  disks=[Disk(t, "/images/%s-%s.qcow2" % (name, t), "qcow2", 1 << 30) for t in targets])


HERE = [domain(n, "vda") for n in ("web-02", "erp01", "web-test", "db01", "web-01")]


def names(selection: VmSelection) -> list[str]:
    return [d.name for d in selection.select(HERE)]


def test_names_patterns_and_all_select_vms_by_name_sorted():
    assert names(VmSelection(names=["erp01", "db01"])) == ["db01", "erp01"]
    assert names(VmSelection(patterns=["web-*"])) == ["web-01", "web-02", "web-test"]
    assert names(VmSelection(names=["db01"], patterns=["web-0?"])) == ["db01", "web-01", "web-02"]
    assert names(VmSelection(all=True)) == ["db01", "erp01", "web-01", "web-02", "web-test"]
    assert names(VmSelection(patterns=["WEB-*"])) == [], "names match case-sensitively"


def test_exclude_wins_over_names_patterns_and_all():
    assert names(VmSelection(patterns=["web-*"], exclude=["web-test"])) == ["web-01", "web-02"]
    assert names(VmSelection(all=True, exclude=["web-*", "db01"])) == ["erp01"]
    assert names(VmSelection(names=["erp01"], exclude=["erp*"])) == []


def test_absent_lists_named_vms_this_hypervisor_does_not_have():
    selection = VmSelection(names=["erp01", "mail01", "crm01"], patterns=["nowhere-*"])
    assert selection.absent(HERE) == ["crm01", "mail01"]
    assert VmSelection(all=True).absent(HERE) == []


def test_disk_selection_by_target():
    vm = domain("erp01", "vda", "vdb", "sdc")
    assert [d.target for d in HostOptions(VmSelection(all=True)).disks(vm)] == ["vda", "vdb", "sdc"]
    assert [d.target for d in HostOptions(VmSelection(all=True), disks_exclude=["vdb"]).disks(vm)] == ["vda", "sdc"]
    assert [d.target for d in HostOptions(VmSelection(all=True), ["vda", "vdb"], ["vdb"]).disks(vm)] == ["vda"]
