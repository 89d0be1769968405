# -*- coding: utf-8 -*-
"""The local and SFTP stores with real PostgreSQL WAL: the agent archives the segments of the
newest base backup's chain into each, as PostgreSQL's archive_command would, their continuity
verifies, and a point-in-time restore reads them back through restore-wal. A local store inside
the restic repository (where the controller puts it) leaves `restic check` clean; an SFTP
server whose host key is not the known one is refused."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cdp_pg_helpers import DATASET, HOST, SEGMENT_SIZE, heartbeats, write_owned

from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.archiver import archiver_document
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.continuity import Verifier, VerifyState
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.factory import open_store
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.names import is_segment
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.pitr import RecoveryTarget
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.wal.store import StoreError


def chain(cdp_pg) -> tuple[list[str], float]:
    """(the segments from the newest base backup's start to the current one, archived; the newest
    heartbeat in them)."""
    cdp_pg.switch()
    newest = float(cdp_pg.psql("SELECT extract(epoch FROM max(at)) FROM restorable_heartbeat"))
    start = cdp_pg.bases()[-1].start_wal
    return [name for name in cdp_pg.store().list() if is_segment(name) and name >= start], newest


def archive_with_the_agent(cdp_pg, names: list[str], config: Path, work: Path) -> None:
    """Each segment as PostgreSQL hands it over: a file in pg_wal, archive-wal run as postgres."""
    wal = work / "pg_wal"
    wal.mkdir(parents=True)
    os.chmod(work, 0o755)
    source = cdp_pg.store()
    for name in names:
        source.get(name, str(wal / name))
    shutil.chown(wal, "postgres", "postgres")
    for name in names:
        shutil.chown(wal / name, "postgres", "postgres")
        result = cdp_pg.agent("archive-wal", "--config", str(config), "pg_wal/" + name, name, cwd=work)
        assert (result.returncode, result.stderr) == (0, ""), name


def store_config(cdp_pg, name: str, settings: dict) -> Path:
    return write_owned(cdp_pg.root / "etc" / name, json.dumps(archiver_document(DATASET, settings)), mode=0o644)


def test_a_local_store_inside_the_repository_archives_restores_and_keeps_restic_check_clean(
        cdp_pg, first_base_backup, tmp_path, restored):
    os.chmod(cdp_pg.repo_path, 0o711)  # the cluster's user passes through to its directory only
    directory = cdp_pg.repo_path / "wal" / HOST / DATASET
    directory.mkdir(parents=True)
    shutil.chown(directory, "postgres", "postgres")
    settings = {"type": "local", "path": str(directory)}
    config = store_config(cdp_pg, "local.json", settings)
    names, newest = chain(cdp_pg)
    archive_with_the_agent(cdp_pg, names, config, tmp_path)

    store = open_store(settings)
    assert [n for n in store.list() if is_segment(n)] == names
    state = VerifyState()
    report = Verifier(store, SEGMENT_SIZE).incremental(state)
    assert report.ok and report.checked == len(names)
    assert cdp_pg.repo().check().ok, "restic ignores the wal/ directory beside its own"

    server = cdp_pg.pitr(RecoveryTarget(), "from-local", config=config, store_settings=settings)
    restored.append(server)
    found = heartbeats(server, newest + 1)
    assert found["after"] == 0 and abs(found["newest"] - newest) < 1e-6


@pytest.fixture(scope="module")
def sftp_host(ssh_fleet_factory, fleet_ssh_client, cdp_pg):
    """An OpenSSH server on its own loopback address; the key and known_hosts the cluster's user reads."""
    host = ssh_fleet_factory(1, prefix="cdppg")[0]
    key = write_owned(cdp_pg.root / "etc" / "sftp_key", fleet_ssh_client.key.private.read_text())
    public = (host.base_dir / "ssh_host_ed25519_key.pub").read_text().split()
    where = host.address if host.port == 22 else "[%s]:%d" % (host.address, host.port)
    known = write_owned(cdp_pg.root / "etc" / "known_hosts", "%s %s %s\n" % (where, public[0], public[1]), mode=0o644)
    return {"type": "sftp", "host": host.address, "port": host.port, "user": "root",
            "path": str(host.data_dir / "repo" / "wal" / HOST / DATASET), "identity_file": str(key),
            "known_hosts_file": str(known)}


def test_an_sftp_store_archives_and_restores(cdp_pg, first_base_backup, sftp_host, tmp_path, restored):
    config = store_config(cdp_pg, "sftp.json", sftp_host)
    names, newest = chain(cdp_pg)
    archive_with_the_agent(cdp_pg, names[-6:], config, tmp_path / "a")
    store = open_store(sftp_host)
    assert [n for n in store.list() if is_segment(n)] == names[-6:]
    again = cdp_pg.agent("archive-wal", "--config", str(config), "pg_wal/" + names[-1], names[-1], cwd=tmp_path / "a")
    assert again.returncode == 0, "a retry of a stored segment"
    assert Verifier(store, SEGMENT_SIZE).incremental(VerifyState()).ok

    archive_with_the_agent(cdp_pg, names[:-6], config, tmp_path / "b")
    server = cdp_pg.pitr(RecoveryTarget(), "from-sftp", config=config, store_settings=sftp_host)
    restored.append(server)
    found = heartbeats(server, newest + 1)
    assert found["after"] == 0 and abs(found["newest"] - newest) < 1e-6


def test_an_sftp_server_with_another_host_key_is_refused(cdp_pg, sftp_host, tmp_path):
    stranger = tmp_path / "known_hosts"
    stranger.write_text("%s ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n" % (
        sftp_host["host"] if sftp_host["port"] == 22 else "[%s]:%d" % (sftp_host["host"], sftp_host["port"])))
    with pytest.raises(StoreError, match="listing failed: .*(Host key verification failed|REMOTE HOST IDENTIFICATION)"):
        open_store(dict(sftp_host, known_hosts_file=str(stranger))).list()
