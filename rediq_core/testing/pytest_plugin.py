"""pytest fixtures for code that uses rediq: opt in with ``pytest -p rediq.testing`` (or
``addopts = "-p rediq.testing"``, or ``pytest_plugins = ["rediq.testing"]`` in a
top-level ``conftest.py``); installing rediq registers nothing in other projects' runs.

``rediq_redis_url`` gives each test a URL of a session-wide throwaway redis-server, and
``rediq_namespace`` a key namespace of its own, so tests never see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from .redis_server import RedisServer, RedisServerMissing

__all__ = [
    "rediq_namespace",
    "rediq_redis_server",
    "rediq_redis_server_factory",
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


@pytest.fixture
def rediq_namespace() -> str:
    """A key namespace unique to this test."""
    return f"t{uuid.uuid4().hex[:12]}"
