"""A connection pool that runs out is its own error, saying what to raise, never
"unreachable": the server is fine, the client's ``max_connections`` is too low. Many
enqueues at once from one process, though, wait for a connection instead of running the
pool out: ``asyncio.gather`` over thousands of ``enqueue()`` calls is ordinary use
(redis-py's pools hold 100 connections unless ``max_connections`` says otherwise)."""

from __future__ import annotations

import asyncio

import pytest

from rediq import Rediq
from rediq_core.broker import BrokerOptions
from rediq_core.errors import BrokerPoolExhaustedError, BrokerUnavailableError
from rediq_redis import RedisBroker


def _url(request: pytest.FixtureRequest, topology: str) -> str:
    if topology == "cluster":
        return str(request.getfixturevalue("rediq_redis_cluster").url())
    return str(request.getfixturevalue("rediq_redis_url"))


@pytest.mark.parametrize("topology", ["server", "cluster"])
async def test_pool_exhaustion_is_its_own_error(
    request: pytest.FixtureRequest, rediq_namespace: str, topology: str
) -> None:
    url = _url(request, topology)
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


BURST = 2_000


@pytest.mark.parametrize("topology", ["server", "cluster"])
async def test_a_burst_of_enqueues_waits_for_connections(
    request: pytest.FixtureRequest, rediq_namespace: str, topology: str
) -> None:
    url = _url(request, topology)
    app = Rediq(redis_url=url, namespace=rediq_namespace, redis_config={"max_connections": 4})

    @app.task
    async def work(i: int) -> int:
        return i

    try:
        handles = await asyncio.gather(*(work(i).enqueue() for i in range(BURST)))
        assert all(h.accepted for h in handles)
        overview = await app.control.queue("default")
        assert overview.pending == BURST, overview
    finally:
        await app.close()
