# -*- coding: utf-8 -*-
"""restorable.backup.rollout on the two-site fleet (branch1-2, hq1-3, each host in its own network
namespace): site by site, a canary first, stop at the first failure. A canary that cannot be
converged (its agent_root is a file, not a directory) leaves every other host untouched; once it
is fixed the rollout converges all of them, canary first in each site."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from fleet.inventory import REPO, ansible_bin, ansible_env

SITES = {"branch": {"timezone": "Europe/Paris", "window": {"start": "20:00", "end": "06:00"},
                    "bandwidth": {"upload_kbps": 2000}, "concurrency": 1},
         "hq": {"concurrency": 2}}


def rollout(inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory), "--forks", "10",
                           "restorable.backup.rollout"], capture_output=True, text=True, check=False,
                          cwd=REPO, env=ansible_env(), stdin=subprocess.DEVNULL, timeout=300)


def converged(host) -> bool:
    """The job configuration apply writes below the host's agent_root."""
    return (host.data_dir / "rollout-root/etc/restorable/files.json").is_file()


def test_rollout_stops_at_a_failing_canary_then_converges_site_by_site(site_fleet, tmp_path: Path) -> None:
    policy = {
        "agent_root": "{{ fleet_data_dir }}/rollout-root",
        "restorable_sites": SITES,
        "restorable_targets": {"repo": {
            "type": "local", "path": "{{ fleet_data_dir }}/rollout-repository",
            "password": "{{ lookup('ansible.builtin.password', '%s/password', length=32, "
                        "chars=['ascii_letters', 'digits']) }}" % tmp_path}},
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 20:00:00"}},
        "restorable_datasets": {"files": {"tier": "agent", "paths": ["{{ fleet_data_dir }}"], "targets": ["repo"],
                                          "schedule": "nightly", "retention": {"last": 3}}},
    }
    host_vars = {host.name: {"restorable_site": host.site} for host in site_fleet}
    host_vars["hq2"]["rollout_canary"] = True  # hq's canary by choice; branch's is its first host
    inventory = site_fleet.write_inventory(tmp_path / "inventory.yml", extra_vars=policy, host_vars=host_vars)

    canary = site_fleet["branch1"]
    (canary.data_dir / "rollout-root").write_text("not a directory\n")  # nothing can be created below it
    try:
        run = rollout(inventory)
        assert run.returncode != 0, run.stdout[-3000:]
        assert "fatal: [branch1]" in run.stdout, run.stdout[-3000:]
        assert batches(run.stdout) == [["branch1"]], run.stdout[-6000:]
        untouched = [h.name for h in site_fleet if h.name != "branch1" and not (h.data_dir / "rollout-root").exists()]
        assert untouched == ["branch2", "hq1", "hq2", "hq3"]
    finally:
        (canary.data_dir / "rollout-root").unlink()

    run = rollout(inventory)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert batches(run.stdout) == [["branch1"], ["branch2"], ["hq2"], ["hq1", "hq3"]]
    assert [h.name for h in site_fleet if converged(h)] == ["branch1", "branch2", "hq1", "hq2", "hq3"]
    # The start slots reach the scheduler: branch (1 at a time, 20:00-06:00) starts branch2 5 h
    # after branch1; hq (2 at a time, no window: over the day) starts hq3 12 h after hq1 and hq2.
    assert {h.name: start_delay(h) for h in site_fleet} == {"branch1": 0, "branch2": 18000, "hq1": 0, "hq2": 0, "hq3": 43200}

    shown = subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory), "restorable.backup.plan"],
                           capture_output=True, text=True, check=False, cwd=REPO, stdin=subprocess.DEVNULL, timeout=300,
                           env=ansible_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"))
    assert shown.returncode == 0, shown.stdout[-3000:]
    for line in ("site branch: 2 hosts, window 20:00-06:00 Europe/Paris, upload capped at 2000 KiB/s per host, concurrency 1: 2 slots",
                 "  slot 1: branch1 at 20:00", "  slot 2: branch2 at 01:00",
                 "site hq: 3 hosts, concurrency 2: 2 slots", "  slot 1: hq1, hq2 at 20:00", "  slot 2: hq3 at 08:00"):
        assert '"%s"' % line in shown.stdout, shown.stdout[-3000:]


def start_delay(host) -> int:
    """The start delay apply wrote into the host's scheduled job (0 without one)."""
    units = host.data_dir / "rollout-root"
    found = [re.search(r"--delay (\d+)", path.read_text()) for path in units.rglob("restorable-backup-files*") if path.is_file()]
    delays = {int(match.group(1)) for match in found if match}
    assert len(delays) <= 1, delays
    return delays.pop() if delays else 0


def batches(stdout: str) -> list[list[str]]:
    """The batches the rollout announced, in order."""
    return [line.split(", ") for line in re.findall(r"msg: 'rollout batch: ([^']*)'", stdout)]
