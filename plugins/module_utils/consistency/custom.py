# -*- coding: utf-8 -*-
# Private to restorable.backup: the custom quiesce profile (operator commands).
"""Operator commands around the copy: ``pre`` quiesces, ``post`` releases.

Both are argument lists (never a shell) with a timeout and an environment, run by the agent's
hook runner (``agent/hooks.py``). ``pre`` stops at the first failure (QuiesceFailed); ``post``
always runs completely, also after a failed ``pre`` or snapshot.

Snapshot tiers: ``frozen()`` runs ``pre``, the snapshot, ``post``. The ``post`` commands are given
to the watchdog before ``pre`` runs, so they also run when the runner dies or ``max_freeze``
passes. File-level tiers: ``prepare_files()`` runs ``pre`` (and returns no files of its own) and
``cleanup()`` runs ``post``; the tier calls ``cleanup()`` in a ``finally``.
"""
from __future__ import annotations

from typing import Any

from ..common.hooks import DEFAULT_HOOK_TIMEOUT, HookCommand, HookOutcome, run_hooks
from ..common.durations import parse_duration
from .base import FreezingProfile, QuiesceFailed, StreamingProfile
from .watchdog import Watchdog


def hooks_from_config(entries: list[dict[str, Any]] | None, where: str) -> list[HookCommand]:
    """HookCommand objects from policy commands ({argv, timeout: "30s", env})."""
    hooks = []
    for number, entry in enumerate(entries or []):
        argv = entry.get("argv")
        if not argv or not all(isinstance(arg, str) and arg for arg in argv):
            raise QuiesceFailed("%s[%d].argv must be a non-empty list of strings" % (where, number))
        try:
            timeout = parse_duration(entry.get("timeout", DEFAULT_HOOK_TIMEOUT), "%s[%d].timeout" % (where, number))
        except ValueError as exc:
            raise QuiesceFailed(str(exc)) from exc
        env = {str(name): str(value) for name, value in (entry.get("env") or {}).items()}
        hooks.append(HookCommand(list(argv), timeout, env))
    return hooks


class CustomProfile(StreamingProfile, FreezingProfile):
    """type: custom — pre commands quiesce, post commands release."""

    kind = "custom"

    def __init__(self, config: dict[str, Any], staging_dir: str, status_dir: str | None = None) -> None:
        super().__init__(config, staging_dir, status_dir)
        self.pre = hooks_from_config(config.get("pre"), "pre")
        self.post = hooks_from_config(config.get("post"), "post")
        if not self.pre and not self.post:
            raise QuiesceFailed("custom profile without pre or post commands")
        for hook in self.pre + self.post:
            for value in hook.env.values():
                self.redactor.add(value)
        self.outcomes: list[HookOutcome] = []
        self._pre_ran = False
        self.context = {"RESTORABLE_PROFILE": self.kind}

    def _run_pre(self) -> None:
        self._pre_ran = True
        outcomes = run_hooks(self.pre, "pre", self.context, self.redactor, stop_on_failure=True)
        self.outcomes.extend(outcomes)
        failed = [outcome for outcome in outcomes if not outcome.ok]
        if failed:
            raise QuiesceFailed(failed[0].describe())

    def _run_post(self) -> None:
        if not self._pre_ran:
            return
        self._pre_ran = False
        outcomes = run_hooks(self.post, "post", self.context, self.redactor, stop_on_failure=False)
        self.outcomes.extend(outcomes)
        failed = [outcome for outcome in outcomes if not outcome.ok]
        if failed:
            raise QuiesceFailed("; ".join(outcome.describe() for outcome in failed))

    # -- snapshots ------------------------------------------------------------------------------
    def quiesce(self, watchdog: Watchdog) -> str | None:
        for hook in reversed(self.post):  # the watchdog runs last registered first
            env = dict(hook.env)
            env.update(self.context)
            env["RESTORABLE_PHASE"] = "post"
            watchdog.add_command(hook.argv, env=env, timeout=hook.timeout)
        self._run_pre()
        return None

    def release(self) -> None:
        self._run_post()

    # -- file level ---------------------------------------------------------------------------
    def prepare_files(self) -> list[str]:
        self._run_pre()
        return []

    def cleanup(self) -> None:
        self._run_post()
