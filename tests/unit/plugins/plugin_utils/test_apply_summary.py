# -*- coding: utf-8 -*-
"""The line apply ends with for each host, from the repository and job modules' actions."""
from __future__ import annotations

from ansible_collections.restorable.backup.plugins.plugin_utils.apply_summary import change_line

REPOSITORIES = {"actions": ["nas: initialised repository at /srv/restic", "nas: placed credentials /etc/restorable/secrets/nas.password"]}
JOBS = {"actions": ["www: job configuration", "www: /etc/systemd/system/restorable-backup-www.timer",
                    "db: job configuration", "web01-weekly: drill configuration"]}


def test_what_changed_is_counted_by_kind():
    assert change_line("web01", REPOSITORIES, JOBS, ["web01-weekly"]) == (
        "web01: 2 jobs scheduled, 1 drill scheduled, 1 repository initialised, credentials placed")


def test_credentials_unchanged_are_said_when_something_else_changed():
    assert change_line("web01", {"actions": []}, {"actions": ["www: job configuration", "removed /etc/restorable/old.json"]}) == (
        "web01: 1 job scheduled, 1 file removed, credentials unchanged")


def test_nothing_done_is_no_change():
    assert change_line("web01", {"actions": []}, {"actions": []}, ["web01-weekly"]) == "web01: no change"


def test_a_host_that_never_got_there_is_not_converged():
    assert change_line("web02", None, None) == "web02: not converged (failed or unreachable before scheduling)"
