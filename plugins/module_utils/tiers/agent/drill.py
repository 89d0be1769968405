# -*- coding: utf-8 -*-
# Private to restorable.backup: a drill of one agent dataset from the drill module's
# parameters, or from a scheduled drill's configuration on the drill host (the same
# parameters, with the secrets as private files placed by the job module).
# A password given as a value lives in a private temporary file for the drill's length only;
# the record never carries a secret.
from __future__ import annotations

import shutil
import tempfile
from typing import Any

from ..drill_params import check_only_record, open_drill_repository, spec_from_params
from .restore import AgentRestoreDriver
from ...drill.engine import DrillEngine


def run_agent_drill(params: dict[str, Any], check_only: bool = False) -> dict[str, Any]:
    """The drill record of one agent dataset (check_only: the sandbox test alone)."""
    spec = spec_from_params(params)
    if check_only:
        return check_only_record(spec)
    secrets_dir = tempfile.mkdtemp(prefix="restorable-drill-")
    try:
        repo = open_drill_repository(params, secrets_dir)
        recovery = spec.recovery_point
        driver = AgentRestoreDriver(repo, spec.dataset, spec.source_host, status=params.get("status") or {},
                                    read_data_subset=params.get("read_data_subset"),
                                    sample_seed=recovery.get("seed"), timeout=params.get("timeout"),
                                    application=params.get("application") or {},
                                    canary_path=params.get("canary_path"))
        return DrillEngine(spec, driver).run()
    finally:
        shutil.rmtree(secrets_dir, ignore_errors=True)
