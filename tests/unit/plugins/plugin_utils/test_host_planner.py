# -*- coding: utf-8 -*-
"""The host tier's planner: a job per target of each host dataset, its `options` as the host
engine reads them, and drills that boot the restored VM on the drill host's hypervisor."""
from __future__ import annotations

import copy

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.options import HostOptions, VmSelection  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.host import HostTierPlanner  # noqa: E402

SECRET = "{{ vault_pw }}"
VMS = {"patterns": ["web-*"], "names": ["erp01"], "exclude": ["web-test"]}
HV01 = {
    "restorable_targets": {
        "nas": {"type": "local", "path": "/srv/restic", "password": SECRET},
        "cloud": {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "acme", "access_key_id": SECRET,
                  "secret_access_key": SECRET, "password": SECRET, "offsite": True},
        "unused": {"type": "local", "path": "/mnt/usb", "password": SECRET},
    },
    "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
    "restorable_datasets": {
        "vms": {"tier": "host", "vms": VMS, "disks": {"exclude": ["vdb"]}, "quiesce": True, "mode": "differential",
                "full_every": 3, "targets": ["nas", "cloud"], "schedule": "nightly", "retention": {"daily": 7, "max_age": "30d"}},
        "www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}},
    },
    "restorable_drills": {
        "boot": {"datasets": ["vms"], "drill_host": "hv02", "calendar": "Sun *-*-* 06:00:00", "vm": "erp01",
                 "guest_commands": [{"argv": ["/bin/cat", "/data/ready"]}, {"argv": ["/usr/bin/systemctl", "is-active", "erp"]}]},
        "local": {"datasets": ["www", "vms"], "commands": [{"argv": ["/usr/local/bin/verify", "{sandbox}"]}]},
    },
}
HV02 = {"restorable_hypervisor": {"libvirt_uri": "qemu+tls://hv02.example.org/system"}}
ROOTS = {"hv01": "/hosts/hv01", "hv02": "/hosts/hv02"}


def policies(**hv01_settings) -> dict:
    hv01 = copy.deepcopy(HV01)
    if hv01_settings:
        hv01["restorable_hypervisor"] = hv01_settings
    return {"hv01": hv01, "hv02": copy.deepcopy(HV02)}


def planner(**hv01_settings) -> HostTierPlanner:
    return HostTierPlanner("hv01", Fleet(policies(**hv01_settings), ROOTS))


def test_the_policy_of_these_tests_is_valid():
    report = FleetValidator().validate(policies(libvirt_uri="qemu:///session", scratch_dir="/srv/scratch"))
    assert report.lines() == []


def test_a_host_dataset_gets_a_job_per_target_carrying_its_options():
    jobs = planner().jobs()
    assert [(j["name"], j["dataset"], j["target"]) for j in jobs] == [("vms", "vms", "nas"), ("vms-cloud", "vms", "cloud")]
    for job in jobs:
        config = job["config"]
        assert (config["tier"], config["paths"], config["excludes"]) == ("host", [], [])
        assert "consistency" not in config
        assert config["options"] == {
            "vms": VMS, "disks": {"exclude": ["vdb"]}, "quiesce": True, "mode": "differential", "full_every": 3,
            "libvirt_uri": "qemu:///system", "scratch_dir": "/hosts/hv01/var/lib/restorable/scratch"}
    assert jobs[0]["config"]["repository"]["url"] == "/srv/restic"
    assert jobs[1]["config"]["tags"] == ["dataset:vms"]  # further copies carry the dataset's tag


def test_the_hypervisor_settings_of_the_host_override_the_defaults():
    (job, _cloud) = planner(libvirt_uri="qemu:///session", scratch_dir="/srv/scratch").jobs()
    assert (job["config"]["options"]["libvirt_uri"], job["config"]["options"]["scratch_dir"]) == ("qemu:///session", "/srv/scratch")


def test_repositories_are_the_targets_of_host_datasets():
    plan = planner().plan()
    assert sorted(r["name"] for r in plan["repositories"]) == ["cloud", "nas"]
    assert plan["secrets"] == []


def test_the_agent_and_host_planners_split_the_datasets_by_tier():
    fleet = Fleet(policies(), ROOTS)
    by_tier = {p.tier: [j["dataset"] for j in p.jobs()] for p in TIERS.planners("hv01", fleet)}
    assert by_tier == {"agent": ["www"], "host": ["vms", "vms"], "cdp": [], "array": []}


def test_the_job_config_loads_on_the_host_as_the_host_tier_reads_it():
    for job in planner().jobs():
        config = JobConfig.from_dict(job["config"], source="/etc/restorable/%s.json" % job["name"])
        assert (config.tier, config.dataset, config.paths) == ("host", job["name"], [])
        assert config.retention == {"daily": 7, "max_age": 30 * 86400}
        options = HostOptions.from_config(config)
        assert options.vms == VmSelection(["erp01"], ["web-*"], ["web-test"], False)
        assert (options.disks_include, options.disks_exclude) == ([], ["vdb"])
        assert (options.quiesce, options.mode, options.full_every) == (True, "differential", 3)
        assert options.scratch_dir == "/hosts/hv01/var/lib/restorable/scratch"
        assert JobConfig.from_dict(config.to_dict()).options == config.options


def drill(name: str) -> dict:
    (entry,) = [e for e in planner().drills() if e["params"]["drill"] == name]
    return entry


def test_a_host_drill_boots_on_the_drill_hosts_hypervisor():
    entry = drill("boot")
    params = entry["params"]
    assert (params["tier"], params["dataset"], params["source_host"], params["drill_host"]) == ("host", "vms", "hv01", "hv02")
    assert params["libvirt_uri"] == "qemu+tls://hv02.example.org/system"
    assert params["guest_commands"] == [["/bin/cat", "/data/ready"], ["/usr/bin/systemctl", "is-active", "erp"]]
    assert params["vm"] == "erp01"
    assert params["checks"] == ["integrity", "freshness", "content", "application"]
    assert "canary_path" not in params and "application" not in params
    assert entry["status_file"] is None and entry["target"] == "nas"
    assert entry["repository"]["password_file"] == "/hosts/hv02/etc/restorable/secrets/drills/hv01-nas.password"


def test_a_host_drill_on_its_source_uses_its_hypervisor_and_custom_commands():
    params = drill("local")["params"]  # www of that drill is the agent planner's
    assert (params["tier"], params["drill_host"], params["libvirt_uri"]) == ("host", "hv01", "qemu:///system")
    assert params["checks"] == ["integrity", "freshness", "content", "application", "custom"]
    assert params["guest_commands"] == [] and "vm" not in params


def test_the_plan_describes_the_host_dataset():
    dataset = HV01["restorable_datasets"]["vms"]
    assert planner().describe(dataset) == "differential backups of erp01, web-* from the hypervisor"
    assert [c.media for c in planner().copies(dataset)] == ["disk", "object storage"]


def test_a_proxied_dataset_runs_on_its_proxy_one_job_per_hypervisor():
    fleet_policies = policies(libvirt_uri="qemu:///system", remote_uri="qemu+ssh://root@hv01/system",
                              scratch_dir="/san/scratch")
    fleet_policies["hv01"]["restorable_datasets"]["vms"]["proxy_host"] = "hv02"
    fleet = Fleet(fleet_policies, ROOTS)

    assert HostTierPlanner("hv01", fleet).jobs() == []  # the hypervisor only exposes its VMs
    proxy = HostTierPlanner("hv02", fleet)
    jobs = proxy.jobs()
    assert [job["name"] for job in jobs] == ["vms-hv01", "vms-cloud-hv01"]
    config = JobConfig.from_dict(jobs[0]["config"])
    assert (config.dataset, config.host, config.tier) == ("vms-hv01", "hv01", "host")
    assert "dataset:vms" in config.tags  # chains are found across the hypervisors' jobs
    assert config.password_file == "/hosts/hv02/etc/restorable/secrets/hv01-nas.password"  # on the proxy, apart from its own
    assert config.status_dir == "/hosts/hv02/var/lib/restorable"
    options = HostOptions.from_config(config)
    assert (options.libvirt_uri, options.scratch_dir) == ("qemu+ssh://root@hv01/system", "/san/scratch")
    assert [(r["name"], r["url"]) for r in proxy.plan()["repositories"]] == [
        ("hv01-cloud", "s3:https://s3.example.org/acme/hv01"), ("hv01-nas", "/srv/restic")]
