# -*- coding: utf-8 -*-
"""What the source sends (catch-up from the newest common point, seeding, a refused or allowed
full resend), what thinning never touches, and the ssh command lines."""
from __future__ import annotations

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import FieldReader
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.points import PointStore
from ansible_collections.restorable.backup.plugins.module_utils.tiers.cdp.replica import (
    NoCommonBase, ReplicaLink, ReplicaOptions, plan_sends, protected_points)

A, B, C, D = "20261125T120000Z", "20261125T120100Z", "20261125T120200Z", "20261125T120300Z"


def test_catch_up_sends_every_missing_point_in_order_from_the_newest_common_one():
    plan = plan_sends([A, B, C, D], [A, B], False, "r:/p")
    assert plan.base == B
    assert plan.sends == [(C, B), (D, C)]
    assert not plan.full_reason
    assert plan_sends([A, B], [A, B], False, "r:/p").sends == []


def test_an_empty_replica_is_seeded_with_the_newest_point():
    plan = plan_sends([A, B], [], False, "r:/p")
    assert plan.sends == [(B, None)]
    assert plan.full_reason and not plan.resend


def test_a_lost_base_is_refused_unless_a_full_resend_is_allowed():
    with pytest.raises(NoCommonBase, match="full_resend") as refused:
        plan_sends([C, D], [A, B], False, "r:/p")
    assert "nothing was sent or deleted" in str(refused.value)
    plan = plan_sends([C, D], [A, B], True, "r:/p")
    assert plan.sends == [(D, None)] and plan.resend and "base is gone" in plan.full_reason


def test_the_base_and_unreplicated_points_are_protected():
    source, replica = protected_points([A, B, C, D], [A, B])
    assert source == {B, C, D}
    assert replica == {B}
    source, replica = protected_points([A, B], [])  # nothing replicated yet (or never reached)
    assert source == {A, B} and replica == set()
    source, replica = protected_points([C, D], [A, B])  # no common point: the replica's newest stays
    assert source == {C, D} and replica == {B}


def parse(data: dict) -> ReplicaOptions:
    return ReplicaOptions.parse(FieldReader(data, "options.replica"))


def test_replica_options_are_checked():
    options = parse({"host": "127.0.0.3", "path": "/srv/replicas/web01/data", "port": 2222})
    assert options.where == "127.0.0.3:/srv/replicas/web01/data" and not options.full_resend
    for bad, message in (({"host": "h", "path": "rel"}, "absolute"), ({"host": "-oProxyCommand=x", "path": "/p"}, "host"),
                         ({"host": "h", "path": "/p", "port": 0}, "port"), ({"host": "h", "path": "/p", "x": 1}, "unknown"),
                         ({"path": "/p"}, "host is required")):
        with pytest.raises(ValueError, match=message):
            parse(bad)


def test_ssh_command_line_puts_the_jobs_options_first():
    options = parse({"host": "replica01", "path": "/r", "port": 2222, "user": "root", "identity_file": "/k",
                     "known_hosts_file": "/kh", "ssh_options": ["-o", "ConnectTimeout=3"]})
    argv = ReplicaLink(options, PointStore("/s"), ssh="/usr/bin/ssh").argv("receive %s" % A, timeout=30)
    assert argv[:3] == ["/usr/bin/ssh", "-o", "ConnectTimeout=3"]  # ssh keeps the first value of an option
    assert argv[-2:] == ["replica01", "receive %s" % A]
    for pair in (["-p", "2222"], ["-l", "root"], ["-i", "/k"], ["-o", "UserKnownHostsFile=/kh"], ["-o", "BatchMode=yes"]):
        assert any(argv[i:i + 2] == pair for i in range(len(argv)))
    assert "IdentitiesOnly=yes" in argv
