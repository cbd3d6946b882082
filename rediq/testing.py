"""Testing helpers for code that uses rediq (see docs/testing.md).

- ``run_worker(app, **config)``: an in-process worker (async context manager).
- ``using_broker(app, url)``: point an app at ``memory://`` or a test Redis for a block.
- ``RedisServer``: a throwaway ``redis-server`` on a free loopback port.

This module is also the opt-in pytest plugin: ``pytest -p rediq.testing``, or
``pytest_plugins = ["rediq.testing"]`` in a ``conftest.py``, provides the fixtures
``rediq_redis_server``, ``rediq_redis_server_factory``, ``rediq_redis_url``,
``rediq_namespace`` and the topologies ``rediq_redis_cluster``, ``rediq_redis_sentinel``,
``rediq_redis_tls_server`` (with ``rediq_certificates``).
"""

from __future__ import annotations

import contextlib

from rediq_core.testing import (
    RedisServer,
    RedisServerMissing,
    free_port,
    run_worker,
    using_broker,
)

with contextlib.suppress(ImportError):  # without pytest, the helpers work all the same
    from rediq_core.testing.pytest_plugin import (
        rediq_certificates,
        rediq_namespace,
        rediq_redis_cluster,
        rediq_redis_sentinel,
        rediq_redis_server,
        rediq_redis_server_factory,
        rediq_redis_tls_server,
        rediq_redis_url,
    )

__all__ = [
    "RedisServer",
    "RedisServerMissing",
    "free_port",
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
