# -*- coding: utf-8 -*-
# Private to restorable.backup: the one place a Repository is built from what a job or a drill
# names, so callers never pick an engine class themselves.
from __future__ import annotations

from typing import Any

from .repository import Repository
from .restic import ResticRepository

ENGINES = {"restic": ResticRepository}


def open_repository(url: str, password_file: str, engine: str = "restic", **options: Any) -> Repository:
    """The repository at url (restic is the only engine of this version)."""
    try:
        cls = ENGINES[engine]
    except KeyError:
        raise ValueError("unknown repository engine %r (known: %s)" % (engine, ", ".join(sorted(ENGINES)))) from None
    return cls(url, password_file, **options)
