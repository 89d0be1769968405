# -*- coding: utf-8 -*-
# Copyright: Restorable contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side: judge every declared dataset of the audited hosts from their facts and write
the audit (JSON, JUnit, HTML); fail when any dataset is red."""
from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.restorable.backup.plugins.module_utils.drill.report import LEDGER, read_ledger
from ansible_collections.restorable.backup.plugins.plugin_utils.audit.evaluator import FleetAudit
from ansible_collections.restorable.backup.plugins.plugin_utils.audit.report import summary_lines, write_audit
from ansible_collections.restorable.backup.plugins.plugin_utils.drill_plan import HostvarsPolicies
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import plain

DEFAULT_DIR = "audit-report"
DEFAULT_EVIDENCE_DIR = "drill-evidence"
FALSE = (False, "false", "False", "no", "0")
display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts", "facts_var", "source", "bucket", "audit_dir", "drill_evidence_dir", "fail_on_red", "show_summary"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        hosts = [str(h) for h in args.get("hosts") or task_vars.get("ansible_play_hosts_all") or []]
        source = str(args.get("source") or "ssh")
        if source not in ("ssh", "bucket"):
            raise AnsibleActionFail("audit: source must be ssh or bucket, got %r" % source)
        if source == "bucket":
            facts, unreachable = self._bucket_facts(args.get("bucket"), hosts)
        else:
            facts, unreachable = self._registered_facts(task_vars, str(args.get("facts_var") or "audit_host"), hosts)
        evidence_dir = os.path.abspath(os.path.expanduser(str(args.get("drill_evidence_dir") or DEFAULT_EVIDENCE_DIR)))
        try:
            audit = FleetAudit(HostvarsPolicies(task_vars["hostvars"]), facts, unreachable,
                               read_ledger(os.path.join(evidence_dir, LEDGER)), source=source, hosts=hosts)
            document = audit.document()
        except ValueError as exc:  # a duration the policy validation would have refused
            raise AnsibleActionFail("audit: %s" % exc) from None
        directory = os.path.abspath(os.path.expanduser(str(args.get("audit_dir") or DEFAULT_DIR)))
        lines = summary_lines(document)
        result.update(changed=False, summary=document["summary"], summary_lines=lines, audit_dir=directory)
        if self._task.check_mode:
            result.update(msg="check mode: audit judged, nothing written; " + lines[-1], document=document)
        else:
            try:
                result.update(write_audit(directory, document))
            except OSError as exc:
                raise AnsibleActionFail("audit: cannot write the report to %s: %s" % (directory, exc)) from None
            result["changed"] = True
            result["msg"] = "%s; report %s" % (lines[-1], os.path.join(directory, "audit.html"))
        if args.get("show_summary", True) not in FALSE:
            # Printed by the task itself: the verdict at a glance, without one more task in the play.
            for line in lines:
                display.display(line)
        red = ["%s/%s (%s)" % (d["host"], d["dataset"], d["reasons"][0]) for d in document["datasets"] if d["status"] == "red"]
        result["red"] = red
        if red:
            result["msg"] = "%d dataset(s) red: %s; report in %s" % (len(red), "; ".join(red), directory)
            result["failed"] = args.get("fail_on_red", True) not in FALSE
        return result

    @staticmethod
    def _registered_facts(task_vars, name, hosts):
        """(facts by host, why each other host has none) from what each host registered as name."""
        hostvars = task_vars["hostvars"]
        facts, unreachable = {}, {}
        for host in hosts:
            try:
                registered = hostvars[host].get(name)
            except AnsibleError:
                registered = None
            registered = plain(registered) if isinstance(registered, dict) else None
            if registered and isinstance(registered.get("facts"), dict):
                facts[host] = registered["facts"]
            elif registered and registered.get("unreachable"):
                unreachable[host] = "unreachable: %s" % str(registered.get("msg") or "no answer").splitlines()[0]
            elif registered and registered.get("failed"):
                unreachable[host] = "facts failed: %s" % str(registered.get("msg") or "no message").splitlines()[0]
            else:
                unreachable[host] = "no facts: the host was not reached in this run"
        return facts, unreachable

    @staticmethod
    def _bucket_facts(bucket, hosts):
        # Only this branch needs the bucket reader (and its S3 client).
        from ansible_collections.restorable.backup.plugins.plugin_utils.evidence_bucket import (  # pylint: disable=import-outside-toplevel
            EvidenceBucketError, fleet_facts_from_bucket)
        from ansible_collections.restorable.backup.plugins.module_utils.evidence.ledger import (  # pylint: disable=import-outside-toplevel
            EvidenceChainError)
        if not isinstance(bucket, dict):
            raise AnsibleActionFail("audit: source=bucket needs the bucket option (endpoint, bucket, access_key_id, secret_access_key)")
        try:
            facts = fleet_facts_from_bucket(plain(bucket), hosts)
        except (EvidenceBucketError, EvidenceChainError) as exc:
            raise AnsibleActionFail("audit: evidence bucket: %s" % exc) from None
        return facts, {host: "no records in the evidence bucket" for host in hosts if host not in facts}
