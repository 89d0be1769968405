# -*- coding: utf-8 -*-
# Private to restorable.backup: the one place a Repository is built from what a job or a drill
# names, so callers hold the interface, never an engine class.
from __future__ import annotations

from typing import Any

from .repository import Repository
from .restic import ResticRepository


def open_repository(url: str, password_file: str, **options: Any) -> Repository:
    """The repository at url; restic is the engine of every repository this version knows."""
    return ResticRepository(url, password_file, **options)
