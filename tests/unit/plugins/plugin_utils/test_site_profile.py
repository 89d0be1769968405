# -*- coding: utf-8 -*-
"""Site profiles: window, time zone and bandwidth reach the jobs of every tier, and `concurrency`
staggers the hosts of a site into start slots, deterministically over the whole fleet."""
from __future__ import annotations

import copy

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")
pytest.importorskip("fastjsonschema")

from ansible_collections.restorable.backup.plugins.filter.rollout_batches import rollout_batches  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.plan import plan_lines, site_lines  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.site_profile import SiteProfile, rollout, slot_timing  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers import TIERS  # noqa: E402
from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.base import Fleet  # noqa: E402

SECRET = "{{ vault_pw }}"
LYON = {"timezone": "Europe/Paris", "window": {"start": "20:00", "end": "06:00"}, "bandwidth": {"upload_kbps": 2000}, "concurrency": 2}
HOUR = 3600


def host_policy(site: str | None = "lyon", calendar: str = "*-*-* 20:00:00", **schedule) -> dict:
    policy = {
        "restorable_sites": {"lyon": copy.deepcopy(LYON), "paris": {"timezone": "Europe/Paris"}},
        "restorable_targets": {"nas": {"type": "local", "path": "/srv/restic", "password": SECRET}},
        "restorable_schedules": {"nightly": dict({"calendar": calendar}, **schedule)},
        "restorable_datasets": {
            "www": {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}},
            "vms": {"tier": "host", "vms": {"all": True}, "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}},
            "pg": {"tier": "cdp", "source": {"type": "postgresql", "data_directory": "/var/lib/postgresql/15/main"},
                   "interval_minutes": 5, "wal_archive": "nas", "base_backup_schedule": "nightly", "retention": {"daily": 7}},
            "vol": {"tier": "array", "volumes": ["/srv/vol"], "provider": "btrfs", "schedule": "nightly", "retention": {"last": 3}},
        },
    }
    if site:
        policy["restorable_site"] = site
    return policy


def fleet(**schedule) -> dict:
    """Six hosts in lyon (named out of order), two in paris, one without a site."""
    names = ["lyon-f", "lyon-b", "lyon-d", "lyon-a", "lyon-e", "lyon-c"]
    policies = {name: host_policy("lyon", **schedule) for name in names}
    policies.update({"paris-1": host_policy("paris"), "paris-2": host_policy("paris"), "lone": host_policy(None)})
    return policies


def jobs_of(policies: dict, host: str) -> dict:
    """Every tier's jobs of the host, by tier then job name."""
    planners = TIERS.planners(host, Fleet(policies))
    return {p.tier: {job["name"]: job for job in p.jobs()} for p in planners}


def test_the_policy_of_these_tests_is_valid():
    assert FleetValidator(tiers=TIERS).validate(fleet()).lines() == []


def test_concurrency_2_on_a_6_host_site_gives_3_slots_of_sorted_hosts():
    roster = Fleet(fleet()).sites()["lyon"]
    slots = {host: SiteProfile(host, host_policy(), roster).slot() for host in roster}
    assert {s.count for s in slots.values()} == {3}
    assert sorted({s.hosts for s in slots.values()}) == [("lyon-a", "lyon-b"), ("lyon-c", "lyon-d"), ("lyon-e", "lyon-f")]
    assert [slots[h].index for h in sorted(slots)] == [0, 0, 1, 1, 2, 2]


def test_slots_spread_over_the_window_and_every_tier_starts_in_its_hosts_slot():
    policies = fleet()
    # 20:00 to 06:00 is 10 h: three slots of 3 h 20 min.
    expected = {"lyon-a": 0, "lyon-b": 0, "lyon-c": 12000, "lyon-d": 12000, "lyon-e": 24000, "lyon-f": 24000}
    for host, delay in expected.items():
        jobs = jobs_of(policies, host)
        delays = {jobs["agent"]["www"]["delay_seconds"], jobs["host"]["vms"]["delay_seconds"],
                  jobs["cdp"]["pg-base"]["delay_seconds"], jobs["array"]["vol"]["delay_seconds"]}
        assert delays == {delay}, host


def test_staggering_is_the_same_on_every_run_and_whatever_the_inventory_order():
    policies = fleet()
    reordered = dict(reversed(list(policies.items())))
    first = {h: jobs_of(policies, h)["agent"]["www"]["delay_seconds"] for h in policies}
    assert first == {h: jobs_of(reordered, h)["agent"]["www"]["delay_seconds"] for h in reordered}
    assert first == {h: jobs_of(copy.deepcopy(policies), h)["agent"]["www"]["delay_seconds"] for h in policies}


def test_other_sites_and_hosts_without_a_site_are_not_staggered():
    policies = fleet()
    assert jobs_of(policies, "paris-1")["agent"]["www"]["delay_seconds"] == 0
    assert jobs_of(policies, "lone")["agent"]["www"]["delay_seconds"] == 0


def test_window_time_zone_and_bandwidth_reach_every_tiers_job_configuration():
    jobs = jobs_of(fleet(), "lyon-c")
    for tier, name in (("agent", "www"), ("host", "vms"), ("cdp", "pg-base"), ("array", "vol")):
        schedule = jobs[tier][name]["config"]["schedule"]
        assert schedule["window"] == {"start": "20:00", "end": "06:00", "timezone": "Europe/Paris"}, tier
        # Array snapshots stay on the storage host; its library export has no rate limit to give a cap to.
        assert schedule.get("bandwidth") == (None if tier == "array" else {"upload_kbps": 2000}), tier
    # The host side reads the cap as restic's --limit-upload.
    config = JobConfig.from_dict(jobs["agent"]["www"]["config"])
    assert config.limit_upload_kbps == 2000 and config.window.timezone == "Europe/Paris"


def test_continuous_protection_points_keep_running_outside_the_window():
    jobs = jobs_of(fleet(), "lyon-c")
    assert "schedule" not in jobs["cdp"]["pg"]["config"]
    assert jobs["cdp"]["pg"]["delay_seconds"] == 0


def test_the_tighter_of_schedule_and_site_caps_wins():
    site = SiteProfile("h", host_policy())
    assert site.bandwidth({"bandwidth": {"upload_kbps": 500, "download_kbps": 900}}) == {"upload_kbps": 500, "download_kbps": 900}
    assert site.bandwidth({"bandwidth": {"upload_kbps": 5000}}) == {"upload_kbps": 2000}


def test_a_schedule_window_wins_over_the_sites_and_takes_its_time_zone():
    site = SiteProfile("h", host_policy())
    assert site.window({"window": {"start": "01:00", "end": "05:00"}}) == {"start": "01:00", "end": "05:00", "timezone": "Europe/Paris"}


@pytest.mark.parametrize("calendar, window, expected", [
    ("*-*-* 20:00:00", {"start": "20:00", "end": "06:00"}, (1200, 0, 600)),    # the whole window
    ("*-*-* 01:00:00", {"start": "20:00", "end": "06:00"}, (60, 0, 300)),      # what is left of it
    ("*-*-* 12:00:00", {"start": "20:00", "end": "06:00"}, (720, 480, 600)),   # waits for the opening
    ("hourly", {"start": "20:00", "end": "06:00"}, (1200, 0, 60)),             # until the next start
    ("*-*-* 01:00:00", None, (60, 0, 1440)),                                   # no window: a day
])
def test_slot_timing(calendar, window, expected):
    timing = slot_timing(calendar, window)
    assert (timing.fires, timing.wait, timing.span) == expected


def test_jitter_spreads_within_the_slot_only():
    policies = fleet(jitter="8h")
    slot_seconds = 12000
    for host in ("lyon-a", "lyon-c", "lyon-e"):
        delay = jobs_of(policies, host)["agent"]["www"]["delay_seconds"]
        index = "ace".index(host[-1])
        assert index * slot_seconds <= delay < (index + 1) * slot_seconds


def test_plan_shows_each_site_its_slots_hosts_and_start_times():
    lines = site_lines(Fleet(fleet()))
    assert lines == [
        "site lyon: 6 hosts, window 20:00-06:00 Europe/Paris, upload capped at 2000 KiB/s per host, concurrency 2: 3 slots",
        "  slot 1: lyon-a, lyon-b at 20:00",
        "  slot 2: lyon-c, lyon-d at 23:20",
        "  slot 3: lyon-e, lyon-f at 02:40",
        "site paris: 2 hosts, no concurrency limit: its hosts start together",
    ]


def test_a_hosts_plan_names_its_slot_and_cap():
    policies = fleet()
    lines = plan_lines(policies["lyon-d"], None, "lyon-d", TIERS, Fleet(policies).sites()["lyon"])
    assert "  when: *-*-* 20:00:00, window 20:00-06:00 Europe/Paris, site lyon slot 2 of 3, starts 23:20, " \
           "upload capped at 2000 KiB/s" in lines


SITES = {"b1": "lyon", "a2": "lyon", "c3": "paris", "z9": None, "p4": "paris", "a1": "lyon"}


def test_rollout_goes_site_by_site_canary_first_then_the_rest():
    plan = rollout(SITES)
    assert plan.batches == [["a1"], ["a2", "b1"], ["c3"], ["p4"], ["z9"]]
    assert plan.hosts == ["a1", "a2", "b1", "c3", "p4", "z9"] and plan.serial == [1, 2, 1, 1, 1]


def test_a_marked_canary_goes_first_and_sites_can_be_chosen():
    assert rollout(SITES, ["b1"], ["lyon"]).batches == [["b1"], ["a1", "a2"]]


def test_rollout_refuses_an_unknown_site_and_two_canaries():
    with pytest.raises(ValueError, match="no host of the inventory is in site lyonn"):
        rollout(SITES, only=["lyonn"])
    with pytest.raises(ValueError, match="site lyon has 2 canary hosts"):
        rollout(SITES, ["a1", "b1"])


def test_the_rollout_filter_reads_the_site_and_canary_groups():
    groups = {"all": ["b1", "a2", "z9"], "rollout_site_lyon": ["b1", "a2"], "rollout_site_": ["z9"], "rollout_canary": ["b1"]}
    assert rollout_batches(groups) == {"hosts": ["b1", "a2", "z9"], "serial": [1, 1, 1], "batches": [["b1"], ["a2"], ["z9"]]}
