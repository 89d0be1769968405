# -*- coding: utf-8 -*-
"""Fixtures of the evidence tests: the standalone agent (as tests/system/agent installs it)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))  # agent_helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tape"))  # s3_tape_helpers (Object Lock buckets)

from agent_helpers import AgentHarness  # noqa: E402
from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import install_standalone  # noqa: E402


@pytest.fixture(scope="module")
def evidence_agent(tmp_path_factory) -> AgentHarness:
    """The standalone agent package installed the way the job module installs it, and a host root."""
    install_dir = tmp_path_factory.mktemp("evidence-agent")
    install_standalone(str(install_dir))
    return AgentHarness(install_dir, tmp_path_factory.mktemp("evidence-host"))
