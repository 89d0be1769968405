#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: replica_keys
short_description: Make the SSH key pairs of the replicated CDP datasets on the controller
version_added: 0.1.0
description:
  - For every enabled dataset of the play's hosts with C(tier=cdp), C(source.type=btrfs) and a
    C(replica), makes one ed25519 key pair (C(ssh-keygen), no passphrase, comment
    C(restorable-replica:<source>/<dataset>)) unless the pair exists, and keeps it in the
    controller's credential store (C(restorable_controller.credential_store) of the source host),
    below C(replica/), private key mode 0600, directories 0700.
  - The source host gets the private key to send its points with; the replica host authorizes the
    public key for that dataset's directory only (M(restorable.backup.replica_access)).
  - A pair whose public key file was lost gets it back from its private key.
  - Keys are never removed, also not when their dataset is gone from the policy or disabled;
    deleting credentials is the operator's call (remove the files from the store).
  - Runs on the controller; no host is contacted. Run it once per play (C(run_once)).
  - No private key appears in the result or the diff.
author:
  - Restorable maintainers (@restorable)
options:
  hosts:
    description: Inventory hosts whose datasets get key pairs. Defaults to every host of the play.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Reports the pairs it would create; writes nothing.
  diff_mode:
    support: full
    description: Shows the names (C(source/dataset)) of the pairs in each store before and after.
  idempotent:
    support: full
    description: A second run finds every pair in place.
requirements:
  - ssh-keygen (OpenSSH) on the controller
seealso:
  - module: restorable.backup.replica_access
"""

EXAMPLES = r"""
- name: Make the key pairs of the replicated CDP datasets
  restorable.backup.replica_keys:
  run_once: true
"""

RETURN = r"""
created:
  description: The pairs created (or that would be, in check mode), as C(source/dataset).
  returned: always
  type: list
  elements: str
  sample: ["web01/data", "web02/data"]
repaired:
  description: The pairs whose lost public key file was written again from the private key.
  returned: always
  type: list
  elements: str
  sample: []
"""
