"""Protocol 2: versioned data, and lease renewal whose cost does not grow with the leases.

A client refuses a namespace that holds data of another protocol version with a clear
error (before it reads or writes anything else there), and renewing the leases of a
worker is one step per queue whatever the number of leases.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from rediq import ProtocolMismatchError
from rediq_core.broker import BrokerOptions, Delivery, Settlement
from rediq_core.testing.contract.helpers import make_message
from rediq_redis import RedisBroker
from rediq_redis.keys import NamespaceKeys
from rediq_redis.layout import PROTOCOL
from rediq_redis.leasing import _claim_args, _handed

QUEUE = "contract"
WORKER = "worker-1"


async def _connect(url: str, namespace: str) -> RedisBroker:
    broker = RedisBroker(BrokerOptions(url=url, namespace=namespace))
    await broker.connect()
    return broker


async def test_a_new_namespace_is_marked_with_the_protocol(
    rediq_redis_url: str, rediq_namespace: str, redis: Redis
) -> None:
    broker = await _connect(rediq_redis_url, rediq_namespace)
    await broker.close()
    assert await redis.get(NamespaceKeys(rediq_namespace).protocol) == str(PROTOCOL).encode()


async def test_data_of_another_protocol_is_refused_with_what_to_do(
    rediq_redis_url: str, rediq_namespace: str, redis: Redis
) -> None:
    await redis.set(NamespaceKeys(rediq_namespace).protocol, PROTOCOL + 1)
    broker = RedisBroker(BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace))
    with pytest.raises(ProtocolMismatchError) as refused:
        await broker.enqueue([make_message(QUEUE)])
    message = str(refused.value)
    assert f"protocol {PROTOCOL + 1}" in message and f"speaks protocol {PROTOCOL}" in message
    assert "another namespace" in message
    await broker.close()
    mine = [k async for k in redis.scan_iter(match=f"*{{{rediq_namespace}[:}}]*")]
    assert mine == [NamespaceKeys(rediq_namespace).protocol.encode()]


async def test_protocol_1_queues_are_refused(
    rediq_redis_url: str, rediq_namespace: str, redis: Redis
) -> None:
    keys = NamespaceKeys(rediq_namespace)
    await redis.sadd(keys.queues, "orders")
    await redis.hset(keys.queue("orders").key("state"), "task-1", "pending")
    broker = RedisBroker(BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace))
    with pytest.raises(ProtocolMismatchError, match="protocol 1 .queue 'orders' holds tasks"):
        await broker.connect()
    await broker.close()
    assert await redis.exists(keys.protocol) == 0


async def _commands_run(redis: Redis) -> int:
    """Commands the server ran since the last reset, scripts' own calls included (the
    script calls themselves and their loading not counted)."""
    stats = await redis.info("commandstats")
    return sum(
        int(v["calls"])
        for name, v in stats.items()
        if name
        not in (
            "cmdstat_evalsha",
            "cmdstat_script|load",
            "cmdstat_config|resetstat",
            "cmdstat_info",
        )
    )


@pytest.mark.parametrize("held", [1, 400])
async def test_renewing_leases_costs_the_same_for_one_or_many(
    broker: RedisBroker, redis: Redis, held: int
) -> None:
    await broker.enqueue([make_message(QUEUE) for _ in range(held)])
    batch = await broker.fetch(QUEUE, worker_id=WORKER, limit=held, lease_ms=5_000)
    leases = [d.lease for d in batch.deliveries]
    assert len(leases) == held and all(lease.token for lease in leases)
    await redis.config_resetstat()
    assert await broker.extend_leases(WORKER, {QUEUE: leases}, 5_000) == set()
    # HGET workers, ZSCORE holders, ZADD holders, SCARD cancel, TIME: 5 whatever `held` is
    assert await _commands_run(redis) == 5, await redis.info("commandstats")


async def test_a_task_handed_to_a_worker_that_died_waiting_is_not_a_lost_delivery(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """A worker registered as waiting and died before taking the task an enqueue handed
    it: once its holder expired, the task is ready again with its delivery undone (not
    counted as delivered, nor as a lost lease), and the dead worker's list is gone."""
    keys = NamespaceKeys(rediq_namespace).queue(QUEUE)
    session = await broker._ready()
    await session.scripts.wait(
        session.client, [*keys.all, keys.unblock("dead-worker")], ["dead-worker", 5_000, 30_000]
    )
    message = make_message(QUEUE)
    await broker.enqueue([message])
    assert await redis.llen(keys.unblock("dead-worker")) == 1  # handed over, never taken
    holder = await redis.hget(keys.key("workers"), "dead-worker")
    await redis.zadd(keys.key("holders"), {holder: 1}, xx=True)  # it died: its holder expires
    batch = await broker.fetch(QUEUE, worker_id=WORKER, limit=1, lease_ms=5_000)
    [delivery] = batch.deliveries
    assert (delivery.message.id, delivery.deliveries, delivery.lost) == (message.id, 1, 0)
    assert await redis.exists(keys.unblock("dead-worker")) == 0
    assert await redis.hget(keys.key("workers"), "dead-worker") is None


async def test_a_worker_that_took_a_handed_task_is_handed_the_next_one_too(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """At low load every task is handed to the waiting worker: after taking one, the
    worker's next wait registers it again (it must not wait unregistered until a wake
    token and a claim, the slow path, for every other task)."""
    keys = NamespaceKeys(rediq_namespace).queue(QUEUE)
    for round_ in range(3):
        fetching = asyncio.ensure_future(
            broker.fetch(QUEUE, worker_id=WORKER, limit=10, lease_ms=60_000)
        )
        deadline = time.monotonic() + 10.0
        while WORKER.encode() not in await redis.lrange(keys.key("idle"), 0, -1):
            assert not fetching.done(), f"round {round_}: the fetch ended without a task"
            assert time.monotonic() < deadline, (
                f"round {round_}: the worker did not register as waiting within 10 s"
            )
            await asyncio.sleep(0.01)
        message = make_message(QUEUE)
        await broker.enqueue([message])
        batch = await asyncio.wait_for(fetching, 10.0)
        assert [d.message.id for d in batch.deliveries] == [message.id]
        await broker.settle(
            WORKER,
            [Settlement(message.id, QUEUE, result=b"1", delivery=batch.deliveries[0].deliveries)],
        )


@pytest.mark.parametrize("end", ["settle", "release"])
async def test_a_holder_goes_with_the_last_lease_its_worker_ends(
    broker: RedisBroker, redis: Redis, rediq_namespace: str, end: str
) -> None:
    """Once a worker settled (or released) its last lease, its holder is gone: its
    deadline is not one every waiting worker wakes at (and claims) with nothing to
    reclaim. The worker stays registered as waiting; the next task is handed to it under a
    new holder, which renews."""
    keys = NamespaceKeys(rediq_namespace).queue(QUEUE)
    session = await broker._ready()

    async def next_delay_ms() -> int:
        """What a claim (of nothing) tells another, idle worker to wait for."""
        claim_keys, args = _claim_args(session, keys, "idle-worker", 0, 5_000)
        return int((await session.scripts.claim(session.client, claim_keys, args))[1])

    await broker.enqueue([make_message(QUEUE)])
    fetched = await broker.fetch(QUEUE, worker_id=WORKER, limit=1, lease_ms=60_000)
    [delivery] = fetched.deliveries
    assert 50_000 < await next_delay_ms() <= 60_000  # the worker's live holder
    await session.scripts.wait(  # its fetcher waits for more while the task runs
        session.client, [*keys.all, keys.unblock(WORKER)], [WORKER, 60_000, 30_000]
    )
    if end == "settle":
        done = Settlement(delivery.message.id, QUEUE, result=b"1", delivery=delivery.deliveries)
        assert await broker.settle(WORKER, [done]) == [True]
    else:
        assert await broker.release(WORKER, {QUEUE: [delivery.lease]}) == 1
    assert await redis.zcard(keys.key("holders")) == 0
    assert await next_delay_ms() == -1
    assert await redis.lrange(keys.key("idle"), 0, -1) == [WORKER.encode()]
    await broker.enqueue([make_message(QUEUE)])
    handed = _handed((await redis.lrange(keys.unblock(WORKER), 0, -1))[0])
    assert isinstance(handed, Delivery)
    assert handed.lease.token not in (delivery.lease.token, "")
    assert await broker.extend_leases(WORKER, {QUEUE: [handed.lease]}, 5_000) == set()


async def test_a_due_time_wakes_one_waiting_worker(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """Of the workers about to wait, one keeps time for the queue's next deadline (here a
    scheduled task's due time): the others are told to wait for a hand-off or a wake
    token, so the due time wakes one worker, not all. Whoever claims next takes the role
    from a keeper that sleeps past an earlier deadline, or that missed its own by the
    grace (it died)."""
    keys = NamespaceKeys(rediq_namespace).queue(QUEUE)
    session = await broker._ready()

    async def wake_delay_ms(worker: str) -> int:
        """What a claim that leases nothing tells ``worker`` to wait for."""
        claim_keys, args = _claim_args(session, keys, worker, 1, 5_000)
        return int((await session.scripts.claim(session.client, claim_keys, args))[1])

    await broker.enqueue([make_message(QUEUE, delay_ms=60_000)])
    assert 50_000 < await wake_delay_ms("w1") <= 60_000
    assert [await wake_delay_ms(w) for w in ("w2", "w3", "w4")] == [-1, -1, -1]
    assert 50_000 < await wake_delay_ms("w1") <= 60_000  # the keeper keeps the role

    await broker.enqueue([make_message(QUEUE, delay_ms=20_000)])
    assert 10_000 < await wake_delay_ms("w2") <= 20_000  # w1 would sleep past it
    assert await wake_delay_ms("w1") == -1

    seconds, micros = await redis.time()
    long_ago = int(seconds) * 1000 + int(micros) // 1000 - 5_000
    await redis.hset(keys.key("workers"), "!", f"w2|{long_ago}")  # w2 missed it: dead
    assert 10_000 < await wake_delay_ms("w3") <= 20_000
    assert await wake_delay_ms("w2") == -1
