"""Bad data already in Redis is dead-lettered with its reason; nothing raises out of fetch."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from rediq_core.broker import Settlement, TaskError, TaskState
from rediq_core.testing.broker_contract import fetch, make_message
from rediq_redis import QueueKeys, RedisBroker

from .audit import audit_queue

Q = "bad"
W = "w"


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (lambda k, i: ("HSET", k.key("envelope"), i, b"{not json"), "malformed envelope"),
        (lambda k, i: ("HSET", k.key("envelope"), i, b"[1, 2]"), "not a JSON object"),
        (lambda k, i: ("HSET", k.key("envelope"), i, b'{"name": 1}'), "malformed envelope"),
        (lambda k, i: ("HDEL", k.key("envelope"), i), "envelope missing"),
        (lambda k, i: ("HDEL", k.key("payload"), i), "payload missing"),
    ],
    ids=["not-json", "not-object", "bad-fields", "no-envelope", "no-payload"],
)
async def test_corrupted_task_is_dead_lettered_with_its_reason(
    broker: RedisBroker, redis: Redis, rediq_namespace: str, corrupt: object, reason: str
) -> None:
    keys = QueueKeys(rediq_namespace, Q)
    bad, good = make_message(queue=Q, priority=0), make_message(queue=Q, priority=1)
    await broker.enqueue([bad, good])
    await redis.execute_command(*corrupt(keys, bad.id))  # type: ignore[operator]
    batch = await fetch(broker, queue=Q, worker_id=W)
    assert [d.message.id for d in batch.deliveries] == [good.id]
    [rejected] = batch.rejected
    assert rejected.task_id == bad.id and reason in rejected.reason
    [dead] = (await broker.list_tasks(Q, TaskState.FAILED)).tasks
    assert dead.id == bad.id and dead.state is TaskState.FAILED
    assert dead.error is not None and reason in dead.error.message
    await audit_queue(redis, rediq_namespace, Q, complete=False)


async def test_garbage_member_in_pending_is_rejected(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    keys = QueueKeys(rediq_namespace, Q)
    await redis.zadd(keys.key("pending"), {"garbage": 0})
    batch = await fetch(broker, queue=Q, worker_id=W)
    assert batch.deliveries == [] and len(batch.rejected) == 1
    assert "envelope missing" in batch.rejected[0].reason


async def test_worker_detected_bad_input_is_dead_lettered(broker: RedisBroker) -> None:
    """Unknown task names and undecodable payloads are found by the worker, which settles
    them as final failures; they reach the dead-letter set with the reason."""
    unknown = make_message(queue=Q, name="nobody.registered.this")
    undecodable = make_message(queue=Q, payload=b"\x80\x81 not json")
    await broker.enqueue([unknown, undecodable])
    await fetch(broker, queue=Q, worker_id=W)
    errors = {
        unknown.id: TaskError("UnknownTaskError", "no task 'nobody.registered.this'"),
        undecodable.id: TaskError("SerializationError", "payload does not decode as json"),
    }
    settled = await broker.settle(W, [Settlement(i, Q, error=e) for i, e in errors.items()])
    assert settled == [True, True]
    dead = (await broker.list_tasks(Q, TaskState.FAILED)).tasks
    assert {d.id: d.error for d in dead} == errors


async def test_wrong_key_type_on_a_queue_key_does_not_raise_out_of_fetch(
    broker: RedisBroker, redis: Redis, rediq_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    keys = QueueKeys(rediq_namespace, Q)
    await redis.set(keys.key("pending"), "not a zset")
    caplog.set_level(logging.ERROR, logger="rediq.broker.redis")
    fetching = asyncio.ensure_future(broker.fetch(Q, worker_id=W, limit=10, lease_ms=10_000))

    def logged() -> bool:
        return any("WRONGTYPE" in r.getMessage() for r in caplog.records)

    for _ in range(1000):  # bounded wait (10 s) until the fetch either logged or ended
        if logged() or fetching.done():
            break
        await asyncio.sleep(0.01)
    assert not fetching.done(), "fetch must log and back off, not raise"
    assert logged(), "the failed claim step was not logged"
    await redis.delete(keys.key("pending"))
    message = make_message(queue=Q)
    await broker.enqueue([message])
    batch = await asyncio.wait_for(fetching, 10)  # recovers after its back-off
    assert [d.message.id for d in batch.deliveries] == [message.id]
