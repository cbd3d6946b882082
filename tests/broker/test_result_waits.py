"""Many result waits at once: a producer awaiting 10,000 results (one server, Sentinel,
Cluster) gets every one of them over a small, fixed number of connections, and its
waiters ride out a Sentinel failover and a cluster failover.

The producer's connections are counted on the servers (``CLIENT LIST``, by the client name
the producer's ``redis_config`` sets); the tasks run in a ``rediq worker`` subprocess
whose connections carry another name.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from rediq_redis.testing import RedisServer

from ..worker.conftest import Harness
from ..worker.test_failover import cluster, sentinel  # noqa: F401  (fixtures)

WAITERS = 10_000
#: Connections the producer may hold on one server however many waiters it has.
MAX_CONNECTIONS_PER_SERVER = 8
WAIT_S = 120.0

APP = """\
import json, os
from rediq import Rediq

app = Rediq(redis_url=os.environ["REDIQ_REDIS_URL"],
            namespace=os.environ["REDIQ_TEST_NAMESPACE"],
            redis_config={{"client_name": os.environ.get("REDIQ_TEST_CLIENT", "producer"),
                          **json.loads({config!r})}})

@app.task
async def double(x):
    return 2 * x
"""


async def _clients(servers: Sequence[RedisServer]) -> list[list[dict[str, Any]]]:
    """``CLIENT LIST`` of each server (empty for a server that is down)."""
    found = []
    for server in servers:
        admin = Redis(port=server.port)
        try:
            found.append(await admin.client_list())
        except OSError:
            found.append([])
        finally:
            await admin.aclose()
    return found


async def producer_connections(servers: Sequence[RedisServer]) -> list[int]:
    """The producer's connections on each server (by client name)."""
    return [
        sum(1 for c in clients if c.get("name") == "producer")
        for clients in await _clients(servers)
    ]


async def enqueue(m: Any, count: int) -> list[Any]:
    handles: list[Any] = []
    for start in range(0, count, 1000):
        calls = [m.double(i) for i in range(start, min(start + 1000, count))]
        handles += await m.app.enqueue_many(calls)
    return handles


async def gather_results(
    waits: Sequence[asyncio.Future[Any]], servers: Sequence[RedisServer]
) -> tuple[list[Any], int]:
    """Every waiter's result (failing with a summary of the errors, if any), and the
    most connections the producer held on one server meanwhile."""
    peak = 0
    pending = set(waits)
    while pending:
        peak = max(peak, *await producer_connections(servers))
        _, pending = await asyncio.wait(pending, timeout=0.2)  # sampling while they finish
    outcomes = await asyncio.gather(*waits, return_exceptions=True)
    errors = Counter(
        f"{type(o).__name__}: {str(o)[:120]}" for o in outcomes if isinstance(o, BaseException)
    )
    assert not errors, f"{sum(errors.values())} of {len(waits)} waits failed: {errors}"
    return list(outcomes), peak


async def many_waits(harness: Harness, servers: Sequence[RedisServer], count: int) -> None:
    m = harness.write_app(APP.format(config="{}"), header="")
    handles = await enqueue(m, count)
    waits = [asyncio.ensure_future(h.result(timeout=WAIT_S)) for h in handles]
    harness.start("--worker-task-concurrency", "50", env={"REDIQ_TEST_CLIENT": "worker"})
    results, peak = await gather_results(waits, servers)
    assert results == [2 * i for i in range(count)]
    print(f"\n[measure] {count} concurrent result() calls: producer connections <= {peak}/server")
    assert 0 < peak <= MAX_CONNECTIONS_PER_SERVER, peak


def _topology(request: pytest.FixtureRequest, name: str) -> tuple[str, list[RedisServer]]:
    """URL and servers (the masters) of a session-wide topology."""
    if name == "server":
        server = request.getfixturevalue("rediq_redis_server")
        return server.url(), [server]
    if name == "sentinel":
        topology = request.getfixturevalue("rediq_redis_sentinel")
        return topology.url(), [topology.master()]
    topology = request.getfixturevalue("rediq_redis_cluster")
    return topology.url(), topology.masters()


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("topology", "count"),
    [
        ("server", 2_000),  # the reported case: each wait took a connection of the pool
        pytest.param("server", WAITERS, marks=pytest.mark.slow),
        pytest.param("sentinel", WAITERS, marks=pytest.mark.slow),
        pytest.param("cluster", WAITERS, marks=pytest.mark.slow),
    ],
)
async def test_many_concurrent_waits(
    request: pytest.FixtureRequest, tmp_path: Path, rediq_namespace: str, topology: str, count: int
) -> None:
    url, servers = _topology(request, topology)
    harness = Harness(tmp_path, url, rediq_namespace)
    try:
        await many_waits(harness, servers, count)
    finally:
        await harness.close()


# --- failovers ------------------------------------------------------------------------

FAILOVER_WAITERS = 2_000
#: Every enqueue is confirmed by a replica, so the promoted one holds every task.
DURABLE = '{"wait_replicas": 1, "wait_timeout_ms": 5000}'


async def waits_through_failover(
    harness: Harness, servers: Sequence[RedisServer], fail_over: Any
) -> None:
    """Waiters of unfinished tasks wait while ``fail_over(server)`` (in a thread) kills
    the master holding their subscription and waits for the promotion; then a worker
    runs the tasks and every waiter gets its result."""
    m = harness.write_app(APP.format(config=DURABLE), header="")
    handles = await enqueue(m, FAILOVER_WAITERS)
    waits = [asyncio.ensure_future(h.result(timeout=WAIT_S)) for h in handles]
    # the listener is subscribed before the kill (the producer subscribes on the master)
    deadline = asyncio.get_running_loop().time() + 30
    while not (subscribed := await _subscribed_on(servers)):
        assert asyncio.get_running_loop().time() < deadline, "the waiters never subscribed"
        await asyncio.sleep(0.05)  # bounded wait for the listener
    [server] = subscribed
    await asyncio.to_thread(fail_over, server)
    harness.start("--worker-task-concurrency", "50", env={"REDIQ_TEST_CLIENT": "worker"})
    results, _ = await gather_results(waits, servers)
    assert results == [2 * i for i in range(FAILOVER_WAITERS)]


async def _subscribed_on(servers: Sequence[RedisServer]) -> list[RedisServer]:
    """The servers on which the producer holds a subscription."""
    return [
        server
        for server, clients in zip(servers, await _clients(servers), strict=True)
        if any(c.get("name") == "producer" and c.get("sub") != "0" for c in clients)
    ]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
async def test_waits_survive_a_failover(
    request: pytest.FixtureRequest, tmp_path: Path, rediq_namespace: str, kind: str
) -> None:
    """The master holding the waiters' subscription is SIGKILLed (on Sentinel it also
    serves their queue); a replica takes over; the killed server comes back as a
    replica."""
    topology = request.getfixturevalue(kind)  # a topology of its own (it is broken)
    servers = [topology.master()] if kind == "sentinel" else topology.masters()

    def fail_over(victim: RedisServer) -> None:
        victim.kill()  # SIGKILL
        if kind == "sentinel":
            topology.wait_failover(victim)
            victim.start()
            topology.wait_replica(victim)
        else:
            topology.wait_promoted(topology.replica_of(victim))
            victim.start()
            topology.wait_healthy()

    harness = Harness(tmp_path, topology.url(), rediq_namespace)
    try:
        await waits_through_failover(harness, servers, fail_over)
    finally:
        await harness.close()


# --- what wakes a waiter besides the announcement ---------------------------------------


async def _silent_end(redis: Redis, broker: Any, message: Any) -> None:
    """Wait until the broker listens for the end of ``message``'s task, then end the task
    the way a lost announcement would look: the outcome is stored, nothing is published."""
    keys, task_id = (await broker._ready()).keys.queue(message.queue), message.id
    channel = keys.done(task_id)
    deadline = asyncio.get_running_loop().time() + 10
    while (await redis.pubsub_numsub(channel))[0][1] == 0:
        assert asyncio.get_running_loop().time() < deadline, "the waiter never subscribed"
        await asyncio.sleep(0.02)  # bounded wait for the subscription
    await redis.hset(keys.result(task_id), mapping={"state": "succeeded", "result": "42"})
    await redis.hdel(keys.key("tasks"), task_id)


async def test_the_safety_net_finds_an_end_whose_announcement_was_lost(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    from rediq_core.broker import BrokerOptions
    from rediq_core.testing.broker_contract import make_message
    from rediq_redis import RedisBroker
    from rediq_redis.session import BrokerSettings

    options = BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace)
    broker = RedisBroker(options, BrokerSettings(wake_safety_cap_s=0.3))
    redis = Redis.from_url(rediq_redis_url)
    try:
        message = make_message()
        await broker.enqueue([message])
        waiter = asyncio.ensure_future(broker.wait_finished(message.id, message.queue, 20))
        await _silent_end(redis, broker, message)
        record = await waiter
        assert record is not None and record.result == b"42"
    finally:
        await redis.aclose()
        await broker.close()


async def test_a_reconnected_listener_looks_every_waiting_task_up_again(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    """The safety net is 30 s away: only the re-check after the listener's connection
    was killed (and re-established) can end these waits in time."""
    from rediq_core.broker import BrokerOptions
    from rediq_core.testing.broker_contract import make_message
    from rediq_redis import RedisBroker

    name = f"waiter-{rediq_namespace}"
    options = BrokerOptions(
        url=rediq_redis_url, namespace=rediq_namespace, config={"client_name": name}
    )
    broker = RedisBroker(options)
    redis = Redis.from_url(rediq_redis_url)
    try:
        messages = [make_message() for _ in range(3)]
        await broker.enqueue(messages)
        waiters = [asyncio.ensure_future(broker.wait_finished(m.id, m.queue, 20)) for m in messages]
        for message in messages:
            await _silent_end(redis, broker, message)
        [listener] = [c for c in await redis.client_list() if c["name"] == name and c["sub"] != "0"]
        await redis.client_kill_filter(_id=listener["id"])
        records = await asyncio.gather(*waiters)
        assert all(r is not None and r.result == b"42" for r in records)
    finally:
        await redis.aclose()
        await broker.close()
