# -*- coding: utf-8 -*-
# Private to restorable.backup: the one place a Repository is built from what a job or a drill
# names, so callers hold the interface, never an engine class.
from __future__ import annotations

from typing import Any, Sequence

from ..common.process import Redactor, read_env_file, read_secret_file
from .repository import Repository
from .restic import ResticRepository


def open_repository(url: str, password_file: str, **options: Any) -> Repository:
    """The repository at url; restic is the engine of every repository this version knows."""
    return ResticRepository(url, password_file, **options)


def open_job_repository(config: Any, redact: Redactor, command_prefix: Sequence[str] = ()) -> Repository:
    """The repository of a job configuration (core.jobspec.JobConfig), its password and
    environment values taught to `redact` first so that no output ever shows them."""
    redact.add(read_secret_file(config.password_file, "repository password file"))
    env = read_env_file(config.env_file, "repository environment file") if config.env_file else {}
    for value in env.values():
        redact.add(value)
    return open_repository(config.repository, config.password_file, env=env, options=config.repository_options,
                           binary=config.restic_binary, cache_dir=config.cache_dir,
                           limit_upload_kbps=config.limit_upload_kbps, limit_download_kbps=config.limit_download_kbps,
                           command_prefix=list(command_prefix), redactor=redact)
