"""Fixtures of the Redis broker tests: a connected broker in a namespace of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions
from rediq_redis import RedisBroker


@pytest.fixture
async def broker(rediq_redis_url: str, rediq_namespace: str) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace))
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


@pytest.fixture
async def redis(rediq_redis_url: str) -> AsyncIterator[Redis]:
    """A raw client on the test server (for audits and for corrupting data on purpose)."""
    client = Redis.from_url(rediq_redis_url)
    try:
        yield client
    finally:
        await client.aclose()
