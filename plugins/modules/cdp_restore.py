#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: cdp_restore
short_description: Restore a btrfs CDP point as a writable copy, or roll the subvolume back to it
version_added: 0.1.0
description:
  - Restores one recovery point of a btrfs CDP dataset, on the source host (from its snapshot
    directory, with O(job)) or on the replica host (from the dataset's directory there, with
    O(point_dir) and O(points_on=replica)).
  - By default the point becomes a writable snapshot C(SANDBOX/POINT) on the points' filesystem; the
    sandbox must not be or lie inside the subvolume or a path of O(protected_paths).
  - With O(rollback), the subvolume itself goes back to the point; its current state is kept aside
    as C(SUBVOLUME.before-POINT-TIME), never deleted.
  - PostgreSQL CDP datasets are restored to a point in time by their drills (see docs/cdp-tier.md).
author:
  - Restorable maintainers (@restorable)
options:
  job:
    description: The btrfs CDP job on this host (see M(restorable.backup.job)); its subvolume and snapshot directory are used.
    type: str
  point_dir:
    description: The directory holding the points (instead of O(job), for example a replica's dataset directory).
    type: path
  points_on:
    description: Whether O(point_dir) is a source's snapshot directory or a replica's dataset directory.
    type: str
    choices: [source, replica]
    default: source
  subvolume:
    description: The dataset's subvolume (with O(point_dir); never written unless O(rollback)).
    type: path
  point:
    description: The point's name (C(YYYYMMDDTHHMMSSZ)); default the newest.
    type: str
  sandbox:
    description: Where the writable copy goes (on the points' filesystem). Required unless O(rollback).
    type: path
  rollback:
    description: Put the point in place of the subvolume, the current state kept aside.
    type: bool
    default: false
  protected_paths:
    description: Paths the sandbox must not be, or lie inside.
    type: list
    elements: path
    default: []
attributes:
  check_mode:
    support: full
    description: Chooses the point and says what would be restored where; writes nothing.
  diff_mode:
    support: none
    description: A subvolume has no useful diff.
  idempotent:
    support: partial
    description: A copy of the point already in the sandbox is left as it is; every rollback changes the subvolume.
extends_documentation_fragment:
  - restorable.backup.agent_root
"""

EXAMPLES = r"""
- name: A writable copy of the newest point of the files dataset
  restorable.backup.cdp_restore:
    job: files
    sandbox: /srv/.restore

- name: On the replica, a copy of a given point
  restorable.backup.cdp_restore:
    point_dir: /srv/replicas/web01/files
    points_on: replica
    point: 20261203T101500Z
    sandbox: /srv/replicas/.restore

- name: Roll the files subvolume back to a point, keeping the current state aside
  restorable.backup.cdp_restore:
    job: files
    point: 20261203T101500Z
    rollback: true
"""

RETURN = r"""
point:
  description: The restored point.
  returned: success
  type: str
  sample: 20261203T101500Z
path:
  description: The writable copy, or the subvolume rolled back.
  returned: success
  type: str
kept_aside:
  description: Where the subvolume's state before a rollback is kept.
  returned: when rolled back
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, job_config_path, load_job_config
from ansible_collections.restorable.backup.plugins.module_utils.drill.engine import DrillError
from ansible_collections.restorable.backup.plugins.module_utils.snapshot.provider import SnapshotError
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.btrfs_source import point_store, restore_point


def restore_params(module: AnsibleModule) -> dict:
    """What restore_point reads, from the job's configuration or the options."""
    params = {k: module.params[k] for k in ("point_dir", "points_on", "subvolume", "point", "sandbox", "rollback",
                                            "protected_paths")}
    if module.params["job"]:
        config = load_job_config(job_config_path(module.params["root"], module.params["job"]))
        source = config.options.get("source") or {}
        if config.tier != "cdp" or source.get("type") != "btrfs":
            raise ConfigError("job %s is not a btrfs CDP job" % module.params["job"])
        params.update(points_on="source", subvolume=source["subvolume"], point_dir=source.get("snapshot_dir"))
    return params


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            job=dict(type="str"),
            point_dir=dict(type="path"),
            points_on=dict(type="str", choices=["source", "replica"], default="source"),
            subvolume=dict(type="path"),
            point=dict(type="str"),
            sandbox=dict(type="path"),
            rollback=dict(type="bool", default=False),
            protected_paths=dict(type="list", elements="path", default=[]),
            root=dict(type="path", default="/"),
        ),
        required_one_of=[("job", "point_dir")],
        mutually_exclusive=[("job", "point_dir")],
        required_if=[("rollback", False, ["sandbox"])],
        supports_check_mode=True,
    )
    try:
        params = restore_params(module)
        names = point_store(params).names()
        point = params["point"] or (names[-1] if names else None)
        if not params["rollback"] and point and os.path.isdir(os.path.join(params["sandbox"], point)):
            module.exit_json(changed=False, point=point, path=os.path.join(params["sandbox"], point))
        if module.check_mode:
            if point not in names:
                module.fail_json(msg="no point %s among %d" % (point or "at all", len(names)))
            module.exit_json(changed=True, point=point, path=params["subvolume"] if params["rollback"]
                             else os.path.join(params["sandbox"], point))
        result = restore_point(dict(params, point=point))
    except (ConfigError, DrillError, SnapshotError) as exc:
        module.fail_json(msg="cdp_restore: %s" % exc)
    module.exit_json(changed=True, **{k: v for k, v in result.items() if k != "mode" and v is not None})


if __name__ == "__main__":
    main()
