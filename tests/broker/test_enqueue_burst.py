"""Many enqueues at once from one process wait for a connection of the pool instead of
running it out: ``asyncio.gather`` over thousands of ``enqueue()`` calls is ordinary use
(redis-py's pools hold 100 connections unless ``max_connections`` says otherwise)."""

from __future__ import annotations

import asyncio

import pytest

from rediq import Rediq

BURST = 2_000


@pytest.mark.parametrize("topology", ["server", "cluster"])
async def test_a_burst_of_enqueues_waits_for_connections(
    request: pytest.FixtureRequest, rediq_namespace: str, topology: str
) -> None:
    if topology == "cluster":
        url = request.getfixturevalue("rediq_redis_cluster").url()
    else:
        url = request.getfixturevalue("rediq_redis_url")
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
