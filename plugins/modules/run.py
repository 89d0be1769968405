#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: run
short_description: Back up a dataset now, exactly as its scheduled job would
version_added: 0.1.0
description:
  - Runs one backup of a scheduled job with the same code the timer or cron entry runs, that is
    lock, gates, hooks, C(restic backup), freshness canary, retention (C(restic forget --prune) after
    every C(retention.prune_every)-th backup), periodic check, status, metrics and ping.
  - On demand, the window and the load gate are ignored unless asked for.
author:
  - Restorable maintainers (@restorable)
options:
  job:
    description: Job name (see M(restorable.backup.job)).
    type: str
    required: true
  honour_window:
    description: Respect the backup window, as a scheduled run does.
    type: bool
    default: false
  honour_load_gate:
    description: Respect the load gate, as a scheduled run does.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: A backup cannot be simulated; in check mode the module takes none and says so.
  diff_mode:
    support: none
    description: A backup has no diff.
  idempotent:
    support: none
    description: Every run takes a new recovery point.
extends_documentation_fragment:
  - restorable.backup.agent_root
"""

EXAMPLES = r"""
- name: Back up the www dataset now
  restorable.backup.run:
    job: www
"""

RETURN = r"""
status:
  description: What the run did, as recorded in the host's status file.
  returned: always
  type: dict
  sample: {"result": "success", "snapshot_id": "4f1c...", "bytes_added": 1048576, "duration_seconds": 2.4}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import ConfigError, job_config_path, load_job_config
from ansible_collections.restorable.backup.plugins.module_utils.core.runner import RunOptions
from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import UnsupportedTier, runner_for


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            job=dict(type="str", required=True),
            root=dict(type="path", default="/"),
            honour_window=dict(type="bool", default=False),
            honour_load_gate=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: no backup taken", status={})
    try:
        config = load_job_config(job_config_path(module.params["root"], module.params["job"]))
    except ConfigError as exc:
        module.fail_json(msg=str(exc), status={})
    options = RunOptions(ignore_window=not module.params["honour_window"], ignore_load=not module.params["honour_load_gate"])
    try:
        runner = runner_for(config, options)
    except UnsupportedTier as exc:
        module.fail_json(msg="%s: %s" % (config.source, exc), status={})
    except ConfigError as exc:
        module.fail_json(msg=str(exc), status={})
    status = runner.run().to_dict()
    if status["result"] in ("failed", "locked"):
        module.fail_json(msg="backup of %s %s: %s" % (config.dataset, status["result"], status["reason"]), status=status)
    module.exit_json(changed=status["result"] == "success", status=status, msg=status["reason"] or status["result"])


if __name__ == "__main__":
    main()
