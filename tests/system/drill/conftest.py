# -*- coding: utf-8 -*-
from __future__ import annotations

import shutil

import pytest

from drill_helpers import Source, make_source  # noqa: F401  (also puts the collection on sys.path)


@pytest.fixture(autouse=True)
def _needs_restic() -> None:
    if shutil.which("restic") is None:
        pytest.skip("restic is not installed")


@pytest.fixture
def source(tmp_path) -> Source:
    """A dataset backed up once by the real runner into a local restic repository."""
    made = make_source(tmp_path / "src")
    made.backup()
    return made
