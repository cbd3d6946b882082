"""A purge never holds Redis for the whole backlog: it removes its tasks in script calls of
at most ``BrokerSettings.purge_batch`` tasks each, looping until a call finds none, so
purging a million-task backlog is a thousand short calls, not one that blocks the server
for seconds (benchmarks/backlog.py measures them). Calls are counted with
``INFO commandstats``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions, TaskState
from rediq_core.testing.contract.helpers import make_message
from rediq_redis import BrokerSettings, RedisBroker

QUEUE = "purged"
BATCH = 10
FAR_AWAY_MS = 10**13


@pytest.fixture
async def small_batches(rediq_redis_url: str, rediq_namespace: str) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(
        BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace),
        BrokerSettings(purge_batch=BATCH),
    )
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def _script_calls(redis: Redis) -> int:
    return int((await redis.info("commandstats")).get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_purge_removes_at_most_one_batch_per_script_call(
    small_batches: RedisBroker, redis: Redis
) -> None:
    await small_batches.purge_tasks(QUEUE, [TaskState.PENDING])  # the script is loaded
    await small_batches.enqueue([make_message(QUEUE) for _ in range(35)])
    await small_batches.enqueue([make_message(QUEUE, eta_ms=FAR_AWAY_MS) for _ in range(2 * BATCH)])
    await redis.config_resetstat()

    removed = await small_batches.purge_tasks(QUEUE, [TaskState.PENDING, TaskState.SCHEDULED])

    assert removed == 35 + 2 * BATCH
    # pending: 4 calls remove 10, 10, 10 and 5, a 5th finds none; scheduled: 2 full
    # calls, a 3rd finds none
    assert await _script_calls(redis) == 5 + 3
    stats = await small_batches.queue_stats(QUEUE)
    assert (stats.pending, stats.scheduled) == (0, 0)
