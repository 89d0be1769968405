# -*- coding: utf-8 -*-
"""A branch office's bandwidth cap on a shaped line: a real backup from a branch host (in its own
network namespace, behind a tc token bucket well above the cap) to a restic sftp repository on a
host of the other site. The job configuration comes from the collection's planner (the site
profile's bandwidth), the installed agent runs it; the rate is read from the branch link's own
byte counters while the backup runs: it stays at the cap, and without the cap the same line
carries far more (so the counters would show a cap that does not hold)."""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import PACKAGE_NAME, install_standalone
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.agent import AgentTierPlanner
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet

CAP_KIB = 1024  # the site's upload cap, KiB/s; the branch line (24 Mbit/s) carries ~2.9 times that
DATA_MIB = 8
PASSWORD = "branch-bandwidth-test-password-51c2"
# Wire bytes per payload byte: TCP/IP and Ethernet headers, SSH framing and MACs.
OVERHEAD = 1.10
# restic's limiter lets one second of data through at once; the steady rate is read after it.
BURST_SECONDS = 1.5
SAMPLE_SECONDS = 0.1


class LinkSampler:
    """Reads a host's transmit byte counter every SAMPLE_SECONDS while a backup runs."""

    def __init__(self, host) -> None:
        self.host = host
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.host.tx_bytes()))
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> "LinkSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic(), self.host.tx_bytes()))

    def transfer(self) -> tuple[int, float]:
        """(bytes, seconds) of the bulk transfer: from the end of the limiter's first burst to
        the last sample in which the link still moved data in bulk."""
        step = 32 * 1024
        active = [i for i in range(1, len(self.samples)) if self.samples[i][1] - self.samples[i - 1][1] >= step]
        assert active, "no bulk transfer on the link: %r" % self.samples[-3:]
        start_time = self.samples[active[0] - 1][0]
        first = next((i for i in range(active[0], active[-1] + 1) if self.samples[i][0] - start_time >= BURST_SECONDS),
                     active[0] - 1)
        last = active[-1]
        moved = self.samples[last][1] - self.samples[first][1]
        seconds = self.samples[last][0] - self.samples[first][0]
        assert seconds > 1.0, "the bulk transfer was too short to measure: %d bytes in %.2f s" % (moved, seconds)
        return moved, seconds


def branch_policy(fleet, target_path: str) -> dict:
    hq1 = fleet["hq1"]
    host_key = (hq1.base_dir / "ssh_host_ed25519_key.pub").read_text().split()
    return {
        "restorable_sites": {"branch": {"bandwidth": {"upload_kbps": CAP_KIB}, "concurrency": 1}},
        "restorable_site": "branch",
        "restorable_targets": {"hq": {
            "type": "sftp", "host": hq1.address, "user": "root", "path": target_path, "password": PASSWORD,
            "ssh_private_key": hq1.client.key.private.read_text(),
            "known_hosts": "%s %s %s" % (hq1.address, host_key[0], host_key[1])}},
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
        "restorable_datasets": {"files": {"tier": "agent", "paths": [], "targets": ["hq"], "schedule": "nightly",
                                          "retention": {"last": 3}}},
    }


def write_private(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")


def test_the_site_cap_holds_on_the_branch_line(site_fleet, tmp_path: Path) -> None:
    branch = site_fleet["branch1"]
    data = branch.data_dir / "bandwidth-data"
    data.mkdir(parents=True, exist_ok=True)
    root = tmp_path / "branch1-root"
    policy = branch_policy(site_fleet, str(site_fleet["hq1"].data_dir / ("bandwidth-repo-%d" % os.getpid())))
    policy["restorable_datasets"]["files"]["paths"] = [str(data)]
    planner = AgentTierPlanner("branch1", Fleet({"branch1": policy}, {"branch1": str(root)}))
    job = planner.jobs()[0]
    assert job["config"]["schedule"]["bandwidth"] == {"upload_kbps": CAP_KIB}

    # What the repository module places on the host: password, key and known_hosts, then init.
    repository = planner.agent.repository("hq")
    write_private(repository["password_file"], PASSWORD)
    secrets = os.path.dirname(repository["password_file"])
    write_private(os.path.join(secrets, "hq.key"), policy["restorable_targets"]["hq"]["ssh_private_key"])
    write_private(os.path.join(secrets, "hq.known_hosts"), policy["restorable_targets"]["hq"]["known_hosts"])
    options = [arg for option in repository["options"] for arg in ("-o", option)]
    init = branch.exec(["restic", "-r", repository["url"], *options, "--password-file", repository["password_file"], "init"],
                       timeout=60)
    assert init.returncode == 0, init.stderr

    install = tmp_path / "install"
    install_standalone(str(install))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(install)}

    def backup(name: str, config: dict) -> tuple[int, float]:
        """A fresh DATA_MIB of random data, backed up from the branch namespace; the link's (bytes, seconds)."""
        (data / name).write_bytes(os.urandom(DATA_MIB * 1024 * 1024))
        path = tmp_path / ("%s.json" % name)
        path.write_text(json.dumps(config))
        with LinkSampler(branch) as sampler:
            run = subprocess.run(["ip", "netns", "exec", str(branch.netns), "/usr/bin/python3", "-m", PACKAGE_NAME, "run",
                                  "--config", str(path)], capture_output=True, text=True, env=env, cwd="/", timeout=120,
                                 check=False)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        return sampler.transfer()

    moved, seconds = backup("capped", job["config"])
    capped = moved / seconds / 1024
    uncapped_config = json.loads(json.dumps(job["config"]))
    del uncapped_config["schedule"]["bandwidth"]
    moved, seconds = backup("uncapped", uncapped_config)
    uncapped = moved / seconds / 1024
    print("branch link: capped %.0f KiB/s (cap %d), uncapped %.0f KiB/s" % (capped, CAP_KIB, uncapped))
    assert CAP_KIB * 0.6 <= capped <= CAP_KIB * OVERHEAD * 1.1, (capped, CAP_KIB)
    # The line itself carries much more: what held the rate was the cap.
    assert uncapped >= CAP_KIB * 1.5, (uncapped, capped)
