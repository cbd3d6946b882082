"""The core's pytest plugin, opt in with ``pytest -p rediq.testing`` (or
``addopts = "-p rediq.testing"``, or ``pytest_plugins = ["rediq.testing"]`` in a
top-level ``conftest.py``); installing rediq registers nothing in other projects' runs.

It owns the broker-neutral fixture ``rediq_namespace`` (a key namespace per test, so
tests never see each other's keys). Fixtures that need a broker's servers come from the
broker's plugin: when pytest is configured, every module registered through the
``rediq_register_pytest_plugins`` hook is registered with pytest (the Redis plugin gives
``rediq_redis_server``, ``rediq_redis_url``, the Cluster, Sentinel and TLS topologies:
``rediq_redis.testing.fixtures``). A plugin blocked with ``REDIQ_DISABLE_PLUGINS`` gives
none.
"""

from __future__ import annotations

import uuid

import pytest

from ..plugins import make_plugin_host

__all__ = ["pytest_configure", "rediq_namespace"]


def pytest_configure(config: pytest.Config) -> None:
    """Register with pytest the fixture modules that rediq plugins register."""
    for name in make_plugin_host().pytest_plugins():
        config.pluginmanager.import_plugin(name)  # as ``-p name``; once per name


@pytest.fixture
def rediq_namespace() -> str:
    """A key namespace unique to this test."""
    return f"t{uuid.uuid4().hex[:12]}"
