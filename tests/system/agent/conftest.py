# -*- coding: utf-8 -*-
"""Fixtures of the agent system tests (helpers live in agent_helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent_helpers import AgentHarness
from ansible_collections.restorable.backup.plugins.module_utils.runtime.standalone import (
    PACKAGE_NAME, install_standalone)


@pytest.fixture(scope="session")
def agent_install(tmp_path_factory) -> Path:
    """The standalone agent package, installed the way the job module installs it."""
    install_dir = tmp_path_factory.mktemp("agent-install")
    install_standalone(str(install_dir))
    assert (install_dir / PACKAGE_NAME / "__main__.py").exists()
    return install_dir


@pytest.fixture
def agent(agent_install, tmp_path) -> AgentHarness:
    return AgentHarness(agent_install, tmp_path)
