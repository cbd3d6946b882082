"""Workflows leave nothing behind on Redis: once every step has ended (succeeded, failed
and cut short, cancelled while waiting, deleted or purged), no waiting step, join count,
joined set, outbox member or task record is left, across queues; an outbox member whose
delivery was lost is delivered by the next claim of its queue, once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions, TaskState
from rediq_core.message import TaskMessage, new_task_id
from rediq_core.testing.contract.helpers import QUEUE, failure, fetch, success
from rediq_core.testing.contract.workflows import steps
from rediq_redis import RedisBroker
from tests.broker.audit import audit_queue

A, B = QUEUE, "wf-b"  # steps() puts a step in QUEUE unless told otherwise
W = "worker-1"


@pytest.fixture
async def broker(rediq_redis_url: str, rediq_namespace: str) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace))
    try:
        yield broker
    finally:
        await broker.close()


def workflow(edges: dict[int, list[int]], queues: dict[int, str]) -> list[TaskMessage]:
    """Steps that keep no result (so nothing stays for the result TTL)."""
    return [replace(m, result_ttl_s=0) for m in steps(new_task_id(), edges, queues)]


async def run_all(broker: RedisBroker, queue: str, fail: frozenset[str]) -> int:
    """Fetch and settle everything ready in ``queue`` (failing the ids in ``fail``)."""
    batch = await fetch(broker, queue=queue, wait=False)
    settled = [
        failure(d.message) if d.message.id in fail else success(d.message) for d in batch.deliveries
    ]
    if settled:
        assert all(await broker.settle(W, settled))
    return len(settled)


async def drain(broker: RedisBroker, fail: frozenset[str] = frozenset()) -> None:
    while await run_all(broker, A, fail) + await run_all(broker, B, fail):
        pass


async def leftovers(redis: Redis, namespace: str) -> set[str]:
    keys = {k.decode() async for k in redis.scan_iter(match=f"{{{namespace}:*")}
    kinds = (":waiting", ":joins", ":outbox", ":tasks", ":joined:", ":pending", ":active")
    return {k for k in keys if any(kind in k for kind in kinds)}


async def test_every_ending_leaves_no_workflow_key(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    # succeeded, across queues: 0 (A) -> 1, 2 (B) -> 3 (A)
    ok = workflow({0: [1, 2], 1: [3], 2: [3]}, {1: B, 2: B})
    # failed at step 1 (B): 2 and 3 (A) are cut short
    failed = workflow({0: [1], 1: [2], 2: [3]}, {1: B})
    # cancelled while waiting (B), deleted while pending (A), purged while waiting (A)
    cancelled = workflow({0: [1], 1: [2]}, {1: B, 2: B})
    deleted = workflow({0: [1], 1: [2]}, {2: B})
    purged = workflow({0: [1]}, {})
    for flow in (ok, failed, cancelled, deleted, purged):
        await broker.enqueue(list(reversed(flow)))
    for queue in (A, B):  # every record in the structure its state names (I1, I7)
        state = await audit_queue(redis, rediq_namespace, queue)
        assert "waiting" in state.states.values()
    assert await broker.cancel(cancelled[1].id, B) is not None
    assert await broker.delete(deleted[0].id, A)
    assert await broker.purge_tasks(A, [TaskState.WAITING]) >= 1
    await drain(broker, fail=frozenset({failed[1].id}))
    for queue in (A, B):
        await audit_queue(redis, rediq_namespace, queue)
    assert (await broker.get_task(failed[1].id, B)).state is TaskState.FAILED  # type: ignore[union-attr]
    assert await broker.delete_dead(B) == 1  # a dead letter stays until deleted (or its TTL)
    for flow in (ok, failed, cancelled, deleted, purged):
        for step in flow:
            assert await broker.get_task(step.id, step.queue) is None, step.id
    assert await leftovers(redis, rediq_namespace) == set()


async def test_a_lost_delivery_is_made_by_the_next_claim_once(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    first, second = steps(new_task_id(), {0: [1]}, {1: B})
    await broker.enqueue([second, first])
    await fetch(broker, queue=A)
    # the settlement's reply (with the outbox member) is lost: settle by script only
    session = await broker._ready()
    from rediq_redis.leasing import _settle_call  # the call settle() makes, without delivery
    from rediq_redis.scripts import run_batch

    keys = session.keys.queue(A)
    [reply] = await run_batch(session.client, [_settle_call(session, keys, W, [success(first)])])
    assert reply[0] == 1 and len(reply[1]) == 1  # answered, and one member written
    member = reply[1][0]
    assert await broker.get_task(second.id, B) is not None
    assert (await broker.get_task(second.id, B)).state is TaskState.WAITING  # type: ignore[union-attr]
    # an old member (its delivery lost long ago) is delivered by a claim of its queue
    await redis.zadd(keys.key("outbox"), {member: 0})
    await fetch(broker, queue=A, wait=False)
    assert (await broker.get_task(second.id, B)).state is TaskState.PENDING  # type: ignore[union-attr]
    assert await redis.zcard(keys.key("outbox")) == 0
    # delivered again (a member written twice): counted once, changes nothing
    await redis.zadd(keys.key("outbox"), {member: 0})
    await fetch(broker, queue=A, wait=False)
    [leased] = (await fetch(broker, queue=B)).deliveries
    assert leased.message.id == second.id
    assert await redis.zcard(keys.key("outbox")) == 0
