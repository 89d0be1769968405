# -*- coding: utf-8 -*-
# Private to restorable.backup: the host tier (whole VMs backed up from the KVM/libvirt hypervisor).
