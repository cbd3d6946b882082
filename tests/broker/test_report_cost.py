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
#: replay window exists), measured on the tree before progress and logs existed; a
#: settlement runs one more since (the ``ZCOUNT`` by which it finds whether the worker's
#: holder has leases left: a holder goes with its last lease).
BEFORE = {"enqueue": 15, "claim": 25, "settle ttl 60": 18, "settle ttl 0": 16}


async def _minute(redis: Redis) -> int:
    seconds, _ = await redis.time()
    return int(seconds) // 60


async def _commands(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    skipped = ("cmdstat_evalsha", "cmdstat_script|load", "cmdstat_config|resetstat")
    return {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in stats.items()
        if name not in (*skipped, "cmdstat_info")
    }


#: The first count of a new minute also resets the minute's ring slot and rolls the
#: minute before up into the queue's history (about ten commands): a measurement that
#: met a minute's edge (on the server's clock) is made again; the next edge is a minute
#: away.


@pytest.mark.parametrize("ttl", [60, 0])
async def test_a_task_that_reports_nothing_costs_what_it_did(
    broker: RedisBroker, redis: Redis, ttl: int
) -> None:
    for _ in range(2):
        if await _measured(broker, redis, ttl):
            return
    raise AssertionError("two measurements in a row met a minute's edge")


async def _measured(broker: RedisBroker, redis: Redis, ttl: int) -> bool:
    """Run the comparison; False when it met a minute's edge."""
    minute = await _minute(redis)
    warm, plain, reported, held = (make_message(QUEUE, result_ttl_s=ttl) for _ in range(4))
    await broker.enqueue([warm, reported, held])  # `held` keeps the worker's holder
    await broker.fetch(QUEUE, worker_id=WORKER, limit=3, lease_ms=5_000, wait=False)
    await broker.settle(WORKER, [Settlement(warm.id, QUEUE, result=b"x", delivery=1)])

    await redis.config_resetstat()
    await broker.enqueue([plain])
    enqueued = await _commands(redis)
    await redis.config_resetstat()
    await broker.fetch(QUEUE, worker_id=WORKER, limit=1, lease_ms=5_000, wait=False)
    claimed = await _commands(redis)
    await redis.config_resetstat()
    await broker.settle(WORKER, [Settlement(plain.id, QUEUE, result=b"x", delivery=1)])
    ordinary = await _commands(redis)

    update = TrailUpdate(
        reported.id, QUEUE, 1, '[0.5, "half", 1]', ('[1, "INFO", "a", "m", 0]',), 0
    )
    assert await broker.report(WORKER, [update], LogBounds(10, 4096)) == [True]
    await redis.config_resetstat()
    done = Settlement(reported.id, QUEUE, result=b"x", delivery=1, reported=True)
    assert await broker.settle(WORKER, [done]) == [True]
    after = await _commands(redis)
    if await _minute(redis) != minute:
        return False
    assert sum(enqueued.values()) == BEFORE["enqueue"], enqueued
    assert sum(claimed.values()) == BEFORE["claim"], claimed
    assert sum(ordinary.values()) == BEFORE[f"settle ttl {ttl}"], ordinary
    extra = {k: v - ordinary.get(k, 0) for k, v in after.items()}
    assert {k: v for k, v in extra.items() if v} == {"expire" if ttl else "del": 1}, extra
    return True
