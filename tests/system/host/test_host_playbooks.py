# -*- coding: utf-8 -*-
"""The host tier through the collection's playbooks, end to end: a fleet of two sshd hosts, hv1 a
hypervisor (a real private libvirtd running one guest) with a host dataset and a boot drill, hv2
with an agent dataset. ``restorable.backup.apply`` converges both (idempotent, check mode writes
nothing), ``restorable.backup.backup`` takes a full and then an incremental of the VM, the drill
playbook restores its newest point and boots it isolated, and ``restorable.backup.restore_vm``
restores it as a new VM; a broken host dataset is refused before anything is applied.
"""
from __future__ import annotations

import contextlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apply.apply_helpers import PlaybookRun, exec_start, restic, tree_state

from host_helpers import MIB, Lab, boot_lab, raw_bytes, vm_of
from playbook_helpers import DATASET, DRILL, HYPERVISOR, OTHER, HostFleet, layers, ledger, recap_line

GUEST = "play1"
COPY = GUEST + "-copy"
CHECK_COPY = GUEST + "-check"


def _undefine(daemon, name: str) -> None:
    daemon.run_virsh("destroy", name, check=False)
    daemon.run_virsh("undefine", name, "--checkpoints-metadata", check=False)


@pytest.fixture(scope="module")
def hosts(ssh_fleet_factory, hypervisors, tmp_path_factory) -> HostFleet:
    fleet = ssh_fleet_factory(2, "hv")
    made = HostFleet(fleet, tmp_path_factory.mktemp("host-playbooks"), hypervisors.hv01.uri, GUEST)
    files = made.files()
    files.mkdir(parents=True, exist_ok=True)
    for index in range(5):
        (files / ("file-%d.txt" % index)).write_text("file %d of %s\n" % (index, OTHER))
    yield made
    made.remove_made()


@pytest.fixture(scope="module")
def lab(hypervisors, guest_image) -> Lab:
    lab = boot_lab(GUEST, hypervisors.hv01, guest_image, hypervisors.storage)
    yield lab
    for name in (COPY, CHECK_COPY):
        _undefine(hypervisors.hv01, name)
    lab.guest.destroy()
    hypervisors.hv01.run_virsh("undefine", GUEST, "--checkpoints-metadata", check=False)


@dataclass
class Applied:
    inventory: Path
    run: PlaybookRun


@pytest.fixture(scope="module")
def applied(hosts: HostFleet) -> Applied:
    inventory = hosts.inventory("main")
    run = hosts.playbook(inventory, "apply")
    if run.returncode != 0:
        pytest.fail("the first apply failed: " + run.describe())
    return Applied(inventory, run)


@dataclass
class Backups:
    first: PlaybookRun
    second: PlaybookRun
    statuses: list[dict[str, Any]]
    vdb: bytes  # what the guest's vdb held when the second (newest) point was taken


@pytest.fixture(scope="module")
def backups(hosts: HostFleet, applied: Applied, lab: Lab) -> Backups:
    runs, statuses = [], []
    for offset, seed in ((0, 1), (3 * MIB + 4096, 2)):
        lab.write(offset, 256 * 1024, seed)
        run = hosts.playbook(applied.inventory, "backup")
        if run.returncode != 0:
            pytest.fail("backup %d failed: %s" % (len(runs) + 1, run.describe()))
        runs.append(run)
        statuses.append(hosts.status(DATASET))
    return Backups(runs[0], runs[1], statuses, bytes(lab.vdb))


# -- validation ---------------------------------------------------------------------------------

BAD_HOST_VARS = """\
---
# hv1 asks for something the host tier does not have
restorable_hypervisor:
  libvirt_uri: "{uri}"
restorable_datasets:
  vms:
    tier: host
{vms}
    mode: {mode}
    full_every: 5
    targets: [local]
    schedule: nightly
    retention:
      last: 10
"""


@pytest.mark.parametrize("field, vms, mode, bad_line", [
    ("mode", "    vms:\n      names: [%s]" % GUEST, "weekly", "    mode: weekly"),
    ("vms", "    vms: {}", "incremental", "    vms: {}"),
], ids=["mode-weekly", "empty-vms"])
def test_a_bad_host_dataset_fails_validation_and_nothing_is_applied(hosts, field, vms, mode, bad_line):
    variant = "bad-" + field
    inventory = hosts.inventory(variant, variant=variant, host_vars={HYPERVISOR: {}})
    text = BAD_HOST_VARS.format(uri=hosts.libvirt_uri, vms=vms, mode=mode)
    host_vars = inventory.parent / "host_vars" / (HYPERVISOR + ".yml")
    host_vars.parent.mkdir(parents=True, exist_ok=True)
    host_vars.write_text(text)
    line_number = text.splitlines().index(bad_line) + 1

    run = hosts.playbook(inventory, "apply")

    output = run.output
    assert run.returncode != 0, run.describe()
    assert "Traceback" not in output
    path = "%s: restorable_datasets.%s.%s: " % (HYPERVISOR, DATASET, field)
    lines = [line for line in output.splitlines() if line.startswith(path)]
    assert lines, run.describe()
    assert lines[0].endswith("%s:%d)" % (host_vars, line_number)), lines
    if field == "mode":
        assert "'weekly'" in lines[0], lines
    assert "nothing was applied" in output
    for name in (HYPERVISOR, OTHER):
        assert not (hosts.host(name).data_dir / variant).exists(), name


# -- apply --------------------------------------------------------------------------------------


def test_apply_converges_the_host_dataset(hosts, applied):
    run = applied.run
    for name in (HYPERVISOR, OTHER):
        counts = recap_line(run, name)
        assert counts["failed"] == 0 and counts["unreachable"] == 0 and counts["changed"] > 0, (name, counts)
    config = hosts.config(DATASET)
    assert config["tier"] == "host" and config["host"] == HYPERVISOR and config["paths"] == []
    assert config["options"] == {
        "vms": {"names": [GUEST]}, "disks": {}, "quiesce": False, "mode": "incremental", "full_every": 5,
        "libvirt_uri": hosts.libvirt_uri,
        "scratch_dir": str(hosts.root() / "var/lib/restorable/scratch"),
    }, config["options"]
    assert config["repository"]["url"] == str(hosts.repo())
    assert config["retention"] == {"last": 10}
    assert (hosts.repo() / "config").is_file()  # the repository was initialised
    assert (hosts.root() / "etc/restorable/secrets/local.password").stat().st_mode & 0o777 == 0o600
    # hv2 runs its agent job only; hv1 has no agent job.
    agent = hosts.config("files", OTHER)
    assert agent.get("tier", "agent") == "agent" and agent["paths"] == [str(hosts.files())], agent
    assert not hosts.config_file(DATASET, OTHER).exists()
    assert not hosts.config_file("files", HYPERVISOR).exists()


def _written(hosts: HostFleet) -> dict[str, tuple]:
    """The state of both agent roots and the repository, but restic's lock directory (whose mtime
    any restic command that takes and drops a lock moves)."""
    state = tree_state(*(hosts.root(name) for name in (HYPERVISOR, OTHER)), hosts.repo())
    return {path: entry for path, entry in state.items() if path != str(hosts.repo() / "locks")}


def _differences(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return ["%s: %s -> %s" % (path, before.get(path), after.get(path))
            for path in sorted(set(before) | set(after)) if before.get(path) != after.get(path)]


def test_a_second_apply_changes_nothing(hosts, applied):
    before = _written(hosts)
    again = hosts.playbook(applied.inventory, "apply")
    assert again.returncode == 0, again.describe()
    for name in (HYPERVISOR, OTHER):
        counts = recap_line(again, name)
        assert counts["changed"] == 0 and counts["failed"] == 0, "%s: %s\n%s" % (name, counts, again.describe())
    assert not _differences(before, _written(hosts))


def test_check_diff_of_a_changed_policy_reports_it_and_writes_nothing(hosts, applied):
    inventory = hosts.inventory("changed", full_every=7, mode="differential")
    before = _written(hosts)

    run = hosts.playbook(inventory, "apply", "--check", "--diff")

    assert run.returncode == 0, run.describe()
    assert recap_line(run, HYPERVISOR)["changed"] > 0, run.describe()
    assert recap_line(run, OTHER)["failed"] == 0, run.describe()
    assert "+++ after: %s" % hosts.config_file(DATASET) in run.stdout, run.describe()
    # hv2's policy is the same: none of its jobs, units or credentials would change.
    for place in ("etc/restorable", "etc/systemd"):
        assert "+++ after: %s/" % (hosts.root(OTHER) / place) not in run.stdout, run.describe()
    changed = [line for line in run.stdout.splitlines() if line.startswith(("-", "+")) and not line.startswith(("---", "+++"))]
    assert any('"full_every": 7' in line for line in changed if line.startswith("+")), changed
    assert any('"full_every": 5' in line for line in changed if line.startswith("-")), changed
    assert any('"mode": "differential"' in line for line in changed if line.startswith("+")), changed
    assert not _differences(before, _written(hosts))
    assert hosts.config(DATASET)["options"]["full_every"] == 5


# -- backup -------------------------------------------------------------------------------------


def test_backup_takes_a_full_then_an_incremental(hosts, backups):
    first, second = backups.statuses
    for run, status in zip((backups.first, backups.second), backups.statuses):
        assert status["result"] == "success", status.get("reason")
        assert recap_line(run, HYPERVISOR)["failed"] == 0
        assert "%s: success %s" % (DATASET, status["snapshot_id"]) in run.stdout, run.describe()
    vm = vm_of(first, GUEST)
    assert (vm["kind"], vm["position"], vm["result"]) == ("full", 0, "success"), vm
    assert sorted(vm["disks"]) == ["vda", "vdb"]
    vm = vm_of(second, GUEST)
    assert (vm["kind"], vm["position"], vm["result"]) == ("incremental", 1, "success"), vm
    assert vm["chain"] == vm_of(first, GUEST)["chain"]
    assert vm["bytes_added"] < 4 * MIB  # what changed, not the disks
    assert second["absent_vms"] == []
    # hv2's agent job ran in the same playbook.
    assert hosts.status("files", OTHER)["result"] == "success"


# -- drill --------------------------------------------------------------------------------------


def test_drill_restores_the_newest_point_and_boots_it_isolated(hosts, applied, backups, hypervisors):
    domains_before = hypervisors.hv01.virsh("list", "--all", "--name").split()
    evidence = hosts.workdir / "evidence"

    run = hosts.playbook(applied.inventory, "drill", "-e", "drill_evidence_dir=%s" % evidence)

    assert run.returncode == 0, run.describe()
    records = ledger(evidence)
    assert [(r["drill"], r["dataset"], r["source_host"], r["drill_host"]) for r in records] == [
        ("boot", DATASET, HYPERVISOR, HYPERVISOR)], records
    record = records[0]
    assert record["result"] == "passed", record.get("reason")
    found = layers(record)
    assert {n: found[n]["status"] for n in ("integrity", "restore", "freshness", "content", "application", "rto")} == \
        dict.fromkeys(("integrity", "restore", "freshness", "content", "application", "rto"), "ok"), found
    assert "guest agent ready" in found["application"]["message"]
    assert found["application"]["details"]["guest_commands"] == 1
    newest = vm_of(backups.statuses[1], GUEST)["point"]
    assert record["recovery_point"]["id"].startswith(newest), (record["recovery_point"], newest)
    assert record["rto"]["target_seconds"] == 1800 and record["rto"]["met"] is True
    assert record["rto"]["seconds"] >= found["application"]["details"]["boot_seconds"] > 0
    assert record["cleaned"]
    assert hypervisors.hv01.virsh("list", "--all", "--name").split() == domains_before  # the drill VM is gone
    suite = ET.parse(evidence / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"%s on %s" % (DATASET, HYPERVISOR)}
    assert cases["%s on %s" % (DATASET, HYPERVISOR)].find("failure") is None
    assert (evidence / "report.html").is_file() and (evidence / "report.md").is_file()


# -- restore_vm ---------------------------------------------------------------------------------


def _domains(daemon) -> list[str]:
    return daemon.virsh("list", "--all", "--name").split()


def test_restore_vm_defines_an_isolated_copy_once(hosts, applied, backups, lab, hypervisors, tmp_path):
    hv01 = hypervisors.hv01
    directory = hosts.host(HYPERVISOR).data_dir / "restore" / "copy"
    args = "job=%s vm=%s directory=%s define=%s root=%s" % (DATASET, GUEST, directory, COPY, hosts.root())
    try:
        run, result = hosts.adhoc(applied.inventory, HYPERVISOR, "restorable.backup.restore_vm", args)
        assert run.returncode == 0, run.describe()
        assert result["changed"] is True, result
        newest = vm_of(backups.statuses[1], GUEST)
        assert result["point"].startswith(newest["point"]) and result["kind"] == "incremental", result
        assert result["defined"] == COPY and len(result["chain"]) == 2
        assert result["disks"] == {t: str(directory / (t + ".qcow2")) for t in ("vda", "vdb")}
        assert all(Path(p).is_file() for p in result["disks"].values())
        assert raw_bytes(Path(result["disks"]["vdb"]), tmp_path) == backups.vdb

        assert COPY in _domains(hv01)
        assert hv01.virsh("domuuid", COPY).strip() not in ("", lab.uuid)
        assert hv01.virsh("domstate", COPY).strip() == "shut off"  # defined, not started
        blocks = hv01.virsh("domblklist", COPY)
        assert all(path in blocks for path in result["disks"].values()), blocks
        assert "interface" not in hv01.virsh("dumpxml", COPY)  # no network
        assert lab.guest.state() == "running"  # the original is untouched

        state = tree_state(directory)
        run, again = hosts.adhoc(applied.inventory, HYPERVISOR, "restorable.backup.restore_vm", args)
        assert run.returncode == 0, run.describe()
        assert again["changed"] is False, again
        assert again["point"] == result["point"]
        assert tree_state(directory) == state

        fresh = hosts.host(HYPERVISOR).data_dir / "restore" / "check"
        check_args = "job=%s vm=%s directory=%s define=%s root=%s" % (DATASET, GUEST, fresh, CHECK_COPY, hosts.root())
        before = tree_state(fresh.parent)
        run, checked = hosts.adhoc(applied.inventory, HYPERVISOR, "restorable.backup.restore_vm", check_args, "--check")
        assert run.returncode == 0, run.describe()
        assert checked["changed"] is True and checked["point"] == result["point"], checked
        assert not fresh.exists()
        assert tree_state(fresh.parent) == before
        assert CHECK_COPY not in _domains(hv01)
    finally:
        for name in (COPY, CHECK_COPY):
            with contextlib.suppress(Exception):
                _undefine(hv01, name)


# -- proxy offload ------------------------------------------------------------------------------


def test_a_proxied_dataset_is_backed_up_by_its_proxy(hosts, lab, hypervisors):
    """With proxy_host, apply schedules the dataset's job on the proxy (hv2, one job per
    hypervisor), and the backup playbook runs it there: the proxy drives hv1's libvirt, digests,
    compresses, encrypts and uploads; hv1 gets no job. (Both sshd hosts share this machine, so
    hv1's libvirt socket and scratch directory are where a real proxy would reach them over
    qemu+ssh and a SAN mount.)"""
    inventory = hosts.inventory("proxy", "proxy", proxy_host=OTHER)
    run = hosts.playbook(inventory, "apply")
    assert run.returncode == 0, run.describe()
    job = "%s-%s" % (DATASET, HYPERVISOR)
    assert not hosts.config_file(DATASET, HYPERVISOR, "proxy").exists()
    config = json.loads(hosts.config_file(job, OTHER, "proxy").read_text())
    assert (config["tier"], config["host"], config["options"]["libvirt_uri"]) == ("host", HYPERVISOR, hosts.libvirt_uri)
    assert config["repository"]["password_file"].startswith(str(hosts.root(OTHER, "proxy")))

    run = hosts.playbook(inventory, "backup", "--limit", OTHER)

    assert run.returncode == 0, run.describe()
    status = json.loads(hosts.status_file(job, OTHER, "proxy").read_text())
    vm = vm_of(status, GUEST)
    assert (status["result"], status["host"], vm["kind"]) == ("success", HYPERVISOR, "full"), status
    # The point is in hv1's repository (the proxy writes where hv1's own job would).
    listed = restic(str(hosts.repo(HYPERVISOR, "proxy")), Path(config["repository"]["password_file"]),
                    "snapshots", "--json", "--tag", "dataset:vms")
    assert [s["hostname"] for s in json.loads(listed.stdout)] == [HYPERVISOR]


# -- the scheduled drill ------------------------------------------------------------------------


def test_the_scheduled_host_drill_runs_as_its_timer_runs_it(hosts, lab, hypervisors, backups):
    """A host drill with a calendar is scheduled on its drill host; the service's command (run
    here as the timer would) restores the VM's newest point, boots it and keeps the evidence
    in the host's own ledger."""
    calendar = {DRILL: {"datasets": [DATASET], "calendar": "Sun *-*-* 05:00:00", "rto": "30m",
                        "guest_commands": [{"argv": ["/bin/sh", "-c", "test -b /dev/vdb"]}],
                        "sandbox": "{{ fleet_data_dir }}/sandbox"}}
    per_host = hosts.host_vars()
    per_host[HYPERVISOR]["restorable_drills"] = calendar
    inventory = hosts.inventory("main", "main", host_vars=per_host)
    run = hosts.playbook(inventory, "apply")
    assert run.returncode == 0, run.describe()
    unit = "restorable-drill-%s-%s" % (HYPERVISOR, DRILL)
    root = hosts.root()
    domains_before = hypervisors.hv01.virsh("list", "--all", "--name").split()

    ran = hosts.host(HYPERVISOR).run(exec_start(root / "etc/systemd/system" / (unit + ".service")), check=False,
                                     timeout=600)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    records = [json.loads(line) for line in (root / "var/lib/restorable/drills/ledger.jsonl").read_text().splitlines()]
    record = records[-1]
    assert (record["tier"], record["dataset"], record["result"]) == ("host", DATASET, "passed"), record
    assert layers(record)["application"]["status"] == "ok"
    assert hypervisors.hv01.virsh("list", "--all", "--name").split() == domains_before
