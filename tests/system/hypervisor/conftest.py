"""Registers the hypervisor fixtures for this folder when tests/system/conftest.py has not already.

A ``pytest_plugins`` list here would be refused (pytest only allows it in top-level conftests),
hence the explicit registration, skipped when the plugin is registered already.
"""

import pytest

from . import plugin


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "hypervisor.plugin")
