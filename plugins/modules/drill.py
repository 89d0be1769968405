#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: drill
short_description: Restore one dataset into a sandbox, verify it in layers and measure RTO and RPO
version_added: 0.1.0
description:
  - Runs one restore drill of one agent or host dataset on the host where the restore happens
    (the drill host). It chooses a recovery point (latest, random within N days with a seed, or the one at
    or before a time), restores it or a sample of its files with C(restic restore --verify) into
    a new directory below O(sandbox), verifies it in layers and removes the restored files again,
    also when the drill fails.
  - Layers are sandbox safety, recovery point and RPO, repository integrity
    (C(restic check --read-data-subset)), the restore itself, the freshness canary, content
    (restic's verification of every restored file), application (the restored database starts
    and passes its checks, see O(application)), custom commands and RTO (restore plus the
    application layer, wall time). Each is reported as ok, failed or skipped with a message.
  - A sandbox that is, is inside or contains one of O(protected_paths) is refused before
    anything is written.
  - A host dataset's drill (O(tier=host)) restores one VM's point, its chain merged, into the
    sandbox; its content layer runs C(qemu-img check) and compares every block with the digests
    taken with the points, and its application layer boots the restored VM isolated (new name and
    UUID, no network) on O(libvirt_uri) until its guest agent answers, runs O(guest_commands) in
    it, then destroys and undefines it. See docs/host-tier.md.
  - An array dataset's drill (O(tier=array)) restores a point of the consistency group from its tape
    library on the host that runs it, the catalog's chain of the point (layer C(catalog)), the cartridges
    loaded in order, vaulted ones recalled with O(recall), labels and chunk checksums checked while
    reading (layer C(media), a damaged cartridge fails naming its barcode), every stream received with
    C(btrfs receive) into the sandbox, base first; then C(freshness), C(content) (every volume, the
    PostgreSQL backup label) and C(application) (PostgreSQL starts from the restored volume, see
    O(profile)). See docs/array-tier.md.
  - The drill record it returns is what M(restorable.backup.drill_report) keeps as evidence.
author:
  - Restorable maintainers (@restorable)
options:
  drill:
    description: Name of the drill (a key of C(restorable_drills)).
    type: str
    required: true
  dataset:
    description: The job name of the dataset (its snapshots carry the tag C(dataset:<name>)).
    type: str
    required: true
  tier:
    description: The dataset's tier.
    type: str
    choices: [agent, host, cdp, array]
    default: agent
  source_type:
    description: Tier C(cdp) only, the dataset's source kind.
    type: str
    choices: [btrfs, postgresql]
  points_on:
    description: Tier C(cdp), source C(btrfs), where the points are restored from, on the drill host.
    type: str
    choices: [source, replica]
    default: source
  point_dir:
    description: Tier C(cdp), source C(btrfs), the directory holding the points on the drill host.
    type: path
  subvolume:
    description: Tier C(cdp), source C(btrfs), the dataset's subvolume on its source host (named in messages, never written).
    type: path
  archiver_config:
    description: Tier C(cdp), source C(postgresql), the archiver's configuration on the drill host (the source host's own).
    type: path
  wal_store:
    description: Tier C(cdp), source C(postgresql), the WAL store when the drill host has no archiver configuration of the dataset.
    type: dict
  install_dir:
    description: Tier C(cdp), source C(postgresql), where the agent is installed on the drill host (its C(restore_command) runs it).
    type: path
  source:
    description: Tier C(cdp), source C(postgresql), the production cluster (C(data_directory), never written; C(database) of the heartbeat).
    type: dict
  interval_minutes:
    description: Tier C(cdp), the dataset's interval between recovery points.
    type: int
  library_config:
    description: Tier C(array), the tape library's configuration file on the drill host (the library's host).
    type: path
  group:
    description: Tier C(array), the consistency group of the points (default O(dataset)).
    type: str
  volumes:
    description: Tier C(array), the dataset's volumes; never written, and the sandbox may not overlap them or their snapshots.
    type: list
    elements: path
  snapshot_dir:
    description: Tier C(array), where the volumes' snapshots are kept (default beside each volume); protected like the volumes.
    type: path
  expect_volumes:
    description: Tier C(array), how many volumes the restored point must hold.
    type: int
  point:
    description: Tier C(array), the point's id, or C(latest); O(recovery_point) chooses among the points on tape otherwise.
    type: str
    default: latest
  recall:
    description: Tier C(array), recall the vaulted cartridges the point's chain needs before reading them.
    type: bool
    default: true
  profile:
    description:
      - Tier C(array), the dataset's consistency profile as its job has it (passwords as files, never values),
        for the application layer (with type C(postgresql) the restored data directory is started).
    type: dict
  vm:
    description: Host tier; the VM (name or UUID) whose points are drilled (default any VM of the dataset).
    type: str
  libvirt_uri:
    description: Host tier; the drill host's libvirt, where the restored VM boots.
    type: str
    default: qemu:///system
  guest_commands:
    description: Host tier; commands (argument lists) run in the booted VM through its guest agent; each must exit 0.
    type: list
    elements: list
    default: []
  boot_timeout:
    description: Host tier; seconds the restored VM's guest agent has to answer.
    type: float
    default: 180
  source_host:
    description: The host whose backup is restored (restic C(--host) of its snapshots).
    type: str
    required: true
  drill_host:
    description: Name of the host the restore runs on, for the record (default O(source_host)).
    type: str
  repository:
    description:
      - The repository the dataset is backed up to, as the C(repositories) of
        C(restorable.backup.agent_plan) give it (url, options, password, env).
      - The password is written to a private temporary file for restic and removed afterwards.
      - Required except for tier C(cdp) with source C(btrfs) and tier C(array), whose points are snapshots, not in a repository.
    type: dict
    suboptions:
      url:
        description: Repository URL.
        type: str
        required: true
      password:
        description: Repository password.
        type: str
        required: true
      env:
        description: Environment for restic (S3 keys).
        type: dict
        default: {}
      options:
        description: Extended options (C(-o)).
        type: list
        elements: str
        default: []
  status:
    description:
      - The source host's status of the job (from M(restorable.backup.status_info)), for its
        canary path and token and its snapshot id.
    type: dict
    default: {}
  canary_path:
    description:
      - Where the source host writes the dataset's freshness canary. Without the source's I(status)
        (a drill host that cannot read it) the restored canary must belong to the dataset and be
        written just before its recovery point was taken.
    type: path
  recovery_point:
    description: Which point to restore, as in the drill policy (choice, within_days, seed, at).
    type: dict
    default: {choice: latest}
  sample:
    description: How much to restore, as in the drill policy (mode all, files or percent).
    type: dict
    default: {mode: all}
  checks:
    description:
      - Layers to run among integrity, freshness, content, application and custom.
      - Tier C(array) has C(catalog) and C(media) layers; C(integrity) stands for both.
    type: list
    elements: str
    default: [integrity, freshness, content]
  application:
    description:
      - The dataset's consistency profile without its secrets, for the application layer, as
        C(type) and the part of that type. Of C(postgresql) and C(mariadb) only C(mode),
        C(databases) and C(checks) are read; never pass a password.
      - C(sqlite) profiles are checked (each database restored opens read-only and passes
        C(PRAGMA integrity_check)).
      - C(postgresql) with C(mode=dump) (the default) loads the run's C(globals.sql) and each
        database's C(pg_dump) stream (or only those of its C(databases)) into a fresh
        cluster made with C(initdb); C(mode=basebackup) unpacks the run's C(base.tar) and starts it,
        which must reach consistency from the WAL inside; C(mode=backup_api) starts the data
        directory found among the restored files. Then C(pg_amcheck --all --install-missing) runs
        (the amcheck extension must be installable on the drill host), and each query of its
        C(checks), in the profile's first database (else the first
        restored one other than postgres), must return a true first column.
      - C(mariadb) extracts the run's mariabackup stream with C(mbstream -x), prepares it with
        C(mariabackup --prepare), starts C(mariadbd) with C(--skip-networking) and
        C(--skip-grant-tables), runs C(CHECK TABLE) over every table outside the system schemas,
        then each query of its C(checks) (true first column; NULL is false).
      - The scratch servers run as the OS users postgres and mysql when the drill runs as root
        (the sandbox and its parents must be traversable by them), listen on a socket in the
        restore directory only (or in a private temporary directory when that path is too long
        for a socket), and are stopped by their PID when the layer ends, also on failure.
        O(timeout) bounds each step (default 600 seconds, server start at most 120 seconds).
      - A server that does not start (the tail of its log is in the message), a failing integrity
        check or a check query that is false or NULL fails the layer.
    type: dict
    default: {}
  commands:
    description:
      - Custom check commands, as in the drill policy (argv, timeout as a duration, env), run
        without a shell in the restore directory; C({sandbox}) in argv is replaced by it.
    type: list
    elements: dict
    default: []
  sandbox:
    description: Scratch directory; each drill restores into a new directory below it.
    type: path
    required: true
  protected_paths:
    description: Paths a restore must never write into (the dataset paths of the policy).
    type: list
    elements: path
    default: []
  rto:
    description: RTO target, a duration such as C(15m) or a number of seconds (the drill's, else the dataset's).
    type: str
  rpo:
    description: RPO target, a duration such as C(26h) or a number of seconds (the drill's, else the dataset's).
    type: str
  read_data_subset:
    description: Share of pack data the integrity layer reads (restic C(--read-data-subset)).
    type: str
    default: 5%
  timeout:
    description: Seconds any one restic command may take.
    type: float
  keep_restore:
    description: Leave the restored files in place (for an investigation) instead of removing them.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: In check mode only the sandbox is checked against the protected paths; nothing is restored.
  diff_mode:
    support: none
    description: A drill changes nothing outside its sandbox.
  idempotent:
    support: none
    description: Every drill is a new measurement.
"""

EXAMPLES = r"""
- name: Drill the www dataset of web01 on drill01
  restorable.backup.drill:
    drill: www-weekly
    dataset: www
    source_host: web01
    repository: "{{ (hostvars['web01'] | restorable.backup.agent_plan('web01')).repositories | first }}"
    status: "{{ web_status.jobs.www }}"
    sandbox: /var/tmp/restorable-drill
    protected_paths: [/var/www]
    rto: 1h
    rpo: 26h
  delegate_to: drill01
"""

RETURN = r"""
record:
  description: The drill record (evidence) with result, recovery point, RTO, RPO, bytes, throughput and layers.
  returned: always
  type: dict
  sample: {"drill": "www-weekly", "dataset": "www", "result": "passed", "rto": {"seconds": 4.2, "target_seconds": 3600, "met": true}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import run_drill


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            drill=dict(type="str", required=True),
            dataset=dict(type="str", required=True),
            tier=dict(type="str", choices=["agent", "host", "cdp", "array"], default="agent"),
            library_config=dict(type="path"),
            group=dict(type="str"),
            volumes=dict(type="list", elements="path"),
            snapshot_dir=dict(type="path"),
            expect_volumes=dict(type="int"),
            point=dict(type="str", default="latest"),
            recall=dict(type="bool", default=True),
            profile=dict(type="dict"),
            source_type=dict(type="str", choices=["btrfs", "postgresql"]),
            points_on=dict(type="str", choices=["source", "replica"], default="source"),
            point_dir=dict(type="path"),
            subvolume=dict(type="path"),
            archiver_config=dict(type="path"),
            wal_store=dict(type="dict"),
            install_dir=dict(type="path"),
            source=dict(type="dict"),
            interval_minutes=dict(type="int"),
            vm=dict(type="str"),
            libvirt_uri=dict(type="str", default="qemu:///system"),
            guest_commands=dict(type="list", elements="list", default=[]),
            boot_timeout=dict(type="float", default=180.0),
            source_host=dict(type="str", required=True),
            drill_host=dict(type="str"),
            repository=dict(type="dict", options=dict(
                url=dict(type="str", required=True),
                password=dict(type="str", required=True, no_log=True),
                env=dict(type="dict", default={}, no_log=True),
                options=dict(type="list", elements="str", default=[]),
            )),
            status=dict(type="dict", default={}),
            canary_path=dict(type="path"),
            recovery_point=dict(type="dict", default={"choice": "latest"}),
            sample=dict(type="dict", default={"mode": "all"}),
            checks=dict(type="list", elements="str", default=["integrity", "freshness", "content"]),
            application=dict(type="dict", default={}),
            commands=dict(type="list", elements="dict", default=[]),
            sandbox=dict(type="path", required=True),
            protected_paths=dict(type="list", elements="path", default=[]),
            rto=dict(type="str"),
            rpo=dict(type="str"),
            read_data_subset=dict(type="str", default="5%"),
            timeout=dict(type="float"),
            keep_restore=dict(type="bool", default=False),
        ),
        required_if=[("tier", "agent", ["repository"]), ("tier", "host", ["repository"]),
                     ("source_type", "postgresql", ["repository"]), ("tier", "cdp", ["source_type"]),
                     ("tier", "array", ["library_config", "volumes"])],
        supports_check_mode=True,
    )
    params = dict(module.params)
    if params["tier"] == "array":
        # The policy's integrity is the array drill's catalog (chain complete) and media (labels, checksums).
        params["checks"] = [layer for check in params["checks"] for layer in (["catalog", "media"] if check == "integrity" else [check])]
    try:
        record = run_drill(params, check_only=module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc), record={})
    if record["result"] == "failed":
        module.fail_json(msg="drill %s of %s on %s failed: %s" % (
            record["drill"], record["dataset"], record["drill_host"], record["reason"]), record=record)
    module.exit_json(changed=not module.check_mode, record=record, msg="drill %s of %s %s" % (
        record["drill"], record["dataset"], record["result"]))


if __name__ == "__main__":
    main()
