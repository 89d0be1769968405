# -*- coding: utf-8 -*-
"""The tier registry: what has no planner is said (host, field path, tier), scores nothing, and
the plan describes only what a planner does; each host is planned once per play. This version
plans every tier of the schema; a registry without the array tier's planner (WITHOUT_ARRAY) is the
example of a tier without one."""
from __future__ import annotations

import copy
from collections.abc import Mapping

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.filter.drill_plan import drill_plan  # noqa: E402
from ansible_collections.restorable.backup.plugins.filter.fleet_plan import fleet_plan  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils import drill_plan as drill_plan_utils  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.compliance import ComplianceScorer  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.plan import plan_lines  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.problems import ERROR, WARNING  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import REGISTRY, TIERS, Tiers  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.agent import AgentTierPlanner  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.array import ArrayTierPlanner  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.cdp import CdpTierPlanner  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.host import HostTierPlanner  # noqa: E402

SECRET = "{{ vault_pw }}"
POLICY = {
    "restorable_targets": {
        "nas": {"type": "local", "path": "/srv/restic", "password": SECRET},
        "cloud": {"type": "s3", "bucket": "acme-backup", "access_key_id": SECRET, "secret_access_key": SECRET, "password": SECRET,
                  "object_lock": {"mode": "compliance", "days": 30}, "offsite": True},
        "usb": {"type": "local", "path": "/mnt/usb", "password": SECRET},
        "vtl": {"type": "tape_library", "driver": "directory", "path": "/srv/vtl", "slots": 4, "drives": 1,
                "media": {"type": "LTO-8", "capacity_gb": 1}, "pools": {"daily": {"retention_days": 35}}},
    },
    "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
    "restorable_datasets": {
        "www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas", "cloud"], "schedule": "nightly", "retention": {"daily": 7}},
        "vms": {"tier": "host", "vms": {"all": True}, "targets": ["nas", "cloud"], "schedule": "nightly", "retention": {"daily": 7}},
        "data": {"tier": "array", "volumes": ["/srv/data"], "provider": "btrfs", "schedule": "nightly",
                 "targets": ["usb"], "retention": {"daily": 7}, "export": {"library": "vtl", "pool": "daily"}},
    },
    "restorable_drills": {
        "weekly": {"datasets": ["www", "vms", "data"], "calendar": "weekly"},
        "data-only": {"datasets": ["data"], "calendar": "weekly"},
    },
}
NOT_APPLIED = "validated, not applied: tier %s is not supported by this version"
WITHOUT_ARRAY = Tiers({tier: planner for tier, planner in REGISTRY.items() if tier != "array"})


def policy(**compliance) -> dict:
    document = copy.deepcopy(POLICY)
    if compliance:
        document["restorable_compliance"] = compliance
    return document


def validate(document: dict, tiers: Tiers | None = WITHOUT_ARRAY):
    return FleetValidator(tiers=tiers).validate({"hv01": document})


def test_every_tier_of_the_schema_has_a_planner_in_this_version():
    assert dict(REGISTRY) == {"agent": AgentTierPlanner, "host": HostTierPlanner, "cdp": CdpTierPlanner, "array": ArrayTierPlanner}
    assert [TIERS.supports(t) for t in ("agent", "host", "cdp", "array")] == [True, True, True, True]
    assert not TIERS.unsupported("hv01", policy()) and not FleetValidator(tiers=TIERS).validate({"hv01": policy()}).problems
    assert [WITHOUT_ARRAY.supports(t) for t in ("agent", "host", "cdp", "array")] == [True, True, True, False]


def test_a_dataset_or_drill_without_a_planner_is_a_warning_naming_host_field_path_and_tier():
    report = validate(policy())
    assert {p.severity for p in report.problems} == {WARNING} and not report.errors
    assert report.lines() == [
        "warning: hv01: restorable_datasets.data: " + NOT_APPLIED % "array",
        "warning: hv01: restorable_drills.weekly.datasets[2]: " + NOT_APPLIED % "array",
        "warning: hv01: restorable_drills.data-only.datasets[0]: " + NOT_APPLIED % "array",
    ]


def test_the_compliance_setting_makes_it_an_error():
    report = validate(policy(unsupported_tiers="error"))
    assert [(p.severity, p.line()) for p in report.problems] == [
        (ERROR, "hv01: restorable_datasets.data: " + NOT_APPLIED % "array"),
        (ERROR, "hv01: restorable_drills.weekly.datasets[2]: " + NOT_APPLIED % "array"),
        (ERROR, "hv01: restorable_drills.data-only.datasets[0]: " + NOT_APPLIED % "array"),
    ]
    assert not validate(policy(unsupported_tiers="warn")).errors


def test_no_dataset_and_no_drill_is_dropped_in_silence():
    """Everything the policy declares is either in some planner's jobs and drills, or reported."""
    document = policy()
    reported = {p.path for p in validate(document).problems}
    planners = WITHOUT_ARRAY.planners("hv01", Fleet({"hv01": document}))
    jobs = {job["dataset"] for planner in planners for job in planner.jobs()}
    drills = {(e["params"]["drill"], e["params"]["dataset"]) for planner in planners for e in planner.drills()}
    for name in document["restorable_datasets"]:
        assert (name in jobs) != (("restorable_datasets", name) in reported), name
    for drill_name, drill in document["restorable_drills"].items():
        for index, dataset in enumerate(drill["datasets"]):
            assert ((drill_name, dataset) in drills) != (("restorable_drills", drill_name, "datasets", index) in reported)


def test_without_a_registry_the_policy_is_validated_as_written():
    report = validate(policy(), tiers=None)
    assert report.lines() == []
    assert sorted(report.compliance["hv01"]) == ["data", "vms", "www"]


def test_3_2_1_1_0_leaves_out_what_no_planner_makes():
    report = validate(policy())
    assert sorted(report.compliance["hv01"]) == ["vms", "www"]
    # The drill of data (weekly) counts for www and vms alone; data-only counts for nothing.
    assert report.compliance["hv01"]["www"]["score"] == "5/5"
    assert report.compliance["hv01"]["vms"]["score"] == "5/5"


def test_3_2_1_1_0_counts_copies_and_drills_only_where_a_planner_makes_them():
    document = policy(rule_3_2_1_1_0="enforce")
    document["restorable_datasets"]["www"]["enabled"] = False  # planned by no one: no copy, no drill
    assert ComplianceScorer("hv01", document).scores()[0].score == "5/5"  # as written
    scores = {s.dataset: s.score for s in ComplianceScorer("hv01", document, WITHOUT_ARRAY).scores()}
    assert scores == {"www": "0/5", "vms": "5/5"}  # data (array) has no planner: no score at all


def test_a_registered_planner_is_what_makes_a_tier_count():
    class ArrayPlanner(AgentTierPlanner):
        tier = "array"

    tiers = Tiers({"agent": AgentTierPlanner, "array": ArrayPlanner})
    report = validate(policy(), tiers)
    assert sorted(report.compliance["hv01"]) == ["data", "www"]
    assert [p.path for p in report.problems] == [("restorable_datasets", "vms"), ("restorable_drills", "weekly", "datasets", 1)]


def test_plan_prints_the_warning_line_not_a_mechanism():
    lines = plan_lines(policy(), {"www": {"score": "5/5"}}, "hv01", WITHOUT_ARRAY)
    assert lines == [
        "warning: hv01: restorable_datasets.data: " + NOT_APPLIED % "array",
        "dataset vms (host tier): incremental backups of every VM from the hypervisor",
        "  copy to nas (local /srv/restic)",
        "  copy to cloud (s3 s3:aws/acme-backup)",
        "  when: *-*-* 01:00:00",
        "  keep: daily 7",
        "dataset www (agent tier): restic backup of /srv/www",
        "  copy to nas (local /srv/restic)",
        "  copy to cloud (s3 s3:aws/acme-backup)",
        "  when: *-*-* 01:00:00",
        "  keep: daily 7",
        "  3-2-1-1-0: 5/5",
        "warning: hv01: restorable_drills.data-only.datasets[0]: " + NOT_APPLIED % "array",
        "drill weekly: restore www, vms weekly on the source host",
        "warning: hv01: restorable_drills.weekly.datasets[2]: " + NOT_APPLIED % "array",
    ]
    assert not [line for line in lines if "VM backup" in line or "recovery point" in line]


def test_plan_under_the_error_setting_prints_the_error_line():
    lines = plan_lines(policy(unsupported_tiers="error"), None, "hv01", WITHOUT_ARRAY)
    assert lines[0] == "hv01: restorable_datasets.data: " + NOT_APPLIED % "array"


# --- each host planned once per play ----------------------------------------------------------------

class HostVariables(dict):
    """One host's variables; keys() is what a walk over them starts with."""

    def __init__(self, variables: dict, walks: dict, host: str) -> None:
        super().__init__(variables)
        self.walks, self.host = walks, host

    def keys(self):
        self.walks[self.host] = self.walks.get(self.host, 0) + 1
        return super().keys()


class CountingHostvars(Mapping):
    """Ansible's hostvars as filters get them; counts the walks over each host's variables."""

    def __init__(self, policies: dict) -> None:
        self.policies = policies
        self.walks: dict = {}

    def __getitem__(self, host: str) -> dict:
        return HostVariables(self.policies[host], self.walks, host)

    def __iter__(self):
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)


def fleet(hosts: int) -> dict:
    policies = {}
    for index in range(hosts):
        document = policy()
        document["restorable_drills"]["weekly"]["drill_host"] = "host000"
        policies["host%03d" % index] = document
    return policies


@pytest.mark.parametrize("hosts", [5, 40])
def test_each_host_is_read_once_for_every_task_of_a_play(hosts):
    hostvars = CountingHostvars(fleet(hosts))
    tasks = 3  # the role asks for each host's drills in three tasks
    for _task in range(tasks):
        for host in hostvars:
            drill_plan(hostvars, host)
    # Planned per task, every host would be walked hosts * tasks times.
    assert hostvars.walks == {host: 1 for host in hostvars}
    # www and vms of every host; data (array) is drilled where its library runs: host000's own two.
    assert drill_plan(hostvars, "host000")["drills"] == 2 * hosts + 2


def test_another_play_plans_again():
    policies = fleet(3)
    first, second = CountingHostvars(policies), CountingHostvars(policies)
    assert drill_plan_utils.planner_from_hostvars(first) is drill_plan_utils.planner_from_hostvars(first)
    assert drill_plan_utils.planner_from_hostvars(second) is not drill_plan_utils.planner_from_hostvars(first)


def test_fleet_plan_gives_each_host_its_tiers_and_drills():
    hostvars = CountingHostvars(fleet(4))
    plans = fleet_plan(hostvars, list(hostvars))
    assert sorted(plans["host001"]["tiers"]) == ["agent", "array", "cdp", "host"]
    assert [j["name"] for j in plans["host001"]["tiers"]["array"]["jobs"]] == ["data"]
    assert [j["name"] for j in plans["host001"]["tiers"]["agent"]["jobs"]] == ["www", "www-cloud"]
    assert [j["name"] for j in plans["host001"]["tiers"]["host"]["jobs"]] == ["vms", "vms-cloud"]
    assert plans["host000"]["drills"]["drills"] == 10 and plans["host001"]["drills"]["drills"] == 2
    assert hostvars.walks == {host: 1 for host in hostvars}
