#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: snapshot
short_description: Application-consistent snapshots of a consistency group of volumes
version_added: 0.1.0
description:
  - Takes one recovery point of a group of volumes (the array tier's C(volumes)), lists the group's
    recovery points, or deletes one.
  - A new recovery point snapshots ALL volumes inside one quiesce window of the consistency profile
    (PostgreSQL backup API, MariaDB global read lock, fsfreeze), measures the window, seals the
    snapshots read-only and writes a manifest beside the snapshots of every volume and a status
    file C(<status_dir>/snapshot-<name>.json).
  - With a PostgreSQL profile the data directory's snapshot holds the backup_label, tablespace_map
    and the WAL from the backup's start to its stop, so a copy of it starts without a WAL archive.
  - When a step fails every snapshot of the attempt is deleted; with C(on_failure=crash_consistent) in O(consistency)
    a snapshot whose quiesce failed is kept and recorded as not consistent.
  - Scheduling and the export to a tape library come with the array tier; this module is the
    on-demand entry of the same engine.
author:
  - Restorable maintainers (@restorable)
options:
  name:
    description: Name of the group (status and lock files are named after it).
    type: str
    required: true
  volumes:
    description: Volumes snapshotted together; btrfs subvolumes for O(provider=btrfs).
    type: list
    elements: path
    required: true
  provider:
    description: Snapshot provider.
    type: str
    choices: [btrfs]
    default: btrfs
  snapshot_dir:
    description:
      - Directory holding one directory per volume with its recovery points, on the volumes' filesystem.
      - Default C(<volume parent>/.restorable-snapshots) for each volume.
    type: path
  consistency:
    description:
      - A consistency profile as in the policy (C(type), C(on_failure), C(max_freeze), C(postgresql),
        C(mariadb), C(fsfreeze)); default C(type=none), crash-consistent.
      - PostgreSQL may also name C(data_directory) when the volumes hold several clusters.
      - Passwords go in O(postgresql_password) and O(mariadb_password), never in here.
    type: dict
  postgresql_password:
    description: Password of the PostgreSQL role of the profile.
    type: str
  mariadb_password:
    description: Password of the MariaDB user of the profile.
    type: str
  status_dir:
    description: Where the status, lock and watchdog log are written.
    type: path
    default: /var/lib/restorable
  metrics_dir:
    description:
      - Where the group's node_exporter textfile C(restorable_snapshot-<name>.prom) is written after every
        recovery point it takes (or fails to take).
      - Default C(<status_dir>/metrics), where the backup jobs of the host write theirs.
    type: path
  action:
    description: Take a recovery point, list them, or delete O(recovery_point).
    type: str
    choices: [create, list, delete]
    default: create
  recovery_point:
    description: The recovery point id to delete (O(action=delete)).
    type: str
attributes:
  check_mode:
    support: full
    description: Reports the recovery point it would take or delete; creates and deletes nothing.
  diff_mode:
    support: none
    description: Snapshots have no diff.
  idempotent:
    support: partial
    description: O(action=create) takes a new recovery point every time; list and delete are idempotent.
"""

EXAMPLES = r"""
- name: Snapshot the database and its log volume together, PostgreSQL in backup mode
  restorable.backup.snapshot:
    name: pg-main
    volumes: [/srv/pg, /srv/pglogs]
    consistency:
      type: postgresql
      max_freeze: 30s
      postgresql: {mode: backup_api, host: /var/run/postgresql, user: backup}
    postgresql_password: "{{ vault_pg_backup_password }}"
  register: recovery_point

- name: List the group's recovery points
  restorable.backup.snapshot:
    name: pg-main
    volumes: [/srv/pg, /srv/pglogs]
    action: list

- name: Delete the oldest one
  restorable.backup.snapshot:
    name: pg-main
    volumes: [/srv/pg, /srv/pglogs]
    action: delete
    recovery_point: 20261125T021500.123456Z
"""

RETURN = r"""
manifest:
  description: The recovery point taken (O(action=create)); in check mode the plan, without C(consistent).
  returned: success and O(action=create)
  type: dict
  sample: {"id": "20261125T021500.123456Z", "group": "pg-main", "provider": "btrfs", "profile": "postgresql",
           "volumes": [{"volume": "/srv/pg", "snapshot": "/srv/.restorable-snapshots/pg/20261125T021500.123456Z"}],
           "consistent": true, "reason": "", "freeze_seconds": 0.084, "label": "{\"backup_label\": \"START WAL ...\"}"}
recovery_points:
  description: Manifests of the group's recovery points, oldest first.
  returned: O(action=list)
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.common.locks import LockBusy
from ansible_collections.restorable.backup.plugins.module_utils.consistency.base import QuiesceFailed
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import DEFAULT_STATUS_DIR
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.btrfs import provider_from_name
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.group import (
    SnapshotGroup, consistency_with_passwords, group_snapshot_from_config)
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.provider import SnapshotError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            volumes=dict(type="list", elements="path", required=True),
            provider=dict(type="str", choices=["btrfs"], default="btrfs"),
            snapshot_dir=dict(type="path"),
            consistency=dict(type="dict"),
            postgresql_password=dict(type="str", no_log=True),
            mariadb_password=dict(type="str", no_log=True),
            status_dir=dict(type="path", default=DEFAULT_STATUS_DIR),
            metrics_dir=dict(type="path"),
            action=dict(type="str", choices=["create", "list", "delete"], default="create"),
            recovery_point=dict(type="str"),
        ),
        required_if=[("action", "delete", ["recovery_point"])],
        supports_check_mode=True,
    )
    params = module.params
    try:
        consistency = consistency_with_passwords(params["consistency"], {
            "postgresql": params["postgresql_password"], "mariadb": params["mariadb_password"]})
        group = SnapshotGroup(params["name"], params["volumes"], params["snapshot_dir"])
        engine = group_snapshot_from_config(group, provider_from_name(params["provider"]), consistency,
                                            params["status_dir"],
                                            params["metrics_dir"] or os.path.join(params["status_dir"], "metrics"))
        if params["action"] == "list":
            module.exit_json(changed=False, recovery_points=engine.recovery_points())
        if params["action"] == "delete":
            exists = any(rp["id"] == params["recovery_point"] for rp in engine.recovery_points())
            deleted = exists and (module.check_mode or engine.delete(params["recovery_point"]))
            module.exit_json(changed=bool(deleted), recovery_point=params["recovery_point"])
        if module.check_mode:
            module.exit_json(changed=True, manifest=engine.plan())
        module.exit_json(changed=True, manifest=engine.take())
    except (SnapshotError, QuiesceFailed, LockBusy, OSError, ValueError) as exc:
        module.fail_json(msg="snapshot of group %s: %s" % (params["name"], exc))


if __name__ == "__main__":
    main()
