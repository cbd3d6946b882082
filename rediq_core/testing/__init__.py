"""Testing helpers for rediq and for projects that use it.

- :class:`RedisServer` starts a throwaway ``redis-server`` on a free loopback port;
  ``rediq_core.testing.topologies`` builds a Redis Cluster, a Sentinel setup and a TLS
  server from the same binary (certificates: ``rediq_core.testing.certificates``).
- The pytest plugin (entry point ``pytest11: rediq``) provides the fixtures
  ``rediq_redis_server``, ``rediq_redis_server_factory``, ``rediq_redis_url`` and
  ``rediq_namespace``.
"""

from __future__ import annotations

from .redis_server import RedisServer, RedisServerMissing, free_port

__all__ = ["RedisServer", "RedisServerMissing", "free_port"]
