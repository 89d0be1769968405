# -*- coding: utf-8 -*-
"""restorable.backup.validate and .apply on a broken inventory: one line per problem naming
host, field path, file and line; no traceback; nothing applied."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from fleet.inventory import ansible_bin, ansible_env

WEB01 = """---
# web01 keeps a negative number of daily points
restorable_datasets:
  www:
    tier: agent
    paths: [/srv/www]
    targets: [nas]
    schedule: nightly
    retention:
      daily: -1
"""
GOOD_DATASET = {"tier": "agent", "paths": ["/srv/www"], "targets": ["nas"], "schedule": "nightly", "retention": {"daily": 7}}


def _inventory(root: Path) -> Path:
    (root / "group_vars").mkdir(parents=True)
    (root / "host_vars").mkdir()
    (root / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"web01": None, "web02": None}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "agent_root": str(root / "hostroot" / "{{ inventory_hostname }}")}}}))
    (root / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "vault_pw": "validate-test-password",
        "restorable_targets": {"nas": {"type": "local", "path": str(root / "repo"), "password": "{{ vault_pw }}"}},
        "restorable_schedules": {"nightly": {"calendar": "*-*-* 01:00:00"}},
    }))
    (root / "host_vars" / "web01.yml").write_text(WEB01)
    (root / "host_vars" / "web02.yml").write_text(yaml.safe_dump({
        "restorable_datasets": {"www": dict(GOOD_DATASET, targets=["nas", "offsite"])},
        "restorable_sheduled": {}}))
    return root


def _run(playbook: str, inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ansible_bin("ansible-playbook")), "-i", str(inventory), playbook],
                          env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)


def test_validate_names_host_path_file_and_line(tmp_path):
    inventory = _inventory(tmp_path / "inv")
    result = _run("restorable.backup.validate", inventory)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    line = [text for text in output.splitlines() if text.startswith("web01: restorable_datasets.www.retention.daily")]
    assert line, output
    assert line[0].startswith("web01: restorable_datasets.www.retention.daily: -1 is less than 0 (")
    assert line[0].endswith("host_vars/web01.yml:10)")
    assert "web02: restorable_sheduled: unknown variable" in output
    assert "host_vars/web02.yml" in output


def test_apply_applies_nothing_when_the_policy_is_invalid(tmp_path):
    inventory = _inventory(tmp_path / "inv")
    result = _run("restorable.backup.apply", inventory)
    assert result.returncode != 0
    assert "nothing was applied" in result.stdout + result.stderr
    assert not (tmp_path / "inv" / "hostroot").exists()
    assert not (tmp_path / "inv" / "repo").exists()


def _array_inventory(root, provider: str):
    (root / "group_vars").mkdir(parents=True, exist_ok=True)
    (root / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"files01": None, "other01": None}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "agent_root": str(root / "hostroot" / "{{ inventory_hostname }}")}}}))
    (root / "group_vars" / "all.yml").write_text(yaml.safe_dump({
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
        "restorable_datasets": {},
    }))
    (root / "host_vars").mkdir(exist_ok=True)
    (root / "host_vars" / "files01.yml").write_text(yaml.safe_dump({"restorable_datasets": {"shares-array": {
        "tier": "array", "volumes": ["/srv/shares"], "provider": provider, "schedule": "hourly",
        "retention": {"hourly": 24}}}}))
    return root


def test_apply_refuses_what_this_version_cannot_run(tmp_path):
    """Every tier has a planner; what the schema accepts but cannot run (a zfs array) is an error naming host,
    field and file, and nothing is applied anywhere."""
    root = _array_inventory(tmp_path / "inv", "zfs")
    result = _run("restorable.backup.apply", root)
    output = " ".join((result.stdout + result.stderr).split())  # the callback folds long messages
    assert result.returncode != 0, output
    assert ("files01: restorable_datasets.shares-array.provider: provider zfs is not available in this version: only "
            "btrfs runs; see docs/array-tier.md") in output
    assert "host_vars/files01.yml" in output
    assert "validated, not applied" not in output and not (root / "hostroot").exists()


def test_apply_sets_up_the_library_and_schedules_an_array_dataset(tmp_path):
    root = _array_inventory(tmp_path / "inv", "btrfs")
    variables = yaml.safe_load((root / "host_vars" / "files01.yml").read_text())
    variables["restorable_targets"] = {"vtl01": {
        "type": "tape_library", "driver": "directory", "path": str(tmp_path / "vtl"), "slots": 4, "drives": 1,
        "media": {"type": "LTO-8", "capacity_mb": 16}, "pools": {"daily": {"retention_days": 14}}}}
    variables["restorable_datasets"]["shares-array"]["export"] = {"library": "vtl01", "pool": "daily"}
    (root / "host_vars" / "files01.yml").write_text(yaml.safe_dump(variables))
    result = _run("restorable.backup.apply", root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "validated, not applied" not in " ".join(output.split())
    config = json.loads((root / "hostroot/files01/etc/restorable/shares-array.json").read_text())
    library_config = str(root / "hostroot/files01/etc/restorable/tape/vtl01.json")
    assert (config["tier"], config["options"]["volumes"]) == ("array", ["/srv/shares"])
    assert config["options"]["export"] == {"library_config": library_config, "pool": "daily", "every": 1, "chain_length": 7}
    library = json.loads(Path(library_config).read_text())
    assert (library["media"]["capacity_bytes"], library["pools"]["daily"]["barcode_prefix"]) == (16 * 10 ** 6, "DA")
    assert (tmp_path / "vtl/catalog.json").is_file() and (tmp_path / "vtl/slots/0004").is_dir()
    assert not (root / "hostroot/other01/etc/restorable/shares-array.json").exists()
