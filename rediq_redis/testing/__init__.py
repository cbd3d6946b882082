"""Throwaway Redis servers and topologies for tests, started from the ``redis-server``
binary on free loopback ports (they use redis-py to set themselves up, which is why they
live in the Redis plugin and not in the core).

- :class:`RedisServer` (``rediq_redis.testing.redis_server``): one server.
- ``rediq_redis.testing.topologies``: a Redis Cluster, a Sentinel setup and a TLS server
  (certificates: ``rediq_redis.testing.certificates``).
- ``rediq_redis.testing.fixtures``: their pytest fixtures, which ``pytest -p
  rediq.testing`` provides (the Redis plugin registers them through
  ``rediq_register_pytest_plugins``).
"""

from __future__ import annotations

from .redis_server import RedisServer, RedisServerMissing, free_port

__all__ = ["RedisServer", "RedisServerMissing", "free_port"]
