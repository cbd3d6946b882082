"""Real Redis topologies on loopback ports, built from the ``redis-server`` binary.

- :class:`ClusterTopology` (``rediq_redis.testing.cluster``): 3 masters and 3 replicas.
- :class:`SentinelTopology` (``rediq_redis.testing.sentinel``): one master, one replica
  and three sentinels (``redis-server --sentinel``).
- :class:`TlsRedisServer`: a server that speaks TLS only, with certificates from
  :class:`~rediq_redis.testing.certificates.Certificates`; both topologies take
  ``tls=certificates`` too.

Every wait is bounded and fails with a message saying what did not happen. Killing a
process is a real SIGKILL (:meth:`RedisServer.kill`).
"""

from __future__ import annotations

from .cluster import ClusterTopology
from .processes import TlsRedisServer, admin, cluster_port, command, tls_client, wait_until
from .sentinel import SentinelProcess, SentinelTopology

__all__ = [
    "ClusterTopology",
    "SentinelProcess",
    "SentinelTopology",
    "TlsRedisServer",
    "admin",
    "cluster_port",
    "command",
    "tls_client",
    "wait_until",
]
