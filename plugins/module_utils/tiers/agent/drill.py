# -*- coding: utf-8 -*-
# Private to restorable.backup: a drill of one agent dataset from the drill module's
# parameters, or from a scheduled drill's configuration on the drill host (the same
# parameters, with the secrets as private files placed by the job module).
# A password given as a value lives in a private temporary file for the drill's length only;
# the record never carries a secret.
from __future__ import annotations

import datetime
import os
import re
import shutil
import tempfile
from typing import Any

from ...storage.factory import open_repository
from ...common.durations import parse_duration
from ...common.process import Redactor, read_env_file, read_secret_file
from .restore import AgentRestoreDriver
from ...drill.engine import DrillEngine, DrillSpec, Layer, SandboxRefused, check_sandbox, iso, FAILED, OK


def spec_from_params(params: dict[str, Any]) -> DrillSpec:
    return DrillSpec(
        drill=params["drill"], dataset=params["dataset"], tier="agent", source_host=params["source_host"],
        drill_host=params.get("drill_host") or params["source_host"], sandbox=params["sandbox"],
        protected_paths=list(params.get("protected_paths") or []),
        recovery_point=dict(params.get("recovery_point") or {"choice": "latest"}),
        sample=dict(params.get("sample") or {"mode": "all"}),
        checks=list(params.get("checks") or []),
        commands=list(params.get("commands") or []),
        rto_seconds=_seconds(params, "rto"), rpo_seconds=_seconds(params, "rpo"),
        keep_restore=bool(params.get("keep_restore")))


def _seconds(params: dict[str, Any], name: str) -> float | None:
    """A target given as a duration (15m) or seconds; None when not given."""
    value = params.get(name)
    if value is None:
        value = params.get(name + "_seconds")
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.match(r"^[0-9]+(\.[0-9]+)?$", value.strip()):
        return float(value)
    return float(parse_duration(value, name))


def run_agent_drill(params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    """The drill record of one agent dataset (check_only: the sandbox test alone)."""
    spec = spec_from_params(params)
    if check_only:
        return _check_only(spec)
    repository = params["repository"]
    secrets_dir = tempfile.mkdtemp(prefix="restorable-drill-")
    try:
        password_file, password = _password_file(repository, secrets_dir)
        env = _environment(repository)
        redactor = Redactor(list(env.values()) + [password])
        repo = open_repository(repository["url"], password_file, env=env, options=repository.get("options") or [],
                               cache_dir=os.path.join(secrets_dir, "cache"), redactor=redactor)
        recovery = spec.recovery_point
        driver = AgentRestoreDriver(repo, spec.dataset, spec.source_host, status=params.get("status") or {},
                                    read_data_subset=params.get("read_data_subset"),
                                    sample_seed=recovery.get("seed"), timeout=params.get("timeout"),
                                    application=params.get("application") or {},
                                    canary_path=params.get("canary_path"))
        return DrillEngine(spec, driver).run()
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)


def _password_file(repository: dict[str, Any], secrets_dir: str) -> tuple[str, str]:
    """(file restic reads the password from, the password): the placed file, else a private temporary one."""
    if repository.get("password_file"):
        return repository["password_file"], read_secret_file(repository["password_file"], "repository password file")
    password_file = os.path.join(secrets_dir, "password")
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(repository["password"])
    return password_file, repository["password"]


def _environment(repository: dict[str, Any]) -> dict[str, str]:
    if repository.get("env_file"):
        return read_env_file(repository["env_file"], "repository environment file")
    return {str(k): str(v) for k, v in (repository.get("env") or {}).items()}


def _check_only(spec: DrillSpec) -> dict[str, Any]:
    now = iso(datetime.datetime.now(datetime.timezone.utc))
    try:
        check_sandbox(spec.sandbox, spec.protected_paths)
        layer, result, reason = Layer("sandbox", OK, "check mode: sandbox is safe, nothing restored"), "skipped", ""
    except SandboxRefused as exc:
        layer, result, reason = Layer("sandbox", FAILED, str(exc)), "failed", str(exc)
    return {"format": 1, "drill": spec.drill, "dataset": spec.dataset, "tier": spec.tier,
            "source_host": spec.source_host, "drill_host": spec.drill_host, "started": now, "finished": now,
            "result": result, "reason": reason, "layers": [layer.__dict__]}
