# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: buckets and per-host credentials of the S3 targets the play's hosts use."""
from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.restorable.backup.plugins.plugin_utils.tiers.agent_jobs import AgentPlanner
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import InventoryPolicy
from ansible_collections.restorable.backup.plugins.plugin_utils.s3_provisioner import (
    DEFAULT_STORE,
    HAS_BOTO3,
    ProvisioningFailed,
    S3Provisioner,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        hosts = self._task.args.get("hosts") or task_vars.get("ansible_play_hosts") or []
        policy = InventoryPolicy(task_vars["hostvars"], (AnsibleError,)).load(list(hosts))
        wanted = _s3_targets(policy.documents)
        if not wanted:
            return dict(result, changed=False, actions=[])
        if not HAS_BOTO3:
            return dict(result, failed=True, msg="S3 targets are provisioned from the controller with boto3: pip install boto3")
        provisioners = {}
        try:
            for (store, endpoint, bucket), uses in sorted(wanted.items()):
                provisioner = provisioners.setdefault(store, S3Provisioner(self._task.check_mode, store))
                name, target = uses[0][1], uses[0][2]
                if target.get("provision", True):
                    provisioner.bucket(name, target)
                for host, name, target in uses:
                    if target.get("scoped_credentials"):
                        provisioner.host_credentials(name, target, host)
        except ProvisioningFailed as exc:
            return dict(result, failed=True, msg=str(exc))
        actions = [a for p in provisioners.values() for a in p.result.actions]
        result.update(changed=bool(actions), actions=actions)
        if self._task.diff:
            result["diff"] = [{"before": p.result.before, "after": p.result.after} for p in provisioners.values()]
        return result


def _s3_targets(documents: dict) -> dict:
    """(credential store, endpoint, bucket) -> [(host, target name, target)] for the agent datasets."""
    wanted: dict = {}
    for host, policy in sorted(documents.items()):
        store = (policy.get("restorable_controller") or {}).get("credential_store", DEFAULT_STORE)
        planner = AgentPlanner(host, policy)
        for repository in planner.repositories():
            target = planner.targets[repository["name"]]
            if target["type"] == "s3":
                key = (store, target.get("endpoint", ""), target["bucket"])
                wanted.setdefault(key, []).append((host, repository["name"], target))
    return wanted
