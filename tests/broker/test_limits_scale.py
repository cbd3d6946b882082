"""Flow control at the scale users reach, on a real Redis: a tenant with 10,000 pending
tasks does not delay another tenant's one task, and 10,000 tasks held back by one
concurrency limit are each parked once and all run, in order."""

from __future__ import annotations

from redis.asyncio import Redis

from rediq_core.broker import Settlement
from rediq_core.flow import Flow
from rediq_core.testing.contract.helpers import make_message
from rediq_redis import RedisBroker

from .audit import audit_queue

Q = "scale"
BACKLOG = 10_000


async def enqueue_all(broker: RedisBroker, flow: Flow) -> list[str]:
    messages = [make_message(Q, flow=flow, result_ttl_s=0) for _ in range(BACKLOG)]
    for start in range(0, BACKLOG, 500):
        await broker.enqueue(messages[start : start + 500])
    return [m.id for m in messages]


async def claim(broker: RedisBroker, limit: int) -> list[str]:
    batch = await broker.fetch(Q, worker_id="w", limit=limit, lease_ms=60_000, wait=False)
    return [d.message.id for d in batch.deliveries]


async def test_a_tenant_with_ten_thousand_pending_does_not_delay_another(
    broker: RedisBroker,
) -> None:
    heavy = await enqueue_all(broker, Flow(fair="a"))
    assert await claim(broker, 3) == heavy[:3]
    light = make_message(Q, flow=Flow(fair="b"))
    await broker.enqueue([light])
    assert await claim(broker, 1) == [light.id]
    assert await claim(broker, 2) == heavy[3:5]


async def test_ten_thousand_tasks_behind_one_limit_all_run_in_order(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    ids = await enqueue_all(broker, Flow(concurrency=(("c:t", 10),)))
    ran: list[str] = []
    while len(ran) < BACKLOG:
        taken = await claim(broker, 100)
        assert 0 < len(taken) <= 10, f"{len(taken)} leased after {len(ran)} ran"
        ran += taken
        await broker.settle("w", [Settlement(i, Q, result=b"null") for i in taken])
    assert ran == ids
    stats = await broker.queue_stats(Q)
    assert (stats.pending, stats.limited, stats.active) == (0, 0, 0)
    await audit_queue(redis, rediq_namespace, Q)
    left = [
        k
        for k in ("slots", "parked", "limits_due")
        if await redis.exists(f"{{{rediq_namespace}:{Q}}}:{k}")
    ]
    assert left == [], f"left behind: {left}"
