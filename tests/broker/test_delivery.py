"""Delivery correctness at the protocol level: clocks, lost replies, cancelled fetches,
duplicates and the connections a timed wait costs. Faults come from a loopback TCP proxy
(tests/tcp_proxy.py) between the broker and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from rediq import Rediq, TaskState
from rediq_core.broker import BrokerOptions, Settlement
from rediq_core.testing.broker_contract import make_message
from rediq_redis import RedisBroker
from rediq_redis.testing import RedisServer

from ..tcp_proxy import Rule, TcpProxy
from .records import record_state, set_record_fields

Q = "delivery"
WAIT_S = 5.0


async def server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds * 1000 + micros // 1000)


async def until(check: Callable[[], object], what: str, timeout_s: float = WAIT_S) -> None:
    """Wait (bounded) until ``await check()`` is truthy."""
    deadline = time.monotonic() + timeout_s
    while not await check():  # type: ignore[misc]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def proxied(proxy: TcpProxy, rediq_namespace: str) -> AsyncIterator[RedisBroker]:
    """A broker whose every connection goes through the proxy (same namespace as
    ``broker``, which talks to the server directly)."""
    broker = RedisBroker(BrokerOptions(url=proxy.url(), namespace=rediq_namespace))
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def warm_up(broker: RedisBroker, direct: RedisBroker) -> None:
    """Load every script through ``broker`` once, so that a rule never meets NOSCRIPT."""
    [first, second] = [make_message(queue=Q, result_ttl_s=0) for _ in range(2)]
    await broker.enqueue([first, second])
    batch = await asyncio.wait_for(
        broker.fetch(Q, worker_id="warm", limit=2, lease_ms=5000), WAIT_S
    )
    ids = [d.message.id for d in batch.deliveries]
    assert sorted(ids) == sorted([first.id, second.id])
    await broker.settle("warm", [Settlement(ids[0], Q, result=b"")])
    await broker.settle("warm", [Settlement(ids[1], Q, error=None, result=b"")])
    await direct.connect()
    # and the wait's registration (a fetch's first wait loads its script)
    waiting = asyncio.ensure_future(broker.fetch(Q, worker_id="warm", limit=2, lease_ms=5000))
    idle = f"{{{broker.options.namespace}:{Q}}}:idle"
    await until(
        lambda: _has(direct, idle, b"warm"), "the warm-up fetch to wait registered", timeout_s=20.0
    )
    third = make_message(queue=Q, result_ttl_s=0)
    await direct.enqueue([third])
    [handed] = (await asyncio.wait_for(waiting, WAIT_S)).deliveries
    await broker.settle("warm", [Settlement(third.id, Q, result=b"", delivery=handed.deliveries)])


async def _has(broker: RedisBroker, key: str, member: bytes) -> bool:
    session = await broker._ready()
    return member in await session.client.lrange(key, 0, -1)


# --- defect 2: time is the server's ----------------------------------------------------


@pytest.mark.parametrize("skew_s", [-60, 60])
async def test_delay_is_counted_on_the_server_clock(
    rediq_redis_url: str,
    rediq_namespace: str,
    redis: Redis,
    skew_s: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A producer whose clock is a minute off still delays a task by what it asked."""
    app = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)

    @app.task(task_queue=Q)
    async def later() -> None: ...

    real_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() + skew_s * 1_000_000_000)
    monkeypatch.setattr(time, "time", lambda: real_ns() / 1e9 + skew_s)
    try:
        before = await server_ms(redis)
        handle = await later().options(delay=0.5).enqueue()
        after = await server_ms(redis)
        assert await handle.state() is TaskState.SCHEDULED
        due = await redis.zscore(f"{{{rediq_namespace}:{Q}}}:scheduled", handle.id)
        assert due is not None
        # 500 ms after the server stored it, on the server's clock
        assert before + 500 <= due <= after + 500, (before, due, after)
    finally:
        await app.close()


# --- defect 3: a lost reply and the client's re-send --------------------------------------


async def test_resent_enqueue_of_a_finished_task_does_not_run_it_again(
    proxy: TcpProxy, proxied: RedisBroker, broker: RedisBroker
) -> None:
    """The enqueue ran, its reply was lost, a worker finished the task meanwhile, and the
    client re-sent the enqueue: the task must not be created (and run) a second time."""
    await warm_up(proxied, broker)
    runs: list[str] = []

    async def worker_finishes_it() -> None:
        batch = await asyncio.wait_for(
            broker.fetch(Q, worker_id="w", limit=1, lease_ms=5000), WAIT_S
        )
        for delivery in batch.deliveries:
            runs.append(delivery.message.id)
            [held] = await broker.settle("w", [Settlement(delivery.message.id, Q, result=b"ok")])
            assert held

    proxy.add(Rule(b"order-42", "drop", hook=worker_finishes_it))
    [outcome] = await proxied.enqueue([make_message(queue=Q, id="order-42", result_ttl_s=60)])
    assert outcome.accepted
    assert runs == ["order-42"]
    record = await broker.get_task("order-42", Q)
    assert record is not None and record.state is TaskState.SUCCEEDED, record
    stats = await broker.queue_stats(Q)
    assert (stats.pending, stats.scheduled, stats.active) == (0, 0, 0), stats


async def test_resent_settlement_is_acknowledged(
    proxy: TcpProxy, proxied: RedisBroker, broker: RedisBroker
) -> None:
    """A settlement whose reply was lost is re-sent: the worker learns that it was stored
    (so after_task_success still fires), not that the lease was lost."""
    await warm_up(proxied, broker)
    message = make_message(queue=Q, result_ttl_s=60)
    await broker.enqueue([message])
    batch = await asyncio.wait_for(proxied.fetch(Q, worker_id="w", limit=1, lease_ms=5000), WAIT_S)
    assert [d.message.id for d in batch.deliveries] == [message.id]
    proxy.add(Rule(message.id.encode(), "drop"))
    assert await proxied.settle("w", [Settlement(message.id, Q, result=b"ok")]) == [True]
    record = await broker.get_task(message.id, Q)
    assert record is not None and record.state is TaskState.SUCCEEDED


# --- defect 5: cancelling a fetch, and a failing finishing step ----------------------------


async def cancel_after_claim(
    fetching: asyncio.Future[Any],
    hold: Rule,
    redis: Redis,
    prefix: str,
    task_id: str,
    claimed: str,
) -> None:
    """Once the held claim has leased ``task_id`` on the server (``claimed``: what that
    means in the test), cancel the fetch, let the reply through, and check that the task
    is pending again long before its 60 s lease could expire."""

    async def state_is(state: bytes) -> bool:
        return await record_state(redis, prefix, task_id) == state

    await until(lambda: state_is(b"active"), claimed)
    fetching.cancel()
    hold.release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(fetching, WAIT_S)
    await until(lambda: state_is(b"pending"), "the leased task was handed back", timeout_s=20.0)


async def test_cancelled_fetch_hands_back_a_claim_in_flight(
    proxy: TcpProxy,
    proxied: RedisBroker,
    broker: RedisBroker,
    redis: Redis,
    rediq_namespace: str,
) -> None:
    """The claim ran on the server, its reply is in flight, and the fetch is cancelled
    (worker shutdown): the leased task must be pending again at once."""
    await warm_up(proxied, broker)
    message = make_message(queue=Q, result_ttl_s=60)
    await broker.enqueue([message])
    prefix = f"{{{rediq_namespace}:{Q}}}"
    hold = proxy.add(Rule(b"holding-worker", "hold"))
    fetching = asyncio.ensure_future(
        proxied.fetch(Q, worker_id="holding-worker", limit=1, lease_ms=60_000)
    )
    await asyncio.wait_for(hold.matched.wait(), WAIT_S)
    await cancel_after_claim(
        fetching, hold, redis, prefix, message.id, "the claim ran on the server"
    )


async def test_cancelled_fetch_hands_back_a_claim_that_followed_its_wait(
    proxy: TcpProxy,
    proxied: RedisBroker,
    broker: RedisBroker,
    redis: Redis,
    rediq_namespace: str,
) -> None:
    """An idle fetch registers as waiting and blocks: a task arrives and is handed to it
    (leased on the server), the wait's reply is in flight, and the fetch is cancelled
    (worker shutdown). The leased task must be pending again at once, and no unblock key
    (nor registration) is left behind."""
    await warm_up(proxied, broker)
    prefix = f"{{{rediq_namespace}:{Q}}}"
    await redis.delete(f"{prefix}:wake")  # a token left by the warm-up would end the wait
    hold = proxy.add(Rule(b"BLPOP", "hold"))
    fetching = asyncio.ensure_future(
        proxied.fetch(Q, worker_id="waiting-worker", limit=1, lease_ms=60_000)
    )
    await asyncio.wait_for(hold.matched.wait(), WAIT_S)  # blocked in its wait
    message = make_message(queue=Q, result_ttl_s=60)
    await broker.enqueue([message])

    await cancel_after_claim(
        fetching, hold, redis, prefix, message.id, "the task was handed to the waiting fetch"
    )
    assert await redis.keys(f"{prefix}:unblock:*") == []
    assert await redis.lrange(f"{prefix}:idle", 0, -1) == []


async def test_cancelled_idle_fetch_ends_its_wait_at_once(
    broker: RedisBroker,
    redis: Redis,
    rediq_namespace: str,
) -> None:
    """Cancelling a fetch blocked in its (30 s) wait returns well before the wait would
    end, leases nothing and leaves no key behind; the next fetch gets the next task."""
    fetching = asyncio.ensure_future(
        broker.fetch(Q, worker_id="idle-worker", limit=1, lease_ms=60_000)
    )

    async def blocked() -> bool:
        return any(c.get("cmd") == "blpop" for c in await redis.client_list())

    await until(blocked, "the fetch to block in its wait", timeout_s=20.0)
    fetching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(fetching, 20)  # the wait alone would take 30 s
    assert await redis.keys(f"{{{rediq_namespace}:{Q}}}:unblock:*") == []
    message = make_message(queue=Q)
    await broker.enqueue([message])
    batch = await asyncio.wait_for(
        broker.fetch(Q, worker_id="idle-worker", limit=1, lease_ms=60_000), WAIT_S
    )
    assert [d.message.id for d in batch.deliveries] == [message.id]


async def test_fetch_keeps_its_deliveries_when_a_finishing_step_fails(
    proxy: TcpProxy,
    proxied: RedisBroker,
    broker: RedisBroker,
    redis: Redis,
    rediq_namespace: str,
) -> None:
    """An expired lease that must be dead-lettered (a separate script) cannot be finished
    because the connection keeps failing: the tasks leased in the same claim are still
    delivered, and the expired one stays for a later claim."""
    await warm_up(proxied, broker)
    doomed, good = make_message(queue=Q, id="doomed-task"), make_message(queue=Q)
    await broker.enqueue([doomed])
    await asyncio.wait_for(broker.fetch(Q, worker_id="gone", limit=1, lease_ms=60_000), WAIT_S)
    prefix = f"{{{rediq_namespace}:{Q}}}"
    # Its worker died holding it for the last allowed time: the next claim finishes it.
    await set_record_fields(redis, prefix, doomed.id, deliveries=5, lost=4)
    holder = await redis.hget(f"{prefix}:workers", "gone")
    await redis.zadd(f"{prefix}:holders", {holder: 1}, xx=True)
    await broker.enqueue([good])
    proxy.add(Rule(b"doomed-task", "refuse", times=1000))
    batch = await asyncio.wait_for(proxied.fetch(Q, worker_id="w", limit=1, lease_ms=60_000), 15)
    assert [d.message.id for d in batch.deliveries] == [good.id]
    assert await record_state(redis, prefix, doomed.id) == b"active"  # finished later


# --- smaller ones ---------------------------------------------------------------------------


async def test_a_duplicates_handle_follows_the_existing_tasks_result_ttl(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    app = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)

    @app.task(task_queue=Q)
    async def job() -> None: ...

    try:
        first = await job().options(task_id="dup-1", result_ttl=60).enqueue()
        again = await job().options(task_id="dup-1", result_ttl=0).enqueue()
        assert (first.accepted, again.accepted) == (True, False)
        assert again.result_ttl_s == 60  # awaiting it waits for the existing task's result
    finally:
        await app.close()


async def test_timed_waits_keep_their_connection(
    rediq_redis_server_factory: Callable[..., RedisServer], rediq_namespace: str
) -> None:
    """20 delayed tasks, each woken by its deadline: the fetch never cancels its blocking
    command, so it keeps one connection (no reconnect per timed wait)."""
    server = rediq_redis_server_factory()
    broker = RedisBroker(BrokerOptions(url=server.url(), namespace=rediq_namespace))
    redis = Redis.from_url(server.url())
    try:
        await broker.connect()
        now = await server_ms(redis)
        messages = [
            make_message(queue=Q, result_ttl_s=0, eta_ms=now + 150 + 30 * i) for i in range(20)
        ]
        await broker.enqueue(messages)
        before = int((await redis.info("stats"))["total_connections_received"])
        done = 0
        while done < 20:
            batch = await asyncio.wait_for(
                broker.fetch(Q, worker_id="w", limit=1, lease_ms=5000), WAIT_S
            )
            await broker.settle(
                "w", [Settlement(d.message.id, Q, result=b"") for d in batch.deliveries]
            )
            done += len(batch.deliveries)
        opened = int((await redis.info("stats"))["total_connections_received"]) - before
        assert opened <= 1, f"{opened} connections opened for 20 timed waits"
    finally:
        await broker.close()
        await redis.aclose()


async def test_resent_claim_leases_nothing_more(
    proxy: TcpProxy,
    proxied: RedisBroker,
    broker: RedisBroker,
    redis: Redis,
    rediq_namespace: str,
) -> None:
    """A claim whose reply was lost is re-sent: it answers with the leases it made, and
    leases no further task (which would sit orphaned until its lease expired)."""
    await warm_up(proxied, broker)
    messages = [make_message(queue=Q) for _ in range(4)]
    await broker.enqueue(messages)
    proxy.add(Rule(b"resending-worker", "drop"))
    batch = await asyncio.wait_for(
        proxied.fetch(Q, worker_id="resending-worker", limit=2, lease_ms=60_000), WAIT_S
    )
    assert [d.message.id for d in batch.deliveries] == [m.id for m in messages[:2]]
    active = await redis.zrange(f"{{{rediq_namespace}:{Q}}}:active", 0, -1)
    assert sorted(a.decode() for a in active) == sorted(m.id for m in messages[:2])
    assert [d.deliveries for d in batch.deliveries] == [1, 1]


async def test_resent_group_cancel_and_delete_answer_their_first_answer(
    proxy: TcpProxy, proxied: RedisBroker, broker: RedisBroker
) -> None:
    """Group cancel and group delete are re-sent after a lost reply like every other
    state-changing call: the re-send answers what the first send did (cancelled; one
    deleted), not what a second run would find (finished; nothing left)."""
    await warm_up(proxied, broker)
    cancel_me = make_message(queue=Q, groups=("lost-cancel",), result_ttl_s=60)
    delete_me = make_message(queue=Q, groups=("lost-delete",), result_ttl_s=60)
    throwaway = make_message(queue=Q)
    await broker.enqueue([cancel_me, delete_me, throwaway])
    await broker.cancel(throwaway.id, Q)  # loads both scripts: no rule meets NOSCRIPT
    await broker.delete(throwaway.id, Q)

    def ran(task_id: str, state: TaskState | None) -> Callable[[], Awaitable[None]]:
        async def on_server() -> None:  # the reply is lost only once the call ran
            async def reached() -> bool:
                record = await broker.get_task(task_id, Q)
                return (record.state if record else None) is state

            await until(reached, f"{task_id} {state} on the server")

        return on_server

    cancelled = Rule(
        b"result:" + cancel_me.id.encode(), hook=ran(cancel_me.id, TaskState.CANCELLED)
    )
    proxy.add(cancelled)
    outcomes = await proxied.cancel_group("lost-cancel", Q)
    assert {i: o.value for i, o in outcomes.items()} == {cancel_me.id: "cancelled"}
    deleted = Rule(b"result:" + delete_me.id.encode(), hook=ran(delete_me.id, None))
    proxy.add(deleted)
    assert await proxied.delete_group("lost-delete", Q) == 1
    assert (cancelled.hits, deleted.hits) == (1, 1), "a reply was not lost"
