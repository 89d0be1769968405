# -*- coding: utf-8 -*-
"""The two-site fleet in network namespaces: every host answers Ansible over its own address,
and the branch's line is shaped."""
from __future__ import annotations

import subprocess
from pathlib import Path

from fleet.inventory import REPO, ansible_bin, ansible_env


def test_every_host_of_both_sites_answers_ansible(site_fleet, tmp_path: Path) -> None:
    inventory = site_fleet.write_inventory(tmp_path / "inventory.yml")
    run = subprocess.run([str(ansible_bin("ansible")), "-i", str(inventory), "all", "-m", "ansible.builtin.ping", "--forks", "10"],
                         capture_output=True, text=True, check=False, cwd=REPO, env=ansible_env(), timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.stdout.count("SUCCESS") == 5
    assert site_fleet.sites == ["branch", "hq"]
    assert len({host.address for host in site_fleet}) == 5
    qdisc = site_fleet["branch1"].exec(["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert "tbf" in qdisc and "rate 24Mbit" in qdisc
