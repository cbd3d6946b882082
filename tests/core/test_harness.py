"""The real-Redis test harness: servers on free loopback ports, and a loud failure (never a
skip) when redis-server is missing."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from rediq_redis.testing import RedisServer, RedisServerMissing
from rediq_redis.testing.fixtures import _start


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIQ_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RedisServerMissing, match="apt-get install redis-server"):
        RedisServer()
    with pytest.raises(pytest.fail.Exception, match="redis-server was not found on PATH"):
        _start()


def test_bad_override_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIQ_REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(RedisServerMissing, match="REDIQ_REDIS_SERVER='/nonexistent/redis-server'"):
        RedisServer()


async def test_restart_keeps_the_port_and_loses_memory() -> None:
    with RedisServer() as server:
        assert server.url().startswith("redis://127.0.0.1:")
        before = Redis.from_url(server.url())
        await before.set("k", "v")
        await before.aclose()
        server.restart()  # SIGKILL and start again on the same port: memory is gone
        after = Redis.from_url(server.url())
        try:
            assert await after.get("k") is None
        finally:
            await after.aclose()
