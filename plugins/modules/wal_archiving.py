#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: wal_archiving
short_description: Make PostgreSQL clusters archive their WAL with the collection's archiver (CDP tier)
version_added: 0.1.0
description:
  - For each cluster, writes the archiver's configuration (where the WAL store is, no secret) and the
    store's credentials as files owned by the cluster's OS user (the owner of the data directory),
    because PostgreSQL runs C(archive_command) as that user.
  - Sets C(wal_level), C(archive_mode), C(archive_command) (the collection's archiver, which stores each
    segment with its checksum and fails when the store does, so PostgreSQL retries and never drops WAL),
    C(archive_library) (empty) and C(archive_timeout) with C(ALTER SYSTEM), then reloads the configuration.
  - Never restarts PostgreSQL. C(archive_mode) and C(wal_level) take effect at the next start only; the
    result lists the data directories that wait for a restart (see C(agent_postgresql_restart) of the
    C(restorable.backup.agent) role).
  - A local store's directory is created for the cluster's user; the directories above it (a restic
    repository is 0700) get the execute bit for others, so the user can pass through without reading them.
  - Normally called by the C(restorable.backup.agent) role with the plan of the CDP tier.
author:
  - Restorable maintainers (@restorable)
options:
  clusters:
    description: The clusters to set up, one per PostgreSQL CDP dataset.
    type: list
    elements: dict
    required: true
    suboptions:
      dataset:
        description: The dataset's name.
        type: str
        required: true
      data_directory:
        description: The cluster's data directory; the socket directory is read from its C(postmaster.pid).
        type: path
        required: true
      port:
        description: The cluster's port.
        type: int
        default: 5432
      archive_timeout:
        description: Seconds after which a WAL segment with changes is switched out (derived from the RPO).
        type: int
        required: true
      archiver_config:
        description: Where the archiver's configuration goes.
        type: path
        required: true
      store:
        description: The WAL store (C(type) local, sftp or s3, and where).
        type: dict
        required: true
      files:
        description: The store's credentials, each a C(path) and a C(content), placed 0600 for the cluster's user.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: Where the file goes.
            type: path
            required: true
          content:
            description: The file's content.
            type: str
            required: true
  python:
    description: The interpreter C(archive_command) runs the archiver with.
    type: path
    default: /usr/bin/python3
  install_dir:
    description: Where the agent is installed (default below O(root)).
    type: path
attributes:
  check_mode:
    support: full
    description: Reports which files and settings would change and whether a restart would be needed; changes nothing.
  diff_mode:
    support: full
    description: The archiver's configuration as a diff; credentials show as hidden.
  idempotent:
    support: full
    description: A second run with the same clusters changes nothing.
extends_documentation_fragment:
  - restorable.backup.agent_root
"""

EXAMPLES = r"""
- name: Archive the WAL of the main cluster into the dataset's local store
  restorable.backup.wal_archiving:
    clusters:
      - dataset: pg-main
        data_directory: /var/lib/postgresql/15/main
        port: 5432
        archive_timeout: 150
        archiver_config: /etc/restorable/wal/pg-main.json
        store:
          type: local
          path: /srv/backup/restic/wal/db01/pg-main
  register: wal

- name: Say when a restart is pending
  ansible.builtin.debug:
    msg: "{{ wal.restart_needed }} must restart before WAL is archived"
  when: wal.restart_needed | length > 0
"""

RETURN = r"""
restart_needed:
  description: Data directories whose settings take effect only after a restart.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/postgresql/15/main]
clusters:
  description: Per cluster, C(dataset), C(data_directory), C(changed), C(restart_needed) and C(settings) (before, after, changes).
  returned: always
  type: list
  elements: dict
actions:
  description: What was done (or would be, in check mode), one line each.
  returned: always
  type: list
  elements: str
"""

import os
import tempfile
from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.converge.wal_archiving import WalArchiving, WalArchivingFailed
from ansible_collections.restorable.backup.plugins.module_utils.core.layout import HostLayout


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            clusters=dict(type="list", elements="dict", required=True, options=dict(
                dataset=dict(type="str", required=True),
                data_directory=dict(type="path", required=True),
                port=dict(type="int", default=5432),
                archive_timeout=dict(type="int", required=True),
                archiver_config=dict(type="path", required=True),
                store=dict(type="dict", required=True),
                files=dict(type="list", elements="dict", default=[], options=dict(
                    path=dict(type="path", required=True),
                    content=dict(type="str", required=True, no_log=True),
                )),
            )),
            python=dict(type="path", default="/usr/bin/python3"),
            install_dir=dict(type="path"),
            root=dict(type="path", default="/"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    install_dir = params["install_dir"] or HostLayout(params["root"]).install_dir
    with tempfile.TemporaryDirectory(prefix="restorable-wal-") as staging:
        os.chmod(staging, 0o755)  # psql runs as the cluster's user and may need to read its passfile dir
        archiving = WalArchiving(install_dir, params["python"], staging, module.check_mode)
        try:
            results = archiving.converge(params["clusters"])
        except WalArchivingFailed as exc:
            module.fail_json(msg=str(exc), actions=archiving.actions)
    module.exit_json(changed=bool(archiving.actions) or archiving.files.changes.changed,
                     restart_needed=[r.data_directory for r in results if r.restart_needed],
                     clusters=[asdict(r) for r in results], actions=archiving.actions,
                     diff=archiving.files.changes.diff())


if __name__ == "__main__":
    main()
