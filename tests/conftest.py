"""Shared fixtures. The real-Redis fixtures (rediq_redis_server, rediq_redis_url, ...) come
from the Redis plugin, which registers them with rediq's opt-in pytest plugin
(``-p rediq.testing`` in pyproject's addopts) through ``rediq_register_pytest_plugins``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from rediq_core.plugins import PluginHost, make_plugin_host
from rediq_redis.testing import RedisServer

from .tcp_proxy import TcpProxy


@pytest.fixture
def plugin_host(monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """A fresh plugin host per test, free of the caller's environment switches."""
    monkeypatch.delenv("REDIQ_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("REDIQ_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return make_plugin_host()


@pytest.fixture
async def proxy(rediq_redis_server: RedisServer) -> AsyncIterator[TcpProxy]:
    """A loopback TCP proxy in front of the session's redis-server, for fault tests."""
    proxy = await TcpProxy(rediq_redis_server.port).start()
    try:
        yield proxy
    finally:
        await proxy.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With REDIQ_FORBID_SKIPS=1 (set by CI), a skipped test fails the run."""
    if os.environ.get("REDIQ_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reporter.write_line(f"REDIQ_FORBID_SKIPS: {len(skipped)} test(s) skipped", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
