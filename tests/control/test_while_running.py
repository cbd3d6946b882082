"""Control operations while a worker drains the queue: nothing is lost or half-done."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.broker.audit import audit_queue

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
import redis.asyncio as redis_asyncio

gate = redis_asyncio.from_url(os.environ["REDIQ_REDIS_URL"])
GATE = os.environ["REDIQ_TEST_NAMESPACE"] + ":gate"

@app.task(task_queue="busy")
async def tick(n):
    if n >= FREE:
        await gate.blmove(GATE, GATE, 0)  # waits until the test opens the gate
    if n % 10 == 0:
        raise ValueError(f"tick {n}")
    return n
"""
COUNT = 2000
FREE = 200  # tasks 0..199 run at once; the others wait at the gate


async def test_purge_and_requeue_while_a_worker_drains(
    harness: Harness, rediq_redis_url: str
) -> None:
    m = harness.write_app(f"FREE = {FREE}\n" + APP)
    await m.app.enqueue_many([m.tick(n) for n in range(COUNT)])
    harness.start(
        "--queue-name",
        "busy",
        "--skip-default-queue",
        "--worker-task-concurrency",
        "20",
        "--worker-queue-size",
        "20",
    )
    control = m.app.control

    async def free_ones_done() -> bool:
        totals = (await control.queue("busy")).totals
        return totals["succeeded"] + totals["failed"] >= FREE

    # the worker now holds gated tasks (running and prefetched); the rest is pending
    await eventually(free_ones_done, f"the {FREE} tasks before the gate to end")
    requeued = await cli(harness, "dead-letters", "busy", "requeue", "--json")
    assert requeued.code == 0, requeued
    purged = await cli(harness, "purge", "busy", "--state", "pending", "--yes", "--json")
    assert purged.code == 0, purged
    removed = purged.json()["removed"]
    assert 0 < removed < COUNT
    opener = Redis.from_url(rediq_redis_url)
    try:
        await opener.rpush(f"{harness.namespace}:gate", "open")  # the held tasks go on
    finally:
        await opener.aclose()

    async def settled() -> bool:
        o = await control.queue("busy")
        return o.pending == o.active == o.scheduled == 0

    await eventually(settled, "the leased tasks to finish")
    o = await control.queue("busy")
    # every task ended exactly once: succeeded, dead-lettered, or purged while pending
    assert o.totals["succeeded"] + o.dead + removed == COUNT, (o, removed)
    redis = Redis.from_url(rediq_redis_url)
    try:
        state = await audit_queue(redis, harness.namespace, "busy")
    finally:
        await redis.aclose()
    assert set(state.states.values()) <= {"failed"}
