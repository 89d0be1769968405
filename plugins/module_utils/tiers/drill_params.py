# -*- coding: utf-8 -*-
# Private to restorable.backup: what every tier's drill takes from the drill module's parameters
# (or a scheduled drill's configuration): the spec, the source repository opened with a private
# password file for the drill's length only, the sandbox test of check mode, the integrity layer.
from __future__ import annotations

import datetime
import os
import re
import time
from typing import Any

from ..common.durations import parse_duration
from ..common.process import Redactor, read_env_file, read_secret_file
from ..drill.engine import FAILED, OK, DrillSpec, Layer, SandboxRefused, check_sandbox, iso
from ..storage.factory import open_repository
from ..storage.repository import Repository, RepositoryError


def spec_from_params(params: dict[str, Any]) -> DrillSpec:
    return DrillSpec(
        drill=params["drill"], dataset=params["dataset"], tier=params.get("tier") or "agent", source_host=params["source_host"],
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


def open_drill_repository(params: dict[str, Any], secrets_dir: str) -> Repository:
    """The source repository the parameters name; a password given as a value goes into a
    private file below secrets_dir (the caller removes it), never into argv or the record."""
    repository = params["repository"]
    password_file, password = password_file_of(repository, secrets_dir)
    env = environment_of(repository)
    redactor = Redactor(list(env.values()) + [password])
    return open_repository(repository["url"], password_file, env=env, options=repository.get("options") or [],
                           cache_dir=os.path.join(secrets_dir, "cache"), redactor=redactor)


def integrity_layer(repo: Repository, read_data_subset: str | None, timeout: float | None) -> Layer:
    """restic check reading the given share of the data."""
    began = time.monotonic()
    details = {"read_data_subset": read_data_subset}
    try:
        check = repo.check(read_data_subset, timeout=timeout)
    except RepositoryError as exc:
        return Layer("integrity", FAILED, exc.message, time.monotonic() - began, details)
    seconds = time.monotonic() - began
    if check.ok:
        return Layer("integrity", OK, "restic check read %s: no errors" % (read_data_subset or "no pack data"),
                     seconds, details)
    if check.damaged:
        return Layer("integrity", FAILED, "restic check found damaged pack(s) %s" % ", ".join(check.damaged[:10]),
                     seconds, dict(details, packs=check.damaged))
    return Layer("integrity", FAILED, check.message, seconds, details)


def password_file_of(repository: dict[str, Any], secrets_dir: str) -> tuple[str, str]:
    """(file restic reads the password from, the password): the placed file, else a private temporary one."""
    if repository.get("password_file"):
        return repository["password_file"], read_secret_file(repository["password_file"], "repository password file")
    password_file = os.path.join(secrets_dir, "password")
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(repository["password"])
    return password_file, repository["password"]


def environment_of(repository: dict[str, Any]) -> dict[str, str]:
    if repository.get("env_file"):
        return read_env_file(repository["env_file"], "repository environment file")
    return {str(k): str(v) for k, v in (repository.get("env") or {}).items()}


def check_only_record(spec: DrillSpec) -> dict[str, Any]:
    now = iso(datetime.datetime.now(datetime.timezone.utc))
    try:
        check_sandbox(spec.sandbox, spec.protected_paths)
        layer, result, reason = Layer("sandbox", OK, "check mode: sandbox is safe, nothing restored"), "skipped", ""
    except SandboxRefused as exc:
        layer, result, reason = Layer("sandbox", FAILED, str(exc)), "failed", str(exc)
    return {"format": 1, "drill": spec.drill, "dataset": spec.dataset, "tier": spec.tier,
            "source_host": spec.source_host, "drill_host": spec.drill_host, "started": now, "finished": now,
            "result": result, "reason": reason, "layers": [layer.__dict__]}
