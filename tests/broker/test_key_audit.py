"""With result TTL 0, nothing but the documented bounded metadata remains once tasks end:
the queue's counters, its tombstones (until two replay windows have passed) and the
holder of a worker whose lease deadline has not passed yet."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from rediq_core import defaults
from rediq_core.broker import BrokerOptions, CancelOutcome, Lease, TaskState, WorkerRecord
from rediq_core.message import now_ms
from rediq_core.records import Delivery, Settlement
from rediq_core.tasklogs import LogBounds, TaskLogLine, TrailUpdate, encode_line
from rediq_core.testing.broker_contract import failure, fetch, make_message, success
from rediq_redis import BrokerSettings, RedisBroker

from .audit import (
    audit_events,
    audit_queue,
    bounded_leftovers,
    namespace_keys,
    tombstones_expire,
)

Q = "audit"
W = "w"
W2 = "w2"


def allowed(namespace: str) -> set[str]:
    """The documented bounded metadata (docs/broker.md, "What remains")."""
    tag = f"{{{namespace}:{Q}}}"
    return {
        f"{tag}:seq",
        f"{tag}:stats",
        f"{tag}:wake",
        f"{tag}:minutes",
        f"{tag}:history",
        f"{tag}:paused",
        f"{{{namespace}}}:queues",
        f"{{{namespace}}}:protocol",
    }


REPLAY_MS = 500


@pytest.mark.parametrize("events", [0, 10])
async def test_every_ending_leaves_only_bounded_metadata(
    rediq_redis_url: str, redis: Redis, rediq_namespace: str, events: int
) -> None:
    """Every way a task can end, then: the queue holds no task record, and the only keys
    left are the bounded metadata -- plus the tombstones, until two replay windows
    (shortened here) have passed; with the event stream on, the stream (bounded), which
    ``forget_queue`` deletes. The worker's holder went with the last lease it settled."""
    options = BrokerOptions(
        url=rediq_redis_url, namespace=rediq_namespace, event_stream_length=events
    )
    broker = RedisBroker(options, BrokerSettings(replay_window_ms=REPLAY_MS))
    try:
        await _end_tasks_every_way(broker)
    finally:
        await broker.close()
    state = await audit_queue(redis, rediq_namespace, Q)
    assert not state.states
    tag = f"{{{rediq_namespace}:{Q}}}"
    kinds = await audit_events(redis, rediq_namespace, Q, events)
    assert not events or {"succeeded", "retried", "cancelled", "deleted"} <= set(kinds), kinds
    leftovers = await bounded_leftovers(redis, rediq_namespace, Q, REPLAY_MS)
    if events:
        leftovers.add(f"{tag}:events")
    assert f"{tag}:ended_a" in leftovers or f"{tag}:ended_b" in leftovers, leftovers
    assert not {f"{tag}:holders", f"{tag}:workers"} & leftovers  # no holder outlives its tasks
    keys = await namespace_keys(redis, rediq_namespace)
    assert keys - allowed(rediq_namespace) == leftovers, keys
    await tombstones_expire(redis, rediq_namespace, Q, REPLAY_MS)
    keys = await namespace_keys(redis, rediq_namespace) - allowed(rediq_namespace)
    assert keys == ({f"{tag}:events"} if events else set())
    assert await redis.llen(f"{tag}:wake") <= 1
    if events:
        forgetting = RedisBroker(options)
        try:
            assert await forgetting.forget_queue(Q)
        finally:
            await forgetting.close()
        assert not await redis.exists(f"{tag}:events"), "forget_queue left the event stream"


BOUNDS = LogBounds(max_lines=10, max_bytes=4096)


async def _report(broker: RedisBroker, worker: str, *deliveries: Delivery) -> None:
    """Each of the leases reports progress and a log line (a trail per task)."""
    line = encode_line(TaskLogLine(1, "INFO", "audit", "a line", 0))
    updates = [
        TrailUpdate(d.message.id, Q, d.deliveries, '[0.5, "half", 1]', (line,), 0)
        for d in deliveries
    ]
    assert await broker.report(worker, updates, BOUNDS) == [True] * len(updates)


def _reported(settlement: Settlement) -> Settlement:
    return Settlement(
        settlement.task_id,
        settlement.queue,
        settlement.result,
        settlement.error,
        settlement.retry_delay_ms,
        reported=True,
    )


async def _end_tasks_every_way(broker: RedisBroker) -> None:
    kw = {"queue": Q, "result_ttl_s": 0, "groups": ("g", "user:1")}
    ok, retried, expired, released = (make_message(**kw) for _ in range(4))
    cancelled, scheduled, running, deleted = (make_message(**kw) for _ in range(4))
    purged = [make_message(**kw), make_message(**kw, eta_ms=now_ms() + 60_000)]
    # a lease expires when its worker's holder does: W2 takes `expired` and goes silent
    await broker.enqueue([expired])
    [lease] = (await fetch(broker, queue=Q, worker_id=W2, limit=1)).deliveries
    await _report(broker, W2, lease)
    await broker.enqueue([ok, retried, released, running])
    await broker.enqueue(
        [cancelled, make_message(**kw, id=scheduled.id, eta_ms=now_ms() + 60_000), deleted]
    )
    await broker.heartbeat(WorkerRecord(id=W, name=W, queues=(Q,), heartbeat_age_s=0), 60)
    assert await broker.cancel(cancelled.id, Q) is CancelOutcome.CANCELLED
    assert await broker.cancel(scheduled.id, Q) is CancelOutcome.CANCELLED
    assert await broker.delete(deleted.id, Q)
    batch = await fetch(broker, queue=Q, worker_id=W)
    assert len(batch.deliveries) == 4
    await _report(broker, W, *batch.deliveries)
    await broker.release(W, {Q: [Lease(released.id, 1)]})
    assert await broker.cancel(running.id, Q) is CancelOutcome.REQUESTED
    await broker.settle(
        W, [_reported(s) for s in (success(ok), failure(retried, 0), failure(running))]
    )
    await broker.extend_leases(W2, {Q: [lease.lease]}, 50)
    seen: set[str] = set()
    for _ in range(3):  # released + retried, and expired once W2's holder has expired
        seen |= {d.message.id for d in (await fetch(broker, queue=Q, worker_id=W)).deliveries}
        if expired.id in seen:
            break
    assert seen == {released.id, retried.id, expired.id}
    # settled without saying so: their trails are of earlier leases
    await broker.settle(W, [success(m) for m in (released, retried, expired)])
    # a scheduled retry and a dead letter with trails, purged and deleted
    later, dead = make_message(**kw, max_retries=1), make_message(**kw)
    await broker.enqueue([later, dead])
    batch = await fetch(broker, queue=Q, worker_id=W)
    await _report(broker, W, *batch.deliveries)
    await broker.settle(W, [failure(later, 60_000), failure(dead)])
    assert await broker.delete_dead(Q, [dead.id]) == 1
    await broker.enqueue(purged)
    assert await broker.purge_tasks(Q, [TaskState.PENDING, TaskState.SCHEDULED]) == 3
    await broker.unregister_worker(W)


async def test_results_expire_and_done_channels_store_nothing(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    message = make_message(queue=Q, result_ttl_s=30)
    await broker.enqueue([message])
    await fetch(broker, queue=Q, worker_id=W)
    await broker.settle(W, [success(message)])
    keys = await namespace_keys(redis, rediq_namespace) - allowed(rediq_namespace)
    keys -= await bounded_leftovers(redis, rediq_namespace, Q, defaults.REPLAY_WINDOW_MS)
    assert keys == {f"{{{rediq_namespace}:{Q}}}:result:{message.id}"}, keys
    for key in keys:
        assert 0 < await redis.ttl(key) <= 30, key


async def test_trails_are_kept_with_results_and_expire_with_them(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    message = make_message(queue=Q, result_ttl_s=1)
    await broker.enqueue([message])
    [delivery] = (await fetch(broker, queue=Q, worker_id=W)).deliveries
    await _report(broker, W, delivery)
    tag = f"{{{rediq_namespace}:{Q}}}"
    trail, result = f"{tag}:trail:{message.id}", f"{tag}:result:{message.id}"
    assert await redis.pttl(trail) == -1, "a running task's trail has no TTL"
    await audit_queue(redis, rediq_namespace, Q)
    await broker.settle(W, [_reported(success(message))])
    assert 0 < await redis.pttl(trail) <= await redis.pttl(result) + 1000
    await audit_queue(redis, rediq_namespace, Q)
    kept = make_message(queue=Q, result_ttl_s=60)  # deleted after it ended: nothing stays
    await broker.enqueue([kept])
    [delivery] = (await fetch(broker, queue=Q, worker_id=W)).deliveries
    await _report(broker, W, delivery)
    await broker.settle(W, [_reported(success(kept))])
    assert await redis.exists(f"{tag}:trail:{kept.id}")
    assert await broker.delete(kept.id, Q)
    assert not await redis.exists(f"{tag}:trail:{kept.id}", f"{tag}:result:{kept.id}")
    deadline = asyncio.get_running_loop().time() + 5
    while await redis.exists(trail, result):
        assert asyncio.get_running_loop().time() < deadline, "trail or result did not expire"
        await asyncio.sleep(0.05)


async def test_dead_letters_are_bounded_by_count_and_age(
    rediq_redis_url: str, rediq_namespace: str, redis: Redis
) -> None:
    options = BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace)
    broker = RedisBroker(options, BrokerSettings(dead_letter_max=3))
    try:
        messages = [make_message(queue=Q, result_ttl_s=0) for _ in range(5)]
        await broker.enqueue(messages)
        await fetch(broker, queue=Q, worker_id=W)
        for message in messages:
            await broker.settle(W, [failure(message)])
        state = await audit_queue(redis, rediq_namespace, Q)  # pruned ones left no field
        assert len(state.dead) == 3 and state.dead <= {m.id for m in messages}
        assert messages[-1].id in state.dead
    finally:
        await broker.close()
    aged = RedisBroker(options, BrokerSettings(dead_letter_ttl_s=0))
    try:
        await asyncio.sleep(0.002)  # dead letters must be at least 1 ms old
        await aged.enqueue([make_message(queue=Q, result_ttl_s=0)])
        await fetch(aged, queue=Q, worker_id=W)  # the claim step prunes
        state = await audit_queue(redis, rediq_namespace, Q)
        assert state.dead == set() and len(state.states) == 1
    finally:
        await aged.close()
