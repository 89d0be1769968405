# -*- coding: utf-8 -*-
"""Applying twice changes nothing; check mode on fresh hosts writes nothing and says what it
would do."""
from __future__ import annotations

from apply_helpers import TARGETS, tree_state


def test_second_apply_changes_nothing(applied_fleet):
    fleet = applied_fleet.fleet
    before = tree_state(*(fleet.root(name) for name in fleet.fleet.names))
    again = fleet.playbook(applied_fleet.inventory, "apply")
    assert again.returncode == 0, again.describe()
    assert sorted(again.recap) == fleet.fleet.names
    for name, counts in again.recap.items():
        assert counts["changed"] == 0, "%s changed on the second apply: %s\n%s" % (name, counts, again.describe())
        assert counts["failed"] == 0 and counts["unreachable"] == 0
    # Not even a rewrite with the same content: modes, sizes and mtimes are as they were.
    assert tree_state(*(fleet.root(name) for name in fleet.fleet.names)) == before


def test_check_mode_on_fresh_hosts_writes_nothing_and_reports_the_changes(applied_fleet, moto_server):
    # Fresh agent roots and repositories next to the applied fleet (the bucket exists).
    fleet = applied_fleet.fleet
    inventory = fleet.inventory("check", variant="check", repo_set="check")
    names = fleet.fleet.names
    # The agent roots and local repositories (both below <data_dir>/check), the SFTP repositories.
    watched = [fleet.host(name).data_dir / "check" for name in names] + [fleet.sftp_repo(names[0], "check").parent]
    s3 = moto_server.client()

    def s3_keys() -> list[str]:
        listing = s3.list_object_versions(Bucket=fleet.bucket, Prefix="check/")
        return [v["Key"] for v in listing.get("Versions", []) + listing.get("DeleteMarkers", [])]

    before = tree_state(*watched)
    run = fleet.playbook(inventory, "apply", "--check", "--diff", "-v")
    assert run.returncode == 0, run.describe()
    assert tree_state(*watched) == before
    assert all(state == ("missing",) for state in before.values())  # fresh indeed
    assert s3_keys() == []

    for name in names:
        counts = run.recap[name]
        assert counts["changed"] > 0 and counts["failed"] == 0, (name, counts)
        root = fleet.root(name, "check")
        for target, url in fleet.repository_urls(name, "check").items():
            assert "%s: would initialise repository at %s" % (target, url) in run.stdout, (name, target)
        for job in fleet.jobs(name):
            assert "+++ after: %s/etc/restorable/%s.json" % (root, job) in run.stdout, (name, job)
        for target in TARGETS:
            # The diff names the credential files but never shows their content.
            assert "+++ after: %s/etc/restorable/secrets/%s.password" % (root, target) in run.stdout
    assert "(secret content hidden)" in run.stdout
    assert fleet.secrets.restic_password not in run.output
    # host3 would get cron entries, the others (inactive) systemd units.
    assert "+++ after: %s/etc/cron.d/restorable-backup-home" % fleet.root("host3", "check") in run.stdout
    assert "+++ after: %s/etc/systemd/system/restorable-backup-www.timer" % fleet.root("host1", "check") in run.stdout
