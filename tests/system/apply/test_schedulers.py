# -*- coding: utf-8 -*-
"""Scheduled jobs as the hosts see them: a real systemd host (timer enabled, units verified,
the timer-started service backs up) and a cron host of the sshd fleet (cron.d entry)."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

import pytest
import testinfra

from apply_helpers import TARGETS, write_yaml_inventory

JOB = "srv"
SERVICE = "restorable-backup-%s.service" % JOB
TIMER = "restorable-backup-%s.timer" % JOB
STATUS = "/var/lib/restorable/%s.json" % JOB
WAIT_FOR_TIMER = 90.0


@pytest.fixture(scope="module")
def systemd_applied(agent_fleet, systemd_host):
    """The systemd host converged with agent_root "/" and a job every 10 seconds."""
    systemd_host.run("mkdir -p /srv/data/www && echo 'served by systemd1' > /srv/data/www/index.html && "
                     "head -c 65536 /dev/urandom > /srv/data/blob.bin")
    directory = agent_fleet.workdir / "systemd"
    agent_fleet.write_vault(directory)
    variables = {
        "agent_root": "/",
        "agent_install_restic": True,
        "restorable_compliance": {"plaintext_secrets": "error"},
        "restorable_targets": {
            "local-disk": {"type": "local", "path": "/srv/restic/repo", "password": "{{ vault_restic_password }}"},
        },
        # No jitter: the timer fires on every 10th second.
        "restorable_schedules": {"every-10s": {"calendar": "*:*:0/10"}},
        "restorable_datasets": {
            JOB: {"tier": "agent", "paths": ["/srv/data"], "targets": ["local-disk"], "schedule": "every-10s",
                  "rpo": "1h", "retention": {"last": 3}},
        },
    }
    inventory = write_yaml_inventory(directory / "hosts.yml", {"systemd": [systemd_host]}, variables)
    run = agent_fleet.playbook(inventory, "apply")
    assert run.returncode == 0, run.describe()
    return inventory


@pytest.fixture(scope="module")
def container(systemd_host, fleet_ssh_client):
    """testinfra's SSH backend on the systemd host, with the fleet's key."""
    return testinfra.get_host(
        "ssh://root@%s:%d" % (systemd_host.address, systemd_host.port),
        ssh_identity_file=str(fleet_ssh_client.key.private),
        ssh_extra_args="-F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no "
                       "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
    )


def test_systemd_timer_is_enabled_and_active(systemd_applied, container):
    timer = container.service(TIMER)
    assert timer.is_enabled
    assert timer.is_running
    assert container.file("/etc/systemd/system/" + SERVICE).exists
    assert "OnCalendar=*:*:0/10" in container.file("/etc/systemd/system/" + TIMER).content_string
    # auto picked systemd: no cron entry on this host.
    assert not container.file("/etc/cron.d/restorable-backup-" + JOB).exists


def test_second_apply_on_the_systemd_host_changes_nothing(systemd_applied, agent_fleet):
    again = agent_fleet.playbook(systemd_applied, "apply")
    assert again.returncode == 0, again.describe()
    assert again.recap["systemd1"]["changed"] == 0, again.describe()


def test_systemd_units_verify(systemd_applied, container):
    units = " ".join("/etc/systemd/system/" + unit for unit in (SERVICE, TIMER))
    result = container.run("systemd-analyze verify %s" % units)
    assert result.rc == 0, result.stdout + result.stderr


def test_secrets_and_job_config_on_the_systemd_host(systemd_applied, container):
    password = container.file("/etc/restorable/secrets/local-disk.password")
    assert password.exists and password.mode == 0o600
    assert password.user == "root" and password.group == "root"
    assert container.file("/etc/restorable/secrets").mode == 0o700
    config = container.file("/etc/restorable/%s.json" % JOB)
    assert config.exists and config.user == "root"
    document = json.loads(config.content_string)
    assert document["repository"] == {"url": "/srv/restic/repo",
                                      "password_file": "/etc/restorable/secrets/local-disk.password"}
    assert document["status_dir"] == "/var/lib/restorable"
    assert container.file("/usr/local/lib/restorable/restorable_agent/__main__.py").exists


def test_timer_started_service_backs_up(systemd_applied, systemd_host, container):
    deadline = time.monotonic() + WAIT_FOR_TIMER
    status = {}
    while time.monotonic() < deadline:
        result = container.run("cat %s" % STATUS)
        if result.rc == 0:
            try:
                status = json.loads(result.stdout)
            except ValueError:
                status = {}
            if status.get("result") == "success":
                break
        time.sleep(1)
    journal = container.run("journalctl --no-pager -u %s" % SERVICE).stdout
    assert status.get("result") == "success", "no successful run within %.0f s; status %s; journal:\n%s" % (
        WAIT_FOR_TIMER, status, journal[-4000:])
    # The run that wrote it is the service the timer started (nothing else ran a backup here).
    assert status["snapshot_id"] in journal, journal[-4000:]
    assert container.run("systemctl show -p Result --value %s" % SERVICE).stdout.strip() == "success"
    snapshots = json.loads(container.check_output(
        "RESTIC_PASSWORD_FILE=/etc/restorable/secrets/local-disk.password restic --no-cache "
        "-r /srv/restic/repo snapshots --json"))
    assert any(s["id"].startswith(status["snapshot_id"]) and "dataset:%s" % JOB in s["tags"] for s in snapshots)


# -- cron, on host3 of the sshd fleet (agent_scheduler: cron) ------------------------------------


@pytest.fixture(scope="module")
def local():
    """The sshd hosts share this machine's filesystem: testinfra's local backend sees their roots."""
    return testinfra.get_host("local://")


def cron_entry(text: str) -> tuple[dict[str, str], str, str]:
    """(environment, schedule and user, command) of a cron.d file with one job."""
    env, jobs = {}, []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            key, value = line.split("=", 1)
            env[key] = value
        else:
            jobs.append(line)
    assert len(jobs) == 1, text
    fields = jobs[0].split(None, 6)
    return env, " ".join(fields[:6]), fields[6]


def test_cron_host_gets_cron_entries(applied_fleet, local):
    fleet = applied_fleet.fleet
    root = fleet.root("host3")
    for job in fleet.jobs("host3"):
        entry = local.file("%s/etc/cron.d/restorable-backup-%s" % (root, job))
        assert entry.exists and entry.mode == 0o644 and entry.user == "root"
        config = "%s/etc/restorable/%s.json" % (root, job)
        env, when, command = cron_entry(entry.content_string)
        assert env == {"SHELL": "/bin/sh", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        # 02:30 sharp (host3's schedule has no jitter), as root, the same runner as the module.
        assert when == "30 2 * * * root"
        assert command == "cd / && PYTHONPATH=%s /usr/bin/python3 -m restorable_agent run --config %s --quiet" % (
            shlex.quote(str(root / "usr/local/lib/restorable")), shlex.quote(config))
        assert local.file(config).mode == 0o600
    for target in TARGETS:
        secret = local.file("%s/etc/restorable/secrets/%s.password" % (root, target))
        assert secret.mode == 0o600 and secret.user == "root"
    env = local.file("%s/etc/restorable/secrets/offsite.env" % root)
    assert env.mode == 0o600
    assert local.file("%s/etc/restorable/secrets/nas.key" % root).mode == 0o600
    # No systemd units on the cron host; the systemd hosts of the fleet have them (inactive).
    assert not local.file("%s/etc/systemd/system" % root).exists
    assert local.file("%s/etc/systemd/system/restorable-backup-www.timer" % fleet.root("host1")).exists
    assert not local.file("%s/etc/cron.d" % fleet.root("host1")).exists


def test_cron_command_backs_up(applied_fleet, local):
    """What cron would run at 02:30, run now in cron's environment (no HOME for a cache)."""
    fleet = applied_fleet.fleet
    root = fleet.root("host3")
    status_file = fleet.status_file("host3", "home")
    before = json.loads(status_file.read_text())
    env, _when, command = cron_entry(local.file("%s/etc/cron.d/restorable-backup-home" % root).content_string)
    result = subprocess.run(["/bin/sh", "-c", command], env=dict(env, LOGNAME="root"), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    status = json.loads(status_file.read_text())
    fleet.remember_snapshots({status["snapshot_id"]})
    assert status["result"] == "success" and status["snapshot_id"] != before["snapshot_id"]
    assert [h["result"] for h in status["history"]] == ["success", "success"]
