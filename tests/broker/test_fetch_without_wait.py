"""``fetch(..., wait=False)`` claims what is ready and returns at once, possibly with
nothing (a worker claims so with the slots it reserved, so that no slot stays reserved
while a fetch blocks); a later waiting fetch still wakes for new work. On the memory
broker and on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from rediq_core.broker import Broker, BrokerOptions
from rediq_core.plugins import PluginHost
from rediq_core.testing.broker_contract import WAIT_S, enqueue_one, make_message

QUEUE, WORKER, LEASE_MS = "now", "w", 60_000


@pytest.fixture(params=["memory", "redis"])
async def any_broker(
    request: pytest.FixtureRequest, plugin_host: PluginHost, rediq_namespace: str
) -> AsyncIterator[Broker]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("rediq_redis_url")
    broker = plugin_host.broker(BrokerOptions(url=url, namespace=rediq_namespace))
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def _fetch(broker: Broker, limit: int, *, wait: bool) -> list[str]:
    batch = await asyncio.wait_for(
        broker.fetch(QUEUE, worker_id=WORKER, limit=limit, lease_ms=LEASE_MS, wait=wait), WAIT_S
    )
    return [d.message.id for d in batch.deliveries]


async def test_a_fetch_without_wait_returns_at_once(any_broker: Broker) -> None:
    assert await _fetch(any_broker, 5, wait=False) == [], "an empty queue gives nothing"
    first = await enqueue_one(any_broker, queue=QUEUE)
    second = await enqueue_one(any_broker, queue=QUEUE)
    assert await _fetch(any_broker, 1, wait=False) == [first.id]
    assert await _fetch(any_broker, 5, wait=False) == [second.id], "what is ready, no more"
    assert await _fetch(any_broker, 5, wait=False) == []
    waiting = asyncio.ensure_future(_fetch(any_broker, 5, wait=True))
    await asyncio.sleep(0)
    third = make_message(QUEUE)
    await any_broker.enqueue([third])
    assert await waiting == [third.id], "a waiting fetch after it wakes for new work"
