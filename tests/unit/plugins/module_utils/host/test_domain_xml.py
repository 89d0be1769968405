# -*- coding: utf-8 -*-
"""The XML the host tier hands libvirt: the backup job and checkpoint of a point (capture), and
the restored VM defined beside the original, sharing nothing with it (restore)."""
from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.capture import (
    PointDirectory, backup_xml, checkpoint_xml)
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.libvirt import Disk
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.restore import isolated_domain_xml

VDA = Disk("vda", "/var/lib/libvirt/images/erp01.qcow2", "qcow2", 1 << 30)
VDB = Disk("vdb", "/var/lib/libvirt/images/erp01-data.qcow2", "qcow2", 1 << 30)
POINT = PointDirectory("/var/lib/restorable/scratch/vms/uuid-1")


def disks_of(root: ET.Element) -> dict[str, ET.Element]:
    return {d.get("name"): d for d in root.findall("./disks/disk")}


# --- capture ------------------------------------------------------------------------------------

def test_a_full_backup_job_has_no_incremental_element():
    root = ET.fromstring(backup_xml([VDA], [VDA], POINT, ""))
    assert (root.tag, root.get("mode"), root.find("incremental")) == ("domainbackup", "push", None)
    (vda,) = root.findall("./disks/disk")
    assert (vda.get("name"), vda.get("backup"), vda.get("type")) == ("vda", "yes", "file")
    assert vda.find("target").get("file") == "/var/lib/restorable/scratch/vms/uuid-1/disks/vda.qcow2"
    assert vda.find("driver").get("type") == "qcow2"


def test_an_incremental_job_names_its_base_and_skips_unselected_disks():
    root = ET.fromstring(backup_xml([VDA], [VDA, VDB], POINT, "rbk-vms-20261201T010000-ab12"))
    assert root.find("incremental").text == "rbk-vms-20261201T010000-ab12"
    disks = disks_of(root)
    assert disks["vda"].get("backup") == "yes"
    assert (disks["vdb"].get("backup"), list(disks["vdb"])) == ("no", [])


def test_paths_and_names_are_escaped():
    odd = PointDirectory("/srv/scratch & co/<vms>/it's \"here\"")
    root = ET.fromstring(backup_xml([VDA], [VDA], odd, "base&<1>"))
    assert root.find("incremental").text == "base&<1>"
    assert disks_of(root)["vda"].find("target").get("file") == odd.disk("vda")


def test_a_checkpoint_covers_the_selected_disks_only():
    text = checkpoint_xml("rbk-vms-1", "restorable vms <incremental> & more", [VDB], [VDA, VDB])
    root = ET.fromstring(text)
    assert (root.tag, root.find("name").text) == ("domaincheckpoint", "rbk-vms-1")
    assert root.find("description").text == "restorable vms <incremental> & more"
    assert {n: d.get("checkpoint") for n, d in disks_of(root).items()} == {"vda": "no", "vdb": "bitmap"}


# --- restore ------------------------------------------------------------------------------------

ORIGINAL_UUID = "5f0c8e1e-2b7a-4c1e-9d57-0d7c3a1f2b01"
DOMAIN = """<domain type='kvm'>
  <name>erp01</name>
  <uuid>%s</uuid>
  <memory unit='KiB'>1048576</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/erp01_VARS.fd</nvram>
  </os>
  <seclabel type='dynamic' model='selinux'/>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/erp01.qcow2' index='2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/var/lib/libvirt/images/base.qcow2'/></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='/dev/vg0/erp01-data'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/erp01-scratch.qcow2'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/srv/iso/install.iso'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <interface type='network'><source network='default'/><mac address='52:54:00:aa:bb:cc'/></interface>
    <serial type='file'><source path='/var/log/erp01-serial.log'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/erp01.org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <graphics type='vnc' port='-1'/>
  </devices>
</domain>
""" % ORIGINAL_UUID
RESTORED = {"vda": "/var/tmp/drill/vms/vda.qcow2", "vdb": "/var/tmp/drill/vms/vdb.qcow2"}


def restored() -> tuple[str, ET.Element]:
    text = isolated_domain_xml(DOMAIN, "erp01-drill", RESTORED)
    return text, ET.fromstring(text)


def test_the_restored_vm_has_a_new_name_and_a_new_uuid():
    _text, root = restored()
    assert root.find("name").text == "erp01-drill"
    new = uuid.UUID(root.find("uuid").text)
    assert str(new) != ORIGINAL_UUID and new != uuid.UUID(restored()[1].find("uuid").text)


def test_the_restored_vm_has_no_network_and_no_path_of_the_original():
    text, root = restored()
    devices = root.find("devices")
    assert not devices.findall("interface") and not devices.findall("serial") and not devices.findall("console")
    (channel,) = devices.findall("channel")
    assert channel.find("source") is None and channel.find("target").get("name") == "org.qemu.guest_agent.0"
    for original in ("/var/lib/libvirt", "/dev/vg0", "/srv/iso", "/var/log/erp01", "52:54:00"):
        assert original not in text
    # UEFI variables: libvirt makes the new VM its own from the template, never writes the original's.
    assert root.find("./os/nvram").attrib == {"template": "/usr/share/OVMF/OVMF_VARS_4M.fd"}
    assert not root.find("./os/nvram").text and root.find("./os/loader").text == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert root.find("seclabel") is None


def test_the_restored_vm_boots_from_the_restored_files_only():
    _text, root = restored()
    disks = root.findall("./devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"], "vdc not restored, the cdrom dropped"
    for disk in disks:
        target = disk.find("target").get("dev")
        assert (disk.get("type"), disk.get("device")) == ("file", "disk")
        assert disk.find("source").attrib == {"file": RESTORED[target]}
        assert disk.find("driver").get("type") == "qcow2"
        assert disk.find("backingStore") is None


def test_an_nvram_file_source_of_newer_libvirt_is_dropped_too():
    original = DOMAIN.replace(
        "<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/erp01_VARS.fd</nvram>",
        "<nvram type='file'><source file='/var/lib/libvirt/qemu/nvram/erp01_VARS.fd'/></nvram>")
    nvram = ET.fromstring(isolated_domain_xml(original, "erp01-drill", RESTORED)).find("./os/nvram")
    assert (nvram.attrib, list(nvram), nvram.text) == ({}, [], None)
