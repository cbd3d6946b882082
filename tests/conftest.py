"""Shared fixtures. The real-Redis fixtures come from rediq's own pytest plugin
(``rediq_core.testing.pytest_plugin``: rediq_redis_server, rediq_redis_url, ...)."""

from __future__ import annotations

import pytest

from rediq_core.plugins import PluginHost, make_plugin_host


@pytest.fixture
def plugin_host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """A fresh plugin host per test, free of the caller's environment switches."""
    monkeypatch.delenv("REDIQ_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("REDIQ_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return make_plugin_host()
