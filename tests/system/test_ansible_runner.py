# -*- coding: utf-8 -*-
"""The playbooks of the installed collection run under ansible-runner, the engine AWX and Ansible
Automation Platform run their jobs with.

A job is prepared as AWX prepares one: a private data directory holding the inventory, the
credentials' extra variables in ``env/extravars`` (a 0600 file, never the command line) and the
execution environment's settings in ``env/envvars``; the collection comes from the tarball
``ansible-galaxy collection build`` makes of this checkout, installed into a collections path of
its own. The job's status, return code and events are read back as AWX stores them.

Two inventory hosts share this machine (connection local, each with its own ``agent_root``),
back up for real with restic into local repositories below the test's directory, and are audited.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import Any

import ansible_runner
import pytest
import yaml

# The collection as users get it: built, then installed from the tarball (module fixtures).
from test_galaxy_build import BIN, collections_path, tarball  # noqa: F401  pylint: disable=unused-import

HOSTS = {"web1": "www", "web2": "app"}  # inventory host -> the dataset it protects
PLAYBOOKS = ("validate", "plan", "apply", "backup", "audit")  # the jobs, in this order
JOB_TIMEOUT = 300


@dataclass
class Job:
    """One finished ansible-runner job: what AWX shows of it."""

    status: str
    rc: int
    events: list[dict[str, Any]]
    stdout: str
    command: str

    def started_tasks(self) -> list[str]:
        return [e["event_data"]["task"] for e in self.events if e["event"] == "playbook_on_task_start"]

    def results(self, kind: str, action: str) -> dict[str, dict[str, Any]]:
        """{host: event data} of the events of one kind (runner_on_ok, ...) of tasks running action."""
        return {e["event_data"]["host"]: e["event_data"] for e in self.events
                if e["event"] == kind and e["event_data"].get("resolved_action") == action}

    def describe(self) -> str:
        return "status %s, rc %s; output (tail):\n%s" % (self.status, self.rc, self.stdout[-6000:])


@dataclass
class Project:
    """A private data directory as AWX lays one out for a job, and where the installed collection is."""

    private_data_dir: Path
    collections_path: Path

    @property
    def collection(self) -> Path:
        return self.collections_path / "ansible_collections/restorable/backup"

    def write_inventory(self, variables: dict[str, Any], hosts: dict[str, Any]) -> None:
        inventory = self.private_data_dir / "inventory"
        inventory.mkdir(parents=True, exist_ok=True)
        (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"vars": variables, "hosts": hosts}}))

    def write_host_vars(self, host: str, text: str) -> None:
        path = self.private_data_dir / "inventory/host_vars" / ("%s.yml" % host)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def write_extravars(self, variables: dict[str, str]) -> None:
        """Extra variables in a file of the job's own, as AWX passes those of the job template and
        those a custom credential type injects."""
        path = self.private_data_dir / "env/extravars"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(yaml.safe_dump(variables))

    def run(self, playbook: str) -> Job:
        """``restorable.backup.<playbook>``, from the installed collection only. AWX starts a
        playbook file of the project: a wrapper that imports the collection's (docs/awx.md)."""
        project = self.private_data_dir / "project"
        project.mkdir(parents=True, exist_ok=True)
        (project / ("%s.yml" % playbook)).write_text(yaml.safe_dump([{
            "name": "Run restorable.backup.%s" % playbook,
            "ansible.builtin.import_playbook": "restorable.backup.%s" % playbook}], sort_keys=False))
        # A configuration of the job's own: none of the checkout's (its collections_path, callbacks).
        config = project / "ansible.cfg"
        config.write_text("[defaults]\nretry_files_enabled = False\n")
        runner = ansible_runner.run(
            private_data_dir=str(self.private_data_dir), playbook="%s.yml" % playbook, quiet=True, timeout=JOB_TIMEOUT,
            envvars={
                "ANSIBLE_CONFIG": str(config),
                "ANSIBLE_COLLECTIONS_PATH": str(self.collections_path),
                "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
                "ANSIBLE_NOCOLOR": "1",
                "XDG_CACHE_HOME": str(self.private_data_dir / "cache"),  # restic's cache: below the test's directory
                "PATH": "%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")),
            },
        )
        command = (Path(runner.config.artifact_dir) / "command").read_text()
        return Job(runner.status, runner.rc, list(runner.events), runner.stdout.read(), command)


def declared_tasks(collection: Path, playbook: str) -> list[str]:
    """The names of the tasks of an installed playbook, of the playbooks it imports and of its roles."""
    names: list[str] = []
    for play in yaml.safe_load((collection / "playbooks" / ("%s.yml" % playbook)).read_text()):
        if "ansible.builtin.import_playbook" in play:
            names += declared_tasks(collection, play["ansible.builtin.import_playbook"].rsplit(".", 1)[-1])
            continue
        for role in play.get("roles", []):
            role_name = role["role"] if isinstance(role, dict) else role
            names += _task_names(yaml.safe_load((collection / "roles" / role_name.rsplit(".", 1)[-1] / "tasks/main.yml").read_text()))
        for section in ("pre_tasks", "tasks", "post_tasks"):
            names += _task_names(play.get(section, []))
    return names


def _task_names(tasks: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for task in tasks:
        if "block" in task:  # a block starts no task of its own
            names += _task_names(task["block"] + task.get("rescue", []) + task.get("always", []))
        else:
            names.append(task["name"])
    return names


@pytest.fixture(scope="module")
def restic_password() -> str:
    return "rp-" + token_hex(16)


@pytest.fixture(scope="module")
def fleet(collections_path, restic_password, restic_binary, tmp_path_factory) -> Project:  # noqa: F811
    """Two local hosts with a dataset each and one local repository per host; the repository
    password is an extra variable, as a vault or custom credential injects it."""
    del restic_binary  # only: fail early when restic is missing
    root = tmp_path_factory.mktemp("runner-fleet")
    project = Project(root / "job", collections_path)
    host_root = str(root / "hosts") + "/{{ inventory_hostname }}"
    project.write_inventory({
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "agent_root": host_root + "/root",
        "restorable_compliance": {"plaintext_secrets": "error"},
        "restorable_targets": {"repo": {
            "type": "local", "path": str(root / "repositories") + "/{{ inventory_hostname }}",
            "password": "{{ vault_restic_password }}"}},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
    }, {host: {"restorable_datasets": {dataset: {
        "tier": "agent", "paths": [host_root + "/data"], "targets": ["repo"], "schedule": "hourly",
        "rpo": "1h", "retention": {"last": 5}}}} for host, dataset in HOSTS.items()})
    project.write_extravars({"vault_restic_password": restic_password, "audit_dir": str(root / "audit")})
    for host in HOSTS:
        data = root / "hosts" / host / "data"
        data.mkdir(parents=True)
        for index in range(5):
            (data / ("file-%d.txt" % index)).write_text("%s %d\n" % (host, index))
    return project


@pytest.fixture(scope="module")
def jobs(fleet: Project) -> dict[str, Job]:
    """One job per playbook, in the order of PLAYBOOKS."""
    return {name: fleet.run(name) for name in PLAYBOOKS}


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_job_succeeds_with_every_task_of_the_installed_playbook(jobs, fleet, playbook):
    job = jobs[playbook]
    assert (job.status, job.rc) == ("successful", 0), job.describe()
    assert set(declared_tasks(fleet.collection, playbook)) <= set(job.started_tasks()), job.describe()
    # The tasks come from the installed tarball, not from the checkout.
    paths = {e["event_data"]["task_path"].rsplit(":", 1)[0] for e in job.events if "task_path" in e.get("event_data", {})}
    assert paths and all(path.startswith(str(fleet.collection) + "/") for path in paths), paths


def test_plan_describes_each_host(jobs):
    plans = jobs["plan"].results("runner_on_ok", "restorable.backup.plan")
    assert set(plans) == set(HOSTS)
    for host, dataset in HOSTS.items():
        assert plans[host]["res"]["plan"][0].startswith("dataset %s (agent tier)" % dataset), plans[host]


def test_backup_writes_a_snapshot_per_host(jobs, fleet, restic_password, tmp_path):
    statuses = jobs["backup"].results("runner_on_ok", "restorable.backup.status_info")
    assert set(statuses) == set(HOSTS)
    password_file = tmp_path / "password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(restic_password)
    for host, dataset in HOSTS.items():
        status = statuses[host]["res"]["jobs"][dataset]
        assert status["result"] == "success", status
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
        env["RESTIC_PASSWORD_FILE"] = str(password_file)
        listed = subprocess.run(["restic", "-r", status["repository"], "--no-cache", "snapshots", "--json"], env=env,
                                capture_output=True, text=True, timeout=120, check=True)
        assert [s["short_id"] for s in json.loads(listed.stdout)] == [status["snapshot_id"]]


def test_secret_stays_out_of_output_events_and_command_line(jobs, restic_password):
    for name, job in jobs.items():
        assert restic_password not in job.stdout, name
        assert restic_password not in json.dumps(job.events), name
        # runner's record of the argv and environment it started ansible-playbook with
        assert restic_password not in job.command, name


def test_a_broken_policy_fails_the_job_naming_file_host_and_field(collections_path, tmp_path):  # noqa: F811
    project = Project(tmp_path / "job", collections_path)
    project.write_inventory({
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "agent_root": str(tmp_path / "hosts") + "/{{ inventory_hostname }}",
        "restorable_targets": {"repo": {"type": "local", "path": str(tmp_path / "repo"), "password": "{{ vault_pw }}"}},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
    }, {"web1": None, "web2": None})
    project.write_extravars({"vault_pw": "pw-" + token_hex(8)})
    project.write_host_vars("web2", "\n".join([
        "restorable_datasets:", "  www:", "    tier: agent", "    paths: [/srv/www]", "    targets: [repo]",
        "    schedule: hourly", "    retention:", "      daily: -1", ""]))
    job = project.run("apply")
    assert (job.status, job.rc != 0) == ("failed", True), job.describe()
    (failed,) = job.results("runner_on_failed", "restorable.backup.validate").values()
    assert failed["task"] == "Validate the restorable_* variables of every host"
    problems = failed["res"]["problems"]
    assert len(problems) == 1 and problems[0].startswith("web2: restorable_datasets.www.retention.daily: -1 is less than 0 ("), problems
    assert problems[0].endswith("host_vars/web2.yml:8)"), problems
    assert "nothing was applied" in failed["res"]["msg"]
    assert "Traceback" not in job.stdout
    assert not (tmp_path / "hosts").exists() and not (tmp_path / "repo").exists()


def test_audit_reports_every_dataset_into_its_directory(jobs, fleet):
    (audit,) = jobs["audit"].results("runner_on_ok", "restorable.backup.audit").values()
    assert audit["res"]["summary"]["datasets"] == len(HOSTS) and audit["res"]["summary"]["red"] == 0, audit["res"]
    for host, dataset in HOSTS.items():
        assert any(" %s/%s " % (host, dataset) in line for line in audit["res"]["summary_lines"]), audit["res"]
    report = Path(audit["res"]["audit_dir"])
    assert report == fleet.private_data_dir.parent / "audit"
    assert {"audit.json", "junit.xml", "audit.html"} <= {p.name for p in report.iterdir()}
    document = json.loads((report / "audit.json").read_text())
    assert {(d["host"], d["dataset"]) for d in document["datasets"]} == set(HOSTS.items())


def test_audit_fails_the_job_on_a_red_dataset(collections_path, tmp_path):  # noqa: F811
    """A dataset no backup ever reached is red: the job fails (AWX shows it failed) and the report
    still lands in audit_dir."""
    project = Project(tmp_path / "job", collections_path)
    project.write_inventory({
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "agent_root": str(tmp_path / "hosts") + "/{{ inventory_hostname }}",
        "restorable_targets": {"repo": {"type": "local", "path": str(tmp_path / "repo"), "password": "{{ vault_pw }}"}},
        "restorable_schedules": {"hourly": {"calendar": "hourly"}},
    }, {"web1": {"restorable_datasets": {"www": {
        "tier": "agent", "paths": ["/srv/www"], "targets": ["repo"], "schedule": "hourly", "rpo": "1h", "retention": {"last": 3}}}}})
    project.write_extravars({"vault_pw": "pw-" + token_hex(8), "audit_dir": str(tmp_path / "audit")})
    job = project.run("audit")
    assert (job.status, job.rc != 0) == ("failed", True), job.describe()
    (failed,) = job.results("runner_on_failed", "restorable.backup.audit").values()
    assert failed["task"] == "Judge every declared dataset, print one line each, fail when any is red"
    assert "web1/www" in failed["res"]["msg"], failed["res"]
    assert "Traceback" not in job.stdout
    junit = (tmp_path / "audit/junit.xml").read_text()
    assert "<failure" in junit and "www" in junit
