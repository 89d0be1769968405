# -*- coding: utf-8 -*-
# Private to restorable.backup: one line per host at the end of apply, saying what it changed,
# read from the actions the repository and job modules return (the lines they always list).
from __future__ import annotations

from collections.abc import Iterable


def change_line(host: str, repositories: dict | None, jobs: dict | None, drill_jobs: Iterable[str] = ()) -> str:
    """"web01: 2 jobs scheduled, 1 repository initialised, credentials unchanged" or "web01: no change".

    repositories, jobs: the registered results of the repository and job tasks (None when the
    host never got there); drill_jobs: the names of the drill jobs among the job module's.
    """
    if not repositories or not jobs:
        return "%s: not converged (failed or unreachable before scheduling)" % host
    job_actions = jobs.get("actions") or []
    repository_actions = repositories.get("actions") or []
    named = set(_named(job_actions))
    drills = set(drill_jobs)
    parts = [
        _count(len(named - drills), "job", "scheduled"),
        _count(len(named & drills), "drill", "scheduled"),
        _count(sum("initialise" in a for a in repository_actions), "repository", "initialised", "repositories"),
        _count(sum(a.startswith("removed ") for a in job_actions), "file", "removed"),
        "agent runtime updated" if any("agent runtime in" in a for a in job_actions) else "",
    ]
    parts = [p for p in parts if p]
    credentials = any("placed" in a for a in repository_actions + job_actions)
    if not parts and not credentials:
        return "%s: no change" % host
    return "%s: %s" % (host, ", ".join(parts + ["credentials placed" if credentials else "credentials unchanged"]))


def _named(actions: list) -> list:
    """Job names of the actions "<job>: <what>" (configuration, unit, timer started)."""
    return [a.split(": ", 1)[0] for a in actions if ": " in a and not a.startswith(("placed ", "removed "))]


def _count(number: int, noun: str, verb: str, plural: str = "") -> str:
    if not number:
        return ""
    return "%d %s %s" % (number, noun if number == 1 else plural or noun + "s", verb)
