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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from rediq_core.testing import RedisServer
from rediq_core.testing.topologies import ClusterTopology, SentinelTopology

from ..worker.conftest import Harness

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


async def producer_connections(servers: Sequence[RedisServer]) -> list[int]:
    """The producer's connections on each server (by client name)."""
    counts = []
    for server in servers:
        admin = Redis(port=server.port)
        try:
            clients = await admin.client_list()
        finally:
            await admin.aclose()
        counts.append(sum(1 for c in clients if c.get("name") == "producer"))
    return counts


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


@pytest.mark.timeout(300)
async def test_two_thousand_waits_on_one_server(
    tmp_path: Path, rediq_redis_server: RedisServer, rediq_namespace: str
) -> None:
    """The reported case: 2,000 waits with the default pool (each took a connection)."""
    harness = Harness(tmp_path, rediq_redis_server.url(), rediq_namespace)
    try:
        await many_waits(harness, [rediq_redis_server], 2_000)
    finally:
        await harness.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_ten_thousand_waits_on_one_server(
    tmp_path: Path, rediq_redis_server: RedisServer, rediq_namespace: str
) -> None:
    harness = Harness(tmp_path, rediq_redis_server.url(), rediq_namespace)
    try:
        await many_waits(harness, [rediq_redis_server], WAITERS)
    finally:
        await harness.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_ten_thousand_waits_through_sentinel(
    tmp_path: Path, rediq_redis_sentinel: SentinelTopology, rediq_namespace: str
) -> None:
    harness = Harness(tmp_path, rediq_redis_sentinel.url(), rediq_namespace)
    try:
        await many_waits(harness, [rediq_redis_sentinel.master()], WAITERS)
    finally:
        await harness.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_ten_thousand_waits_on_a_cluster(
    tmp_path: Path, rediq_redis_cluster: ClusterTopology, rediq_namespace: str
) -> None:
    harness = Harness(tmp_path, rediq_redis_cluster.url(), rediq_namespace)
    try:
        await many_waits(harness, rediq_redis_cluster.masters(), WAITERS)
    finally:
        await harness.close()


# --- failovers ------------------------------------------------------------------------

FAILOVER_WAITERS = 2_000
#: Every enqueue is confirmed by a replica, so the promoted one holds every task.
DURABLE = '{"wait_replicas": 1, "wait_timeout_ms": 5000}'


@pytest.fixture
def cluster() -> Iterator[ClusterTopology]:
    with ClusterTopology() as topology:
        yield topology


@pytest.fixture
def sentinel() -> Iterator[SentinelTopology]:
    with SentinelTopology() as topology:
        yield topology


async def waits_through_failover(
    harness: Harness, servers: Sequence[RedisServer], fail_over: Any
) -> None:
    """Waiters of unfinished tasks wait while ``fail_over()`` (in a thread) kills the
    master serving them and waits for the promotion; then a worker runs the tasks and
    every waiter gets its result."""
    m = harness.write_app(APP.format(config=DURABLE), header="")
    handles = await enqueue(m, FAILOVER_WAITERS)
    waits = [asyncio.ensure_future(h.result(timeout=WAIT_S)) for h in handles]
    # the listener is subscribed before the kill (the producer subscribes on the master)
    deadline = asyncio.get_running_loop().time() + 30
    while await _subscribers(servers) == 0:
        assert asyncio.get_running_loop().time() < deadline, "the waiters never subscribed"
        await asyncio.sleep(0.05)  # bounded wait for the listener
    await asyncio.to_thread(fail_over)
    harness.start("--worker-task-concurrency", "50", env={"REDIQ_TEST_CLIENT": "worker"})
    results, _ = await gather_results(waits, servers)
    assert results == [2 * i for i in range(FAILOVER_WAITERS)]


async def _subscribers(servers: Sequence[RedisServer]) -> int:
    found = 0
    for server in servers:
        admin = Redis(port=server.port)
        try:
            clients = await admin.client_list()
        except OSError:
            continue
        finally:
            await admin.aclose()
        found += sum(1 for c in clients if c.get("name") == "producer" and c.get("sub") != "0")
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_waits_survive_a_sentinel_failover(
    tmp_path: Path, sentinel: SentinelTopology, rediq_namespace: str
) -> None:
    victim = sentinel.master()

    def fail_over() -> None:
        victim.kill()  # SIGKILL
        sentinel.wait_failover(victim)
        victim.start()  # the sentinels turn it into a replica of the new master
        sentinel.wait_replica(victim)

    harness = Harness(tmp_path, sentinel.url(), rediq_namespace)
    try:
        await waits_through_failover(harness, [victim], fail_over)
    finally:
        await harness.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_waits_survive_a_cluster_failover(
    tmp_path: Path, cluster: ClusterTopology, rediq_namespace: str
) -> None:
    from redis.crc import key_slot

    victim = cluster.master_of_slot(key_slot(f"{{{rediq_namespace}:default}}".encode()))
    replica = cluster.replica_of(victim)

    def fail_over() -> None:
        victim.kill()  # SIGKILL
        cluster.wait_promoted(replica)
        victim.start()  # comes back as a replica of the new master
        cluster.wait_healthy()

    harness = Harness(tmp_path, cluster.url(), rediq_namespace)
    try:
        await waits_through_failover(harness, cluster.masters(), fail_over)
    finally:
        await harness.close()
