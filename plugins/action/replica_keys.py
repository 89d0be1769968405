# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: the SSH key pairs of the replicated CDP datasets of the play's hosts."""
from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import InventoryPolicy
from ansible_collections.restorable.backup.plugins.plugin_utils.replica_keys import (
    KEY_DIR,
    ReplicaKeyFailed,
    ReplicaKeys,
    replicated_datasets,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        hosts = self._task.args.get("hosts") or task_vars.get("ansible_play_hosts_all") or []
        policy = InventoryPolicy(task_vars["hostvars"], (AnsibleError,)).load(list(hosts))
        done = {}
        try:
            for store, pairs in sorted(replicated_datasets(policy.documents).items()):
                done[store] = ReplicaKeys(store, self._task.check_mode).ensure(pairs)
        except (ReplicaKeyFailed, OSError) as exc:  # OSError: the store cannot be written
            return dict(result, failed=True, msg="replica keys: %s" % exc)
        created = [name for pairs in done.values() for name in pairs.created]
        repaired = [name for pairs in done.values() for name in pairs.repaired]
        result.update(changed=bool(created or repaired), created=created, repaired=repaired)
        if self._task.diff:
            # Names only: the keys themselves stay in the store.
            result["diff"] = [{"before_header": "%s/%s" % (store, KEY_DIR), "after_header": "%s/%s" % (store, KEY_DIR),
                               "before": _names(pairs.present), "after": _names(pairs.present + pairs.created)}
                              for store, pairs in done.items()]
        return result


def _names(names: list) -> str:
    return "".join(name + "\n" for name in sorted(names))
