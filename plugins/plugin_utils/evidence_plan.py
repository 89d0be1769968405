# -*- coding: utf-8 -*-
# Private to restorable.backup: restorable_evidence of a host's policy as its jobs and scheduled
# drills take it: an `evidence` section in each configuration (where the ledger is, which bucket,
# how long each record is locked) and the bucket's keys in a private env file beside the other
# credentials (never in a configuration, an argv or a log). Every tier planner and the drill
# planner go through here, so a tier cannot forget its evidence.
from __future__ import annotations

from typing import Any

from ansible_collections.restorable.backup.plugins.module_utils.core.layout import HostLayout
from ansible_collections.restorable.backup.plugins.plugin_utils.s3_provisioner import DEFAULT_STORE, read_host_credentials

DEFAULT_PREFIX = "evidence"
ENV_FILE = "evidence.env"


class EvidencePlan:
    """The evidence settings of one host (None when its policy declares no restorable_evidence)."""

    def __init__(self, host: str, policy: dict, root: str = "/") -> None:
        self.host = host
        self.policy = policy
        self.layout = HostLayout(root)
        self.declared = policy.get("restorable_evidence")

    def _target(self) -> dict:
        return (self.policy.get("restorable_targets") or {})[self.declared["target"]]

    def section(self, env_file: str, **extra: Any) -> dict[str, Any]:
        target = self._target()
        section = {"ledger": self.layout.evidence_ledger, "endpoint": target.get("endpoint", "https://s3.amazonaws.com"),
                   "bucket": target["bucket"], "region": target.get("region") or "us-east-1",
                   "prefix": self.declared.get("prefix") or DEFAULT_PREFIX,
                   "retention_days": int(self.declared["retention_days"]), "env_file": env_file, "host": self.host}
        section.update(extra)
        return section

    def secret(self, env_file: str) -> dict[str, str]:
        target = self._target()
        keys = {"AWS_ACCESS_KEY_ID": target.get("access_key_id", ""), "AWS_SECRET_ACCESS_KEY": target.get("secret_access_key", "")}
        if target.get("scoped_credentials"):
            store = (self.policy.get("restorable_controller") or {}).get("credential_store", DEFAULT_STORE)
            keys = dict(read_host_credentials(store, target, self.host) or {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
        content = "".join("%s=%s\n" % (name, keys.get(name, "")) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
        return {"path": env_file, "content": content}

    def add_to_jobs(self, tier: str, plan: dict[str, list]) -> dict[str, list]:
        """A tier's plan ({jobs, secrets}) with evidence in every job configuration."""
        if not self.declared or not plan.get("jobs"):
            return plan
        env_file = "%s/%s" % (self.layout.secrets_dir, ENV_FILE)
        for job in plan["jobs"]:
            about = {"tier": tier, "dataset": job.get("dataset") or job["name"], "target": job.get("target")}
            job["config"]["evidence"] = self.section(env_file, job=about)
        plan["secrets"] = list(plan["secrets"]) + [self.secret(env_file)]
        return plan

    def add_to_drills(self, schedule: dict[str, Any]) -> dict[str, Any]:
        """The drill host's schedule ({jobs, secrets, ...}) with evidence in every scheduled drill."""
        if not self.declared or not schedule.get("jobs"):
            return schedule
        env_file = "%s/%s" % (self.layout.drill_secrets_dir, ENV_FILE)
        for job in schedule["jobs"]:
            job["config"]["evidence"] = self.section(env_file)
        schedule["secrets"] = list(schedule["secrets"]) + [self.secret(env_file)]
        return schedule
