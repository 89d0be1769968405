# -*- coding: utf-8 -*-
"""Fixtures of the end-to-end apply tests of the agent tier.

``agent_fleet`` describes the policy of the 3 sshd hosts (one local, one SFTP and one S3 target
per host, secrets in an Ansible Vault file that ``restorable_targets`` refers to) and writes
inventories of it. The S3 bucket (Object Lock, COMPLIANCE default retention) is not made here:
``restorable.backup.apply`` provisions it from the controller, as the target declares.

``applied_fleet`` applies the policy once per session with ``-vvv`` and runs one backup of every
job while polling the process list, so that the tests of status, repositories, idempotence and
secrets all read the same run.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex
from typing import Any

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from apply_helpers import (
    DATASETS,
    TARGETS,
    CmdlineRecorder,
    PlaybookRun,
    ansible_playbook,
    playbook_argv,
    run_ansible,
    write_yaml_inventory,
)
from fleet.inventory import ansible_bin
from fleet.sshd import SshdHost, SshFleet

# The runner's restic cache: root's default one (the hosts are logged in to as root).
RESTIC_CACHE = Path("~root/.cache/restic").expanduser()
BUCKET = "restorable-fleet-locked"
REGION = "us-east-1"


@dataclass
class Secrets:
    """This session's secrets: random, so a hit anywhere can only be a leak."""

    restic_password: str = field(default_factory=lambda: "rpw-" + token_hex(16))
    s3_access_key: str = field(default_factory=lambda: "AKIA" + token_hex(8).upper())
    s3_secret_key: str = field(default_factory=lambda: "s3s-" + token_hex(20))
    vault_password: str = field(default_factory=lambda: token_hex(16))


@dataclass
class AgentFleet:
    """The agent-tier policy of the sshd fleet and the inventories that carry it.

    Paths of a host depend on two inventory variables: ``apply_variant`` picks the host's
    ``agent_root`` (``<data_dir>/<variant>/root``), ``repo_set`` its repositories (a local one
    below its data_dir, one on the SFTP server host1 and a prefix in the S3 bucket)."""

    fleet: SshFleet
    workdir: Path
    secrets: Secrets
    endpoint: str
    bucket: str
    sftp_server: SshdHost
    known_hosts: str
    ssh_key: Path
    snapshot_ids: set[str] = field(default_factory=set)
    # Top-level directories this fleet made below the hosts' data_dirs (removed at the end).
    made: set[str] = field(default_factory=lambda: {"data", "sftp"})

    # -- where things are ----------------------------------------------------------------------

    def host(self, name: str) -> SshdHost:
        return self.fleet[name]

    def dataset(self, name: str) -> str:
        return DATASETS[name]

    def jobs(self, name: str) -> list[str]:
        dataset = DATASETS[name]
        return [dataset, dataset + "-nas", dataset + "-offsite"]

    def data_path(self, name: str) -> Path:
        return self.host(name).data_dir / "data" / DATASETS[name]

    def root(self, name: str, variant: str = "main") -> Path:
        return self.host(name).data_dir / variant / "root"

    def status_file(self, name: str, job: str, variant: str = "main") -> Path:
        return self.root(name, variant) / "var/lib/restorable" / (job + ".json")

    def secrets_dir(self, name: str, variant: str = "main") -> Path:
        return self.root(name, variant) / "etc/restorable/secrets"

    def local_repo(self, name: str, repo_set: str = "main") -> Path:
        return self.host(name).data_dir / repo_set / "repo-local"

    def sftp_repo(self, name: str, repo_set: str = "main") -> Path:
        return self.sftp_server.data_dir / "sftp" / repo_set / name

    def s3_prefix(self, name: str, repo_set: str = "main") -> str:
        return "%s/%s" % (repo_set, name)

    def repository_urls(self, name: str, repo_set: str = "main") -> dict[str, str]:
        """{target: restic URL} as the hosts use them."""
        server = self.sftp_server
        return {
            "local-disk": str(self.local_repo(name, repo_set)),
            "nas": "sftp://root@%s:%d/%s" % (server.address, server.port, self.sftp_repo(name, repo_set)),
            "offsite": "s3:%s/%s/%s" % (self.endpoint, self.bucket, self.s3_prefix(name, repo_set)),
        }

    def sftp_command(self) -> str:
        server = self.sftp_server
        return ("sftp.command=ssh -F /dev/null -i %s -o IdentitiesOnly=yes -o BatchMode=yes "
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p %d root@%s -s sftp"
                % (self.ssh_key, server.port, server.address))

    def s3_env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.secrets.s3_access_key,
                "AWS_SECRET_ACCESS_KEY": self.secrets.s3_secret_key, "AWS_DEFAULT_REGION": REGION}

    # -- inventories ---------------------------------------------------------------------------

    def policy(self, variant: str, repo_set: str) -> dict[str, Any]:
        """Variables of ``all``: the targets, the schedule, the compliance rules. Every secret is
        a reference to a variable of the vault file."""
        server = self.sftp_server
        return {
            "apply_variant": variant,
            "repo_set": repo_set,
            "agent_root": "{{ fleet_data_dir }}/{{ apply_variant }}/root",
            "agent_install_restic": True,
            "agent_scheduler": "systemd",
            "restorable_compliance": {"plaintext_secrets": "error", "rule_3_2_1_1_0": "report"},
            "restorable_targets": {
                "local-disk": {
                    "type": "local",
                    "path": "{{ fleet_data_dir }}/{{ repo_set }}/repo-local",
                    "password": "{{ vault_restic_password }}",
                    "description": "Second disk of the host",
                },
                "nas": {
                    "type": "sftp",
                    "host": server.address,
                    "port": server.port,
                    "user": "root",
                    "path": "%s/sftp/{{ repo_set }}/{{ inventory_hostname }}" % server.data_dir,
                    "password": "{{ vault_restic_password }}",
                    "ssh_private_key": "{{ vault_nas_ssh_key }}",
                    "known_hosts": self.known_hosts,
                    "description": "Repository served over SFTP by %s" % server.name,
                },
                # restorable.backup.apply creates the bucket with Object Lock (controller side).
                "offsite": {
                    "type": "s3",
                    "endpoint": self.endpoint,
                    "bucket": self.bucket,
                    "prefix": "{{ repo_set }}",
                    "region": REGION,
                    "versioning": True,
                    "object_lock": {"mode": "compliance", "days": 1},
                    "access_key_id": "{{ vault_s3_access_key_id }}",
                    "secret_access_key": "{{ vault_s3_secret_access_key }}",
                    "password": "{{ vault_restic_password }}",
                    "offsite": True,
                },
            },
            "restorable_schedules": {
                "nightly": {"calendar": "*-*-* 02:30:00", "jitter": "1h", "nice": 10},
            },
        }

    def host_policy(self, name: str) -> dict[str, Any]:
        dataset = DATASETS[name]
        variables: dict[str, Any] = {
            "restorable_datasets": {
                dataset: {
                    "tier": "agent",
                    "description": "Files of %s" % name,
                    "paths": ["{{ fleet_data_dir }}/data/%s" % dataset],
                    "excludes": ["*.tmp"],
                    "targets": list(TARGETS),
                    "schedule": "nightly",
                    "rpo": "26h",
                    "retention": {"last": 5, "daily": 7},
                },
            },
        }
        if name == "host3":
            # A host without systemd: its jobs go to cron.d, at 02:30 sharp.
            variables["agent_scheduler"] = "cron"
            variables["restorable_schedules"] = {"nightly": {"calendar": "*-*-* 02:30:00", "nice": 10}}
        return variables

    def vault_file(self) -> str:
        """The vault file's plain text (encrypted when written)."""
        return yaml.safe_dump({
            "vault_restic_password": self.secrets.restic_password,
            "vault_s3_access_key_id": self.secrets.s3_access_key,
            "vault_s3_secret_access_key": self.secrets.s3_secret_key,
            "vault_nas_ssh_key": self.ssh_key.read_text(),
        })

    @property
    def vault_password_file(self) -> Path:
        return self.workdir / "vault-password"

    def write_vault(self, directory: Path) -> Path:
        """``group_vars/all/vault.yml`` for an inventory in ``directory``: the secrets, encrypted
        with Ansible Vault."""
        vault = directory / "group_vars/all/vault.yml"
        vault.parent.mkdir(parents=True, exist_ok=True)
        lib = VaultLib([("default", VaultSecret(self.secrets.vault_password.encode()))])
        vault.write_bytes(lib.encrypt(self.vault_file()))
        return vault

    def inventory(self, name: str, variant: str = "main", repo_set: str = "main",
                  hosts: list[str] | None = None, host_vars: dict[str, dict[str, Any]] | None = None,
                  group_vars: dict[str, Any] | None = None) -> Path:
        """Write ``<workdir>/<name>/hosts.yml`` with ``group_vars/all/vault.yml`` beside it."""
        self.made.update((variant, repo_set))
        directory = self.workdir / name
        self.write_vault(directory)
        members = [self.host(n) for n in (hosts or self.fleet.names)]
        per_host = {h.name: dict(self.host_policy(h.name), **(host_vars or {}).get(h.name, {})) for h in members}
        variables = dict(self.policy(variant, repo_set), **(group_vars or {}))
        return write_yaml_inventory(directory / "hosts.yml", {"fleet": members}, variables, per_host)

    def playbook(self, inventory: Path, playbook: str, *args: str) -> PlaybookRun:
        return ansible_playbook(inventory, playbook, "--vault-password-file", str(self.vault_password_file), *args)

    def playbook_argv(self, inventory: Path, playbook: str, *args: str) -> list[str]:
        return playbook_argv(inventory, playbook, "--vault-password-file", str(self.vault_password_file), *args)

    def adhoc(self, inventory: Path, pattern: str, module: str, args: str) -> PlaybookRun:
        return run_ansible([ansible_bin("ansible"), "-i", inventory, pattern, "--vault-password-file",
                            self.vault_password_file, "-m", module, "-a", args])

    def remember_snapshots(self, ids: set[str]) -> None:
        self.snapshot_ids.update(i for i in ids if i)


def keyscan(host: SshdHost) -> str:
    result = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(host.port), host.address],
                            capture_output=True, text=True, timeout=30, check=False)
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    if not lines:
        raise RuntimeError("ssh-keyscan of %s:%d found no key: %s" % (host.address, host.port, result.stderr))
    return "\n".join(lines)


def write_sample_data(directory: Path, owner: str) -> None:
    """A few small files of a host's own (plus an excluded one)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.txt").write_text("data of %s\n" % owner)
    (directory / "sub").mkdir(exist_ok=True)
    (directory / "sub" / "notes.md").write_text("# %s\n" % owner + "line\n" * 200)
    (directory / "random.bin").write_bytes(os.urandom(64 * 1024))
    (directory / "scratch.tmp").write_text("excluded\n")


def forget_restic_caches(snapshot_ids: set[str]) -> None:
    """Remove root's restic cache of the repositories this session wrote to (the runner uses
    root's default cache): those whose cache holds one of our snapshots (ids may be short)."""
    if not snapshot_ids or not RESTIC_CACHE.is_dir():
        return
    for cache in RESTIC_CACHE.iterdir():
        snapshots = cache / "snapshots"
        if not snapshots.is_dir():
            continue
        # restic keeps them as snapshots/<first two hex digits>/<id>
        cached = [entry.name for folder in snapshots.iterdir() if folder.is_dir() for entry in folder.iterdir()]
        if any(name.startswith(sid) for name in cached for sid in snapshot_ids):
            shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def agent_fleet(ssh_fleet, fleet_ssh_client, moto_server, tmp_path_factory) -> AgentFleet:
    workdir = tmp_path_factory.mktemp("apply")
    fleet = AgentFleet(
        fleet=ssh_fleet, workdir=workdir, secrets=Secrets(), endpoint=moto_server.endpoint,
        bucket=BUCKET, sftp_server=ssh_fleet["host1"], known_hosts=keyscan(ssh_fleet["host1"]),
        ssh_key=fleet_ssh_client.key.private,
    )
    fd = os.open(fleet.vault_password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(fleet.secrets.vault_password + "\n")
    for name in ssh_fleet.names:
        write_sample_data(fleet.data_path(name), name)
    yield fleet
    forget_restic_caches(fleet.snapshot_ids)
    with contextlib.suppress(OSError):
        shutil.rmtree(workdir)
    for host in ssh_fleet:
        for made in fleet.made:
            shutil.rmtree(host.data_dir / made, ignore_errors=True)


@dataclass
class AppliedFleet:
    """The session's first apply and backup of the fleet, both with -vvv."""

    fleet: AgentFleet
    inventory: Path
    apply: PlaybookRun
    backup: PlaybookRun
    cmdlines: set[str]
    polls: int


@pytest.fixture(scope="session")
def applied_fleet(agent_fleet: AgentFleet) -> AppliedFleet:
    inventory = agent_fleet.inventory("main")
    apply = agent_fleet.playbook(inventory, "apply", "-vvv")
    if apply.returncode != 0:
        pytest.fail("the first apply failed: " + apply.describe())
    with CmdlineRecorder() as recorder:
        backup = agent_fleet.playbook(inventory, "backup", "-vvv")
    if backup.returncode != 0:
        pytest.fail("the first backup failed: " + backup.describe())
    for name in agent_fleet.fleet.names:
        for job in agent_fleet.jobs(name):
            with contextlib.suppress(OSError, ValueError):
                agent_fleet.remember_snapshots({json.loads(agent_fleet.status_file(name, job).read_text())["snapshot_id"]})
    return AppliedFleet(agent_fleet, inventory, apply, backup, recorder.seen, recorder.polls)
