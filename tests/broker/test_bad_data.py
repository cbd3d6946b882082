"""Bad data already in Redis is dead-lettered with its reason; nothing raises out of fetch."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from rediq_core.broker import Settlement, TaskError, TaskState
from rediq_core.testing.broker_contract import fetch, make_message
from rediq_redis import QueueKeys, RedisBroker
from rediq_redis.layout import RECORD_FIELDS, parse_record

from .audit import audit_queue

Q = "bad"
W = "w"


async def _rewrite(
    redis: Redis, keys: QueueKeys, task_id: str, envelope: bytes, length: int
) -> None:
    """Store ``task_id``'s record again with ``envelope`` in place of its envelope and
    ``length`` as its envelope length (header and payload kept)."""
    record = parse_record(await redis.hget(keys.key("tasks"), task_id))
    assert record is not None
    header = [record.fields[name] for name in RECORD_FIELDS[:-1]]
    raw = "|".join([*header, str(length)]).encode() + b"|" + envelope + record.payload
    await redis.hset(keys.key("tasks"), task_id, raw)


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (lambda e: b"{not json", "malformed envelope"),
        (lambda e: b"[1, 2]", "not a JSON object"),
        (lambda e: b'{"name": 1}', "malformed envelope"),
    ],
    ids=["not-json", "not-object", "bad-fields"],
)
async def test_corrupted_task_is_dead_lettered_with_its_reason(
    broker: RedisBroker, redis: Redis, rediq_namespace: str, envelope: object, reason: str
) -> None:
    """A record whose envelope is not a message: the claim hands the body over as it is,
    the broker's decoding rejects it and dead-letters it with the reason."""
    keys = QueueKeys(rediq_namespace, Q)
    bad, good = make_message(queue=Q, priority=0), make_message(queue=Q, priority=1)
    await broker.enqueue([bad, good])
    record = parse_record(await redis.hget(keys.key("tasks"), bad.id))
    assert record is not None
    corrupt = envelope(record.envelope)  # type: ignore[operator]
    await _rewrite(redis, keys, bad.id, corrupt, len(corrupt))
    batch = await fetch(broker, queue=Q, worker_id=W)
    assert [d.message.id for d in batch.deliveries] == [good.id]
    [rejected] = batch.rejected
    assert rejected.task_id == bad.id and reason in rejected.reason
    [dead] = (await broker.list_tasks(Q, TaskState.FAILED)).tasks
    assert dead.id == bad.id and dead.state is TaskState.FAILED
    assert dead.error is not None and reason in dead.error.message
    await audit_queue(redis, rediq_namespace, Q, complete=False)


@pytest.mark.parametrize(
    "length", [lambda n: n + 5, lambda n: n - 1], ids=["length-past-envelope", "length-short"]
)
async def test_a_wrong_envelope_length_is_dead_lettered(
    broker: RedisBroker, redis: Redis, rediq_namespace: str, length: object
) -> None:
    """The envelope length cuts envelope and payload apart: a wrong one leaves an
    envelope that is not a message (never a message with another payload)."""
    keys = QueueKeys(rediq_namespace, Q)
    bad, good = make_message(queue=Q, priority=0), make_message(queue=Q, priority=1)
    await broker.enqueue([bad, good])
    record = parse_record(await redis.hget(keys.key("tasks"), bad.id))
    assert record is not None
    await _rewrite(redis, keys, bad.id, record.envelope, length(len(record.envelope)))  # type: ignore[operator]
    batch = await fetch(broker, queue=Q, worker_id=W)
    assert [d.message.id for d in batch.deliveries] == [good.id]
    assert [r.task_id for r in batch.rejected] == [bad.id]
    assert "malformed envelope" in batch.rejected[0].reason
    [dead] = (await broker.list_tasks(Q, TaskState.FAILED)).tasks
    assert dead.id == bad.id and dead.error is not None
    await audit_queue(redis, rediq_namespace, Q, complete=False)


async def test_an_unreadable_record_is_dead_lettered_as_it_is(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """A record the scripts cannot read goes to the dead-letter set with its reason, its
    raw value kept as its body; the ready tasks behind it are delivered."""
    keys = QueueKeys(rediq_namespace, Q)
    bad, good = make_message(queue=Q, priority=0), make_message(queue=Q, priority=1)
    await broker.enqueue([bad, good])
    await redis.hset(keys.key("tasks"), bad.id, b"garbage")
    batch = await fetch(broker, queue=Q, worker_id=W)
    assert [d.message.id for d in batch.deliveries] == [good.id]
    assert [r.task_id for r in batch.rejected] == [bad.id]
    assert "unreadable" in batch.rejected[0].reason
    [dead] = (await broker.list_tasks(Q, TaskState.FAILED)).tasks
    assert dead.id == bad.id and dead.error is not None and "unreadable" in dead.error.message
    state = await audit_queue(redis, rediq_namespace, Q, complete=False)
    assert state.records[bad.id].payload == b"garbage"


async def test_a_record_with_a_non_numeric_header_is_dead_lettered(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """A header field that is not a number makes the record unreadable (the parser checks
    every field): it is dead-lettered as it is, and the good task of the same claim is
    delivered (the claim never fails half-way after its ZPOPMIN)."""
    keys = QueueKeys(rediq_namespace, Q)
    bad, good = make_message(queue=Q, priority=0), make_message(queue=Q, priority=1)
    await broker.enqueue([bad, good])
    await redis.hset(keys.key("tasks"), bad.id, b"pending|0|x|y|z|0||||0|n|2|{}")
    batch = await fetch(broker, queue=Q, worker_id=W, wait=False)
    assert [d.message.id for d in batch.deliveries] == [good.id]
    assert [r.task_id for r in batch.rejected] == [bad.id]
    await audit_queue(redis, rediq_namespace, Q, complete=False)


async def test_garbage_member_in_pending_is_dropped(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """A pending member without a record has nothing to deliver or dead-letter: the
    claim drops it (and says why), and fetch does not raise."""
    keys = QueueKeys(rediq_namespace, Q)
    await redis.zadd(keys.key("pending"), {"garbage": 0})
    batch = await fetch(broker, queue=Q, worker_id=W, wait=False)
    assert batch.deliveries == []
    assert all("no record" in r.reason for r in batch.rejected), batch.rejected
    assert await redis.zcard(keys.key("pending")) == 0
    assert (await broker.list_tasks(Q, TaskState.FAILED)).tasks == []
    await audit_queue(redis, rediq_namespace, Q)


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
