# -*- coding: utf-8 -*-
"""The host's tier registry: every job and drill goes to its tier's driver, an unknown tier is
refused by name, and what the registry imports is what ships to hosts."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ansible_collections.restorable.backup.plugins.module_utils.core.jobspec import JobConfig
from ansible_collections.restorable.backup.plugins.module_utils.runtime import cli
from ansible_collections.restorable.backup.plugins.module_utils.runtime.registry import (
    TIERS, UnsupportedTier, run_drill, runner_for)
from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import standalone_sources
from ansible_collections.restorable.backup.plugins.module_utils.tiers.agent.driver import AgentDriver
from ansible_collections.restorable.backup.plugins.module_utils.tiers.host.driver import HostDriver


def job(tmp_path, tier: str) -> dict:
    return {"dataset": "vms", "tier": tier, "repository": {"url": str(tmp_path / "repo"), "password_file": "/pw"},
            "paths": ["/srv"], "status_dir": str(tmp_path / "status")}


def test_a_job_runs_with_its_tiers_driver(tmp_path):
    runner = runner_for(JobConfig.from_dict(job(tmp_path, "agent")))
    assert isinstance(runner.driver, AgentDriver) and runner.driver.tier == "agent"


def test_this_version_runs_the_agent_host_cdp_and_array_tiers():
    assert sorted(TIERS) == ["agent", "array", "cdp", "host"]
    assert TIERS["host"] is HostDriver and HostDriver.tier == "host"


def test_a_host_job_runs_with_the_host_driver(tmp_path):
    config = dict(job(tmp_path, "host"), paths=[], options={"vms": {"names": ["erp01"]}})
    runner = runner_for(JobConfig.from_dict(config))
    assert isinstance(runner.driver, HostDriver) and runner.driver.options.vms.names == ["erp01"]


def test_a_job_of_a_tier_this_version_does_not_run_is_refused_by_name(tmp_path):
    with pytest.raises(UnsupportedTier,
                       match=r"^tier vault is not supported by this version \(it runs: agent, array, cdp, host\)$"):
        runner_for(JobConfig.from_dict(job(tmp_path, "vault")))


def test_the_command_line_refuses_it_without_a_traceback(tmp_path, capsys):
    config = tmp_path / "vms.json"
    config.write_text(__import__("json").dumps(job(tmp_path, "vault")))
    assert cli.main(["run", "--config", str(config), "--quiet"]) == 2
    assert capsys.readouterr().err == \
        "restorable-agent: error: tier vault is not supported by this version (it runs: agent, array, cdp, host)\n"
    assert not (tmp_path / "status").exists(), "nothing ran"


def test_a_drill_goes_to_its_tiers_restore_side(monkeypatch):
    class Vault(AgentDriver):
        tier = "vault"

        @classmethod
        def drill(cls, params, check_only=False):
            return {"tier": cls.tier, "drill": params["drill"], "check_only": check_only}
    monkeypatch.setitem(TIERS.loaders, "vault", lambda: Vault)
    assert run_drill({"tier": "vault", "drill": "monthly"}, check_only=True) == {
        "tier": "vault", "drill": "monthly", "check_only": True}


def test_a_drill_of_an_unknown_tier_is_refused():
    with pytest.raises(UnsupportedTier, match="^tier vault is not supported"):
        run_drill({"tier": "vault", "drill": "d", "dataset": "vols"})


def test_a_tier_is_imported_only_when_a_job_or_drill_of_it_runs():
    """A CDP job every minute must not pay for importing the other tiers (bench/cdp.py idle_cpu)."""
    code = ("import sys; from ansible_collections.restorable.backup.plugins.module_utils.runtime import cli, registry; "
            "registry.TIERS['cdp']; print(sorted(m.rsplit('.', 2)[-2] for m in sys.modules if '.tiers.' in m and m.endswith('.driver')))")
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)})
    assert ran.stdout.strip() == "['cdp']"


def test_every_registered_tier_ships_to_hosts():
    shipped = standalone_sources()
    for name in TIERS:
        assert "restorable_agent/tiers/%s/driver.py" % name in shipped
    assert "restorable_agent/runtime/registry.py" in shipped
    assert not any(path.startswith("restorable_agent/converge/") for path in shipped), "the job module's own code stays"
