"""Testing helpers for rediq and for projects that use it.

- :func:`run_worker` runs a worker in the test's event loop (an async context manager);
  :func:`using_broker` points an app at a test broker (``memory://``, or a test server).
- :class:`RedisServer` starts a throwaway ``redis-server`` on a free loopback port;
  ``rediq_core.testing.topologies`` builds a Redis Cluster, a Sentinel setup and a TLS
  server from the same binary (certificates: ``rediq_core.testing.certificates``).
- The opt-in pytest plugin (``-p rediq.testing``) provides the fixtures
  ``rediq_redis_server``, ``rediq_redis_server_factory``, ``rediq_redis_url`` and
  ``rediq_namespace``.
"""

from __future__ import annotations

from .inprocess import run_worker, using_broker
from .redis_server import RedisServer, RedisServerMissing, free_port

__all__ = ["RedisServer", "RedisServerMissing", "free_port", "run_worker", "using_broker"]
