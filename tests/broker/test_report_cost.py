"""Progress and logs cost nothing to a task that reports neither: its enqueue, claim and
settlement run exactly the commands they ran before the feature (counted with ``INFO
commandstats``, as in ``test_protocol.py``); a task that reported pays one command at its
settlement (the trail's ``EXPIRE``, or ``DEL`` without a result) besides its reports."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from rediq_core.broker import Settlement
from rediq_core.tasklogs import LogBounds, TrailUpdate
from rediq_core.testing.contract.helpers import make_message
from rediq_redis import RedisBroker

QUEUE = "cost"
WORKER = "worker-1"
#: Commands of one lone ordinary step once the queue is warm (the tombstone hash of the
#: replay window exists), measured on the tree before progress and logs existed.
BEFORE = {"enqueue": 15, "claim": 25, "settle ttl 60": 17, "settle ttl 0": 15}


async def _commands(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    skipped = ("cmdstat_evalsha", "cmdstat_script|load", "cmdstat_config|resetstat")
    return {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in stats.items()
        if name not in (*skipped, "cmdstat_info")
    }


@pytest.mark.parametrize("ttl", [60, 0])
async def test_a_task_that_reports_nothing_costs_what_it_did(
    broker: RedisBroker, redis: Redis, ttl: int
) -> None:
    warm, plain, reported = (make_message(QUEUE, result_ttl_s=ttl) for _ in range(3))
    await broker.enqueue([warm, reported])
    await broker.fetch(QUEUE, worker_id=WORKER, limit=2, lease_ms=5_000, wait=False)
    await broker.settle(WORKER, [Settlement(warm.id, QUEUE, result=b"x", delivery=1)])

    await redis.config_resetstat()
    await broker.enqueue([plain])
    assert sum((await _commands(redis)).values()) == BEFORE["enqueue"]
    await redis.config_resetstat()
    await broker.fetch(QUEUE, worker_id=WORKER, limit=1, lease_ms=5_000, wait=False)
    assert sum((await _commands(redis)).values()) == BEFORE["claim"]
    await redis.config_resetstat()
    await broker.settle(WORKER, [Settlement(plain.id, QUEUE, result=b"x", delivery=1)])
    ordinary = await _commands(redis)
    assert sum(ordinary.values()) == BEFORE[f"settle ttl {ttl}"], ordinary

    update = TrailUpdate(
        reported.id, QUEUE, 1, '[0.5, "half", 1]', ('[1, "INFO", "a", "m", 0]',), 0
    )
    assert await broker.report(WORKER, [update], LogBounds(10, 4096)) == [True]
    await redis.config_resetstat()
    done = Settlement(reported.id, QUEUE, result=b"x", delivery=1, reported=True)
    assert await broker.settle(WORKER, [done]) == [True]
    extra = {k: v - ordinary.get(k, 0) for k, v in (await _commands(redis)).items()}
    assert {k: v for k, v in extra.items() if v} == {"expire" if ttl else "del": 1}, extra
