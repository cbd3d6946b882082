"""The Redis plugin's pytest fixtures, given to ``pytest -p rediq.testing`` through the
``rediq_register_pytest_plugins`` hook (the core's pytest plugin knows no broker).

``rediq_redis_url`` gives each test a URL of a session-wide throwaway redis-server
(``rediq_namespace``, from the core, gives it a key namespace of its own).
Session-wide topologies, started on first use: ``rediq_redis_cluster`` (3 masters + 3
replicas), ``rediq_redis_sentinel`` (master, replica, 3 sentinels) and
``rediq_redis_tls_server`` (TLS only, certificates in ``rediq_certificates``). Tests that
kill nodes should build their own (``rediq_redis.testing.topologies``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .certificates import Certificates
from .redis_server import RedisServer, RedisServerMissing
from .topologies import ClusterTopology, SentinelTopology, TlsRedisServer

__all__ = [
    "rediq_certificates",
    "rediq_redis_cluster",
    "rediq_redis_sentinel",
    "rediq_redis_server",
    "rediq_redis_server_factory",
    "rediq_redis_tls_server",
    "rediq_redis_url",
]


def _start(**kwargs: object) -> RedisServer:
    try:
        return RedisServer(**kwargs).start()  # type: ignore[arg-type]
    except RedisServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rediq_redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole session, on a free loopback port."""
    server = _start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def rediq_redis_server_factory() -> Iterator[Callable[..., RedisServer]]:
    """Start extra servers (for restart and kill tests); all are closed after the test."""
    servers: list[RedisServer] = []

    def factory(**kwargs: object) -> RedisServer:
        server = _start(**kwargs)
        servers.append(server)
        return server

    try:
        yield factory
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def rediq_redis_url(rediq_redis_server: RedisServer) -> str:
    return rediq_redis_server.url()


def _started(topology: Any) -> Any:
    try:
        return topology.start()
    except RedisServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def rediq_redis_cluster() -> Iterator[ClusterTopology]:
    """A Redis Cluster of 3 masters and 3 replicas, for the whole session."""
    cluster: ClusterTopology = _started(ClusterTopology())
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def rediq_redis_sentinel() -> Iterator[SentinelTopology]:
    """A master, its replica and three sentinels (service ``rediq``), for the session."""
    sentinel: SentinelTopology = _started(SentinelTopology())
    try:
        yield sentinel
    finally:
        sentinel.close()


@pytest.fixture(scope="session")
def rediq_certificates() -> Iterator[Certificates]:
    """A test CA with a server certificate (localhost, 127.0.0.1) and a client one."""
    certificates = Certificates()
    try:
        yield certificates
    finally:
        certificates.close()


@pytest.fixture(scope="session")
def rediq_redis_tls_server(rediq_certificates: Certificates) -> Iterator[TlsRedisServer]:
    """A redis-server that speaks TLS only and requires a client certificate."""
    server: TlsRedisServer = _started(TlsRedisServer(rediq_certificates))
    try:
        yield server
    finally:
        server.close()
