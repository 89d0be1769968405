# -*- coding: utf-8 -*-
"""Faults during apply and backup: a wrong repository password, an unreachable host, a second
backup while one runs, and secrets that must never show in logs, process lists or host files."""
from __future__ import annotations

import json
import os
import re
import shutil
import time

from apply_helpers import BackgroundRun, files_below, tree_state

BULK_MIB = 40
BULK_KBPS = 4096  # the schedule's upload cap: 40 MiB take ~10 s, time for a second run to collide


def test_wrong_password_fails_naming_the_repository_and_keeps_the_credentials(applied_fleet):
    fleet = applied_fleet.fleet
    inventory = fleet.inventory("wrong-password",
                                host_vars={"host2": {"vault_restic_password": "not-the-repository-password"}})
    root = fleet.root("host2")
    password_file = fleet.secrets_dir("host2") / "local-disk.password"
    before = tree_state(root)
    stat = password_file.stat()

    run = fleet.playbook(inventory, "apply", "--limit", "host2", "-vvv")

    assert run.returncode != 0, run.describe()
    assert run.recap["host2"]["failed"] == 1, run.describe()
    # The message names the target, the repository and the credential file that stays as it is
    # (not the scratch file the candidate password was tried from).
    expected = ("local-disk: wrong password for the restic repository at %s: the password given for this target "
                "opens no key of it; %s was left unchanged" % (fleet.local_repo("host2"), password_file))
    assert expected in run.stdout, run.describe()
    assert "/tmp/restorable-" not in run.output
    # Nothing on the host changed: the stored password is the right one still, byte for byte.
    assert tree_state(root) == before
    after = password_file.stat()
    assert (after.st_mtime_ns, after.st_ino) == (stat.st_mtime_ns, stat.st_ino)
    assert password_file.read_text() == fleet.secrets.restic_password + "\n"
    # Even with -vvv, neither the wrong password nor the right one shows.
    assert "not-the-repository-password" not in run.output
    assert fleet.secrets.restic_password not in run.output


def test_unreachable_host_fails_the_run_and_the_others_converge(applied_fleet, ssh_fleet):
    fleet = applied_fleet.fleet
    # Fresh agent roots, the repositories of the fleet.
    inventory = fleet.inventory("unreachable", variant="unreachable")
    with ssh_fleet.down("host3"):
        run = fleet.playbook(inventory, "apply")
    assert run.returncode != 0, run.describe()
    recap = run.recap
    assert recap["host3"]["unreachable"] == 1, run.describe()
    assert re.search(r"fatal: \[host3\]: UNREACHABLE!", run.stdout), run.describe()
    for name in ("host1", "host2"):
        assert recap[name]["failed"] == 0 and recap[name]["unreachable"] == 0, run.describe()
        assert recap[name]["changed"] > 0
        root = fleet.root(name, "unreachable")
        for job in fleet.jobs(name):
            assert (root / "etc/restorable" / (job + ".json")).is_file()
            assert (root / "etc/systemd/system" / ("restorable-backup-%s.timer" % job)).is_file()
        assert (root / "etc/restorable/secrets/offsite.env").stat().st_mode & 0o777 == 0o600
    assert not fleet.root("host3", "unreachable").exists()


def test_second_backup_is_refused_while_one_runs(applied_fleet):
    fleet = applied_fleet.fleet
    host = fleet.host("host2")
    bulk = host.data_dir / "bulk"
    fleet.made.add("bulk")
    bulk.mkdir(parents=True, exist_ok=True)
    with open(bulk / "random.bin", "wb") as handle:
        for _index in range(BULK_MIB):
            handle.write(os.urandom(1024 * 1024))
    inventory = fleet.inventory(
        "lock", variant="lock", repo_set="lock", hosts=["host2"],
        host_vars={"host2": {"restorable_datasets": {"bulk": {
            "tier": "agent", "paths": [str(bulk)], "targets": ["local-disk"], "schedule": "throttled",
            "retention": {"last": 2}}}}},
        group_vars={"restorable_schedules": {"throttled": {
            "calendar": "*-*-* 03:00:00", "bandwidth": {"upload_kbps": BULK_KBPS}}}},
    )
    root = fleet.root("host2", "lock")
    status_dir = root / "var/lib/restorable"
    try:
        applied = fleet.playbook(inventory, "apply")
        assert applied.returncode == 0, applied.describe()

        first = BackgroundRun.start(fleet.playbook_argv(inventory, "backup"))
        try:
            deadline = time.monotonic() + 60
            # The run marker exists while a run works under the lock.
            while not (status_dir / "bulk.running").exists():
                assert first.running(), first.wait().describe()
                assert time.monotonic() < deadline, "the first backup did not start within 60 s"
                time.sleep(0.05)
            second = fleet.adhoc(inventory, "host2", "restorable.backup.run", "job=bulk root=%s" % root)
            first_still_running = (status_dir / "bulk.running").exists()
            done = first.wait()
        finally:
            first.stop()

        assert second.returncode != 0, second.describe()
        assert "host2 | FAILED" in second.stdout, second.describe()
        assert re.search(r"backup of bulk locked: another run of dataset bulk is in progress \(pid \d+", second.stdout), \
            second.describe()
        assert first_still_running, "the first run ended before the second was refused: no overlap was tested"
        assert done.returncode == 0, done.describe()
        status = json.loads((status_dir / "bulk.json").read_text())
        fleet.remember_snapshots({status["snapshot_id"]})
        assert status["result"] == "success"
        assert status["bytes_processed"] >= BULK_MIB * 1024 * 1024
        # The refused run left no trace in the record of the running one.
        assert [entry["result"] for entry in status["history"]] == ["success"]
    finally:
        shutil.rmtree(bulk, ignore_errors=True)
        shutil.rmtree(host.data_dir / "lock", ignore_errors=True)


def test_secrets_never_reach_output_process_lists_or_host_files(applied_fleet):
    """The session's apply and backup ran with -vvv while /proc/*/cmdline was polled."""
    fleet = applied_fleet.fleet
    key_lines = fleet.ssh_key.read_text().splitlines()
    secrets = {
        "restic password": fleet.secrets.restic_password,
        "S3 secret key": fleet.secrets.s3_secret_key,
        "SSH private key": key_lines[len(key_lines) // 2],
    }
    outputs = {"apply -vvv": applied_fleet.apply.output, "backup -vvv": applied_fleet.backup.output}
    # Verbose indeed, and the polling saw the backups' restic and its SFTP ssh.
    assert "ESTABLISH SSH CONNECTION" in outputs["apply -vvv"] and "ESTABLISH SSH CONNECTION" in outputs["backup -vvv"]
    restic_runs = [c for c in applied_fleet.cmdlines if re.search(r"(^|/)restic .* backup ", c)]
    assert restic_runs, "no restic backup process seen in %d polls" % applied_fleet.polls
    assert any(" -s sftp" in c and c.startswith("ssh ") for c in applied_fleet.cmdlines)

    host_files = []
    for host in fleet.fleet:
        for root in host.data_dir.glob("*/root"):
            secrets_dir = root / "etc/restorable/secrets"
            found = files_below(root, skip=[secrets_dir])
            host_files += found
            # The secrets are on the host, in the secrets directory only.
            assert (secrets_dir / "local-disk.password").read_text().strip() == fleet.secrets.restic_password
    names = {f.name for f in host_files}
    assert {"www.json", "www-offsite.json", "restorable_www.prom", "restorable-backup-www.service"} <= names
    assert {"restorable-backup-home"} <= names  # the cron host's entry
    contents = {str(path): path.read_bytes() for path in host_files}

    leaks = []
    for what, secret in secrets.items():
        leaks += ["%s in %s" % (what, where) for where, text in outputs.items() if secret in text]
        leaks += ["%s in the command line %r" % (what, c[:200]) for c in applied_fleet.cmdlines if secret in c]
        leaks += ["%s in %s" % (what, path) for path, data in contents.items() if secret.encode() in data]
    assert leaks == []
