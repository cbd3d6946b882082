"""A connection pool that runs out is its own error, saying what to raise, never
"unreachable": the server is fine, the client's ``max_connections`` is too low."""

from __future__ import annotations

import asyncio

import pytest

from rediq_core.broker import BrokerOptions
from rediq_core.errors import BrokerPoolExhaustedError, BrokerUnavailableError
from rediq_redis import RedisBroker


@pytest.mark.parametrize("topology", ["server", "cluster"])
async def test_pool_exhaustion_is_its_own_error(
    request: pytest.FixtureRequest, rediq_namespace: str, topology: str
) -> None:
    if topology == "cluster":
        url = request.getfixturevalue("rediq_redis_cluster").url()
    else:
        url = request.getfixturevalue("rediq_redis_url")
    config = {"max_connections": 2}
    broker = RedisBroker(BrokerOptions(url=url, namespace=rediq_namespace, config=config))
    try:
        await broker.connect()
        outcomes = await asyncio.gather(
            *(broker.queue_stats("default") for _ in range(50)), return_exceptions=True
        )
    finally:
        await broker.close()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors, "50 concurrent calls fit in a pool of 2 connections"
    for error in errors:
        assert isinstance(error, BrokerPoolExhaustedError), repr(error)
        assert not isinstance(error, BrokerUnavailableError)
        assert "max_connections" in str(error) and "unreachable" not in str(error)
