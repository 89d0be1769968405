"""inventories/example-fleet documents the policy model by example: it must validate clean and
show every part of the model (all four tiers, site profiles, tape, Object Lock, drills).

The inventory is loaded the way the validate playbook loads it: Ansible's inventory and
variable managers merge group_vars and host_vars, host variables are templated (secrets are
references to vault_* variables), and FleetValidator checks the result.
"""

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories/example-fleet"
TIERS = ("agent", "host", "cdp", "array")
# RFC 5737: addresses that never route anywhere, so no example host can ever be contacted.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


# Run in a process of its own: Ansible's collection loader must be the first to import the
# collection, which other tests of the session have imported already.
LOAD_AND_VALIDATE = r"""
import json, sys
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager

# restorable.backup from the checkout (collections/ links back to it); lookups such as
# ansible.builtin.env for the templating of host variables.
init_plugin_loader([sys.argv[1]])
from ansible_collections.restorable.backup.plugins.plugin_utils.inventory_policy import InventoryPolicy
from ansible_collections.restorable.backup.plugins.plugin_utils.policy.validator import FleetValidator

loader = DataLoader()
inventory = InventoryManager(loader=loader, sources=[sys.argv[2]])
variables = VariableManager(loader=loader, inventory=inventory)
hostvars = HostVars(inventory=inventory, variable_manager=variables, loader=loader)
hosts = [host.name for host in inventory.get_hosts()]
policy = InventoryPolicy(hostvars).load(hosts)
report = FleetValidator(origin=policy.origin, secret_source=policy.secret_source).validate(
    policy.documents, inventory_hosts=frozenset(hosts))
raw = {name: hostvars.raw_get(name) for name in hosts}
print(json.dumps({
    "hosts": hosts,
    "raw": {name: {k: raw[name][k] for k in ("group_names", "ansible_host", "ansible_python_interpreter") if k in raw[name]}
            for name in hosts},
    "documents": policy.documents,
    "problems": [p.line() for p in policy.problems + report.problems],
    "hosts_checked": report.hosts_checked,
}, default=str))
"""


@pytest.fixture(scope="module")
def fleet():
    result = subprocess.run([sys.executable, "-c", LOAD_AND_VALIDATE, str(REPO / "collections"), str(INVENTORY)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return SimpleNamespace(**json.loads(result.stdout))


def datasets(fleet):
    """(host, name, dataset) for every dataset of the fleet."""
    for host, document in fleet.documents.items():
        for name, dataset in document.get("restorable_datasets", {}).items():
            yield host, name, dataset


def used_targets(fleet):
    """(host, target) for every target some dataset of that host sends copies to."""
    for host, _name, dataset in datasets(fleet):
        targets = fleet.documents[host]["restorable_targets"]
        names = list(dataset.get("targets", [])) + [dataset[k] for k in ("replica", "wal_archive") if k in dataset]
        if "export" in dataset:
            names.append(dataset["export"]["library"])
        for name in names:
            yield host, targets[name]


def test_fleet_has_hosts_in_every_office(fleet):
    assert len(fleet.hosts) >= 10
    assert {"head_office", "branch_lyon", "branch_porto"} <= {
        group for host in fleet.hosts for group in fleet.raw[host]["group_names"]
    }


def test_validates_without_errors_or_warnings(fleet):
    assert fleet.hosts_checked == len(fleet.hosts)
    assert not fleet.problems, "\n".join(fleet.problems)


def test_secrets_are_references_never_plain_text(fleet):
    # plaintext_secrets: error makes a plain secret a validation error, not just a warning.
    assert all(doc["restorable_compliance"]["plaintext_secrets"] == "error" for doc in fleet.documents.values())
    assert all(doc["restorable_compliance"]["rule_3_2_1_1_0"] == "report" for doc in fleet.documents.values())


def test_hosts_are_never_contacted(fleet):
    for host in fleet.hosts:
        variables = fleet.raw[host]
        address = ipaddress.ip_address(variables["ansible_host"])
        assert any(address in network for network in DOCUMENTATION_NETWORKS), (host, str(address))
        assert variables["ansible_python_interpreter"] == "/usr/bin/python3", host


def test_datasets_of_every_tier(fleet):
    tiers = {dataset["tier"] for _host, _name, dataset in datasets(fleet)}
    assert set(TIERS) <= tiers


def test_branch_offices_follow_site_profiles(fleet):
    profiles = set()
    for document in fleet.documents.values():
        if "restorable_site" in document:
            assert document["restorable_site"] in document["restorable_sites"]
            profiles.add(document["restorable_site"])
    assert len(profiles) >= 2


def test_database_servers_use_consistency_profiles(fleet):
    kinds = set()
    for host, _name, dataset in datasets(fleet):
        if "consistency" in dataset:
            kinds.add(fleet.documents[host]["restorable_consistency_profiles"][dataset["consistency"]]["type"])
    assert {"postgresql", "mariadb"} <= kinds


def test_hypervisors_select_vms_by_name_and_pattern_through_a_proxy(fleet):
    host_tier = [d for _host, _name, d in datasets(fleet) if d["tier"] == "host"]
    assert any(d["vms"].get("names") for d in host_tier)
    assert any(d["vms"].get("patterns") for d in host_tier)
    assert all(d.get("proxy_host") in fleet.hosts for d in host_tier)


def test_cdp_with_btrfs_replica_and_postgresql_wal_archive(fleet):
    sources = {
        (d["source"]["type"], "replica" if "replica" in d else "wal_archive" if "wal_archive" in d else None)
        for _host, _name, d in datasets(fleet)
        if d["tier"] == "cdp"
    }
    assert {("btrfs", "replica"), ("postgresql", "wal_archive")} <= sources


def test_array_snapshots_export_to_a_tape_library_with_worm_and_vault(fleet):
    libraries = [t for _host, t in used_targets(fleet) if t["type"] == "tape_library"]
    assert libraries, "no array dataset exports to a tape library"
    pools = [pool for library in libraries for pool in library["pools"].values()]
    assert any(pool.get("worm") for pool in pools)
    assert any(pool.get("vault") for pool in pools)
    assert all(library.get("host") in fleet.hosts for library in libraries)


def test_an_s3_target_with_object_lock_is_used(fleet):
    assert any(t["type"] == "s3" and "object_lock" in t for _host, t in used_targets(fleet))


def test_drills_restore_on_a_drill_host(fleet):
    drill_hosts = {
        drill["drill_host"]
        for document in fleet.documents.values()
        for drill in document.get("restorable_drills", {}).values()
        if "drill_host" in drill
    }
    assert drill_hosts and drill_hosts <= set(fleet.hosts)
    # a drill host restores, it protects nothing of its own
    assert all(not fleet.documents[host].get("restorable_datasets") for host in drill_hosts)


def test_every_dataset_is_drilled(fleet):
    undrilled = [
        f"{host} {name}"
        for host, name, _dataset in datasets(fleet)
        if not any(name in drill["datasets"] for drill in fleet.documents[host].get("restorable_drills", {}).values())
    ]
    assert not undrilled


def test_vars_files_pass_the_editor_schema_as_written():
    """The files carry a yaml-language-server modeline: an editor must show them clean too."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "docs/policy.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    files = sorted(INVENTORY.glob("group_vars/**/*.yml")) + sorted(INVENTORY.glob("host_vars/**/*.yml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
        assert not errors, f"{path.relative_to(REPO)}:\n" + "\n".join(errors)
        if any(name.startswith("restorable_") for name in data):
            modeline = "# yaml-language-server: $schema=%s" % os.path.relpath(REPO / "docs/policy.schema.json", path.parent)
            assert modeline in text.splitlines(), f"{path.relative_to(REPO)} lacks the line {modeline!r}"
