#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: s3_provision
short_description: Set up the S3 targets of the play's hosts from the controller
version_added: 0.1.0
description:
  - For every S3 target that the agent datasets of the play's hosts use, creates the bucket and
    sets versioning, Object Lock default retention and lifecycle as C(restorable_targets) declares
    (unless the target says C(provision=false)).
  - For targets with C(scoped_credentials=true), creates one IAM user per host whose policy allows
    only the host's own prefix, and keeps its access key in the controller's credential store
    (C(restorable_controller.credential_store)); the hosts get those keys, never the target's own.
  - Runs on the controller with boto3; no host is contacted. Run it once per play (C(run_once)).
author:
  - Restorable maintainers (@restorable)
options:
  hosts:
    description: Inventory hosts whose targets to set up. Defaults to the play's hosts.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Reads the buckets and users and reports what would change.
  diff_mode:
    support: full
    description: Shows the bucket settings before and after.
  idempotent:
    support: full
    description: A second run finds everything in place.
requirements:
  - boto3 on the controller
notes:
  - Scoped credentials need an IAM API at the target's endpoint (AWS, or a compatible server).
"""

EXAMPLES = r"""
- name: Set up S3 buckets and per-host credentials
  restorable.backup.s3_provision:
  run_once: true
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["create bucket acme-backup", "set Object Lock default retention of bucket acme-backup to compliance for 30 days"]
"""
