# -*- coding: utf-8 -*-
# Private to restorable.backup: pre/post commands around a backup, and health pings.
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from .process import Redactor, base_env, run_command

log = logging.getLogger(__name__)
PING_TIMEOUT = 10.0
DEFAULT_HOOK_TIMEOUT = 300


@dataclass
class HookCommand:
    """A pre/post command: an argument list run without a shell."""

    argv: list[str]
    timeout: int = DEFAULT_HOOK_TIMEOUT
    env: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "timeout": self.timeout, "env": dict(self.env)}


@dataclass
class HookOutcome:
    phase: str
    argv: list[str]
    returncode: int
    duration_seconds: float
    timed_out: bool
    output: str  # tail of stderr (else stdout), redacted

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        if self.timed_out:
            what = "timed out after %ds" % round(self.duration_seconds)
        else:
            what = "exited %d" % self.returncode
        text = "%s hook %s %s" % (self.phase, self.argv[0], what)
        return text + (": " + self.output if self.output else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_hooks(hooks: Sequence[HookCommand], phase: str, context: dict[str, str], redactor: Redactor,
              stop_on_failure: bool) -> list[HookOutcome]:
    """Run hooks in order. Pre hooks stop at the first failure; post hooks all run."""
    outcomes = []
    for hook in hooks:
        env = base_env(hook.env)
        env.update(context)
        env["RESTORABLE_PHASE"] = phase
        log.info("running %s hook %s", phase, hook.argv[0])
        result = run_command(hook.argv, env=env, timeout=hook.timeout)
        tail = result.stderr_tail(3) or "\n".join(result.stdout.strip().splitlines()[-3:])
        outcome = HookOutcome(phase, list(hook.argv), result.returncode, round(result.duration, 3),
                              result.timed_out, redactor(tail)[-500:])
        outcomes.append(outcome)
        if not outcome.ok:
            log.warning("%s", outcome.describe())
            if stop_on_failure:
                break
    return outcomes


def ping(url: str | None, event: str, message: str = "", timeout: float = PING_TIMEOUT) -> bool:
    """Healthchecks-style ping: URL/start, URL (success) or URL/fail, with a short body.

    A failed ping never fails the backup: it is logged and False is returned.
    """
    if not url:
        return False
    # Imported only when a ping URL is set: urllib.request pulls in http.client, ssl and email,
    # a cost every run would pay otherwise.
    import urllib.request  # pylint: disable=import-outside-toplevel
    target = url + {"start": "/start", "success": "", "fail": "/fail"}[event]
    request = urllib.request.Request(target, data=message.encode("utf-8")[:10000], method="POST",
                                     headers={"User-Agent": "restorable-agent"})
    try:
        # Plain urllib: the standalone agent on a host cannot import Ansible's open_url.
        with urllib.request.build_opener().open(request, timeout=timeout) as response:
            response.read(1024)
        return True
    except Exception as exc:  # any network or HTTP error: report and go on
        log.warning("ping %s failed: %s", event, exc)
        return False
