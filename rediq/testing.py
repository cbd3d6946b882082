"""Testing helpers for code that uses rediq (see docs/testing.md).

- ``run_worker(app, **config)``: an in-process worker (async context manager).
- ``using_broker(app, url)``: point an app at ``memory://`` or a test Redis for a block.
- ``RedisServer``: a throwaway ``redis-server`` on a free loopback port.

This module is also the opt-in pytest plugin: ``pytest -p rediq.testing``, or
``pytest_plugins = ["rediq.testing"]`` in a ``conftest.py``, provides the fixtures
``rediq_redis_server``, ``rediq_redis_server_factory``, ``rediq_redis_url``,
``rediq_namespace`` and the topologies ``rediq_redis_cluster``, ``rediq_redis_sentinel``,
``rediq_redis_tls_server`` (with ``rediq_certificates``).

``rediq`` imports only ``rediq_core``: the Redis harness (``RedisServer``,
``RedisServerMissing``, ``free_port`` and the ``rediq_redis_*`` fixtures) belongs to the
Redis plugin (``rediq_redis.testing``), so those names are imported from it on first
access (a module ``__getattr__``); pytest gets the fixtures from the plugin itself,
through the ``rediq_register_pytest_plugins`` hook that the core's ``pytest_configure``
calls.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

from rediq_core.testing import run_worker, using_broker

with contextlib.suppress(ImportError):  # without pytest, the helpers work all the same
    from rediq_core.testing.pytest_plugin import pytest_configure, rediq_namespace

if TYPE_CHECKING:
    from rediq_redis.testing import RedisServer, RedisServerMissing, free_port
    from rediq_redis.testing.fixtures import (
        rediq_certificates,
        rediq_redis_cluster,
        rediq_redis_sentinel,
        rediq_redis_server,
        rediq_redis_server_factory,
        rediq_redis_tls_server,
        rediq_redis_url,
    )

#: Names imported from the Redis plugin on first access, and the module that defines them.
_FROM_REDIS_PLUGIN = {
    "RedisServer": "rediq_redis.testing",
    "RedisServerMissing": "rediq_redis.testing",
    "free_port": "rediq_redis.testing",
    **{
        name: "rediq_redis.testing.fixtures"
        for name in (
            "rediq_certificates",
            "rediq_redis_cluster",
            "rediq_redis_sentinel",
            "rediq_redis_server",
            "rediq_redis_server_factory",
            "rediq_redis_tls_server",
            "rediq_redis_url",
        )
    },
}

__all__ = [
    "RedisServer",
    "RedisServerMissing",
    "free_port",
    "pytest_configure",
    "rediq_certificates",
    "rediq_namespace",
    "rediq_redis_cluster",
    "rediq_redis_sentinel",
    "rediq_redis_server",
    "rediq_redis_server_factory",
    "rediq_redis_tls_server",
    "rediq_redis_url",
    "run_worker",
    "using_broker",
]


def __getattr__(name: str) -> Any:
    """Import a name of the Redis harness from ``rediq_redis.testing`` on first access."""
    module = _FROM_REDIS_PLUGIN.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
