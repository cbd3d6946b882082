"""Outages: network faults between a worker and Redis (a loopback TCP proxy of the tests'
own), Redis down when a worker starts, producers during a cut, Redis out of memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from rediq import BrokerOutOfMemoryError, BrokerUnavailableError, Rediq
from rediq_redis.testing import RedisServer
from rediq_redis.testing.redis_server import free_port

from ..broker.audit import audit_queue
from ..tcp_proxy import TcpProxy
from ..worker.conftest import Harness

pytestmark = pytest.mark.timeout(120)

COUNTING_APP = """
import redis.asyncio as redis_asyncio

counter = redis_asyncio.from_url(os.environ["REDIQ_REDIS_URL"])

@app.task
async def unit(n):
    await asyncio.sleep(0.01)
    await counter.hincrby(os.environ["REDIQ_TEST_NAMESPACE"] + ":runs", str(n), 1)
    return n
"""


async def _drain_through(
    harness: Harness, proxy: TcpProxy, fault: Callable[[], object], tasks: int = 1500
) -> dict[int, int]:
    """A worker talking to Redis through ``proxy`` drains ``tasks`` while ``fault`` runs;
    returns the runs per task (the tasks count themselves directly in Redis)."""
    m = harness.write_app(COUNTING_APP)
    worker = harness.start(
        "--redis-url", proxy.url(), "--worker-task-concurrency", "20", ready=False
    )
    # Wait off the event loop: the proxy serves the worker from this loop.
    await asyncio.to_thread(worker.wait_for, "ready: consuming", timeout=30)
    handles = await m.app.enqueue_many([m.unit(n) for n in range(tasks)])
    await handles[tasks // 4].result(timeout=30)  # mid-run
    await fault()  # type: ignore[misc]
    for handle in handles:
        await handle.result(timeout=60)
    # No "lost the connection" line is needed here: a blackhole breaks no connection (the
    # commands wait) and reset connections are re-sent by the client's bounded retry.
    runs = {
        int(k): int(v) for k, v in (await m.counter.hgetall(f"{harness.namespace}:runs")).items()
    }
    await m.counter.aclose()
    assert sorted(runs) == list(range(tasks)), "a task was lost"
    return runs


async def test_a_5s_blackhole_mid_run_loses_nothing(harness: Harness, proxy: TcpProxy) -> None:
    async def blackhole() -> None:
        proxy.blackhole()
        await asyncio.sleep(5)  # the outage being simulated
        proxy.restore()

    runs = await _drain_through(harness, proxy, blackhole)
    twice = sum(1 for c in runs.values() if c > 1)
    print(f"\n5 s blackhole: 0 lost, {twice} ran twice")


async def test_a_connection_reset_storm_loses_nothing(harness: Harness, proxy: TcpProxy) -> None:
    cut: list[int] = []

    async def storm() -> None:
        for _ in range(15):  # every connection reset every 200 ms, for 3 s
            cut.append(proxy.reset_all())
            await asyncio.sleep(0.2)

    runs = await _drain_through(harness, proxy, storm)
    twice = sum(1 for c in runs.values() if c > 1)
    print(f"\nreset storm: {sum(cut)} connections cut, 0 lost, {twice} ran twice")


async def test_producers_during_a_cut_fail_clearly_or_store_whole(
    proxy: TcpProxy, rediq_redis_url: str, rediq_namespace: str, redis: Redis
) -> None:
    """Enqueues through a cut connection raise BrokerUnavailableError (URL masked) or
    succeed after the retry; either way nothing is half-written."""
    app = Rediq(
        redis_url=proxy.url().replace("redis://", "redis://:s3cret@"),
        namespace=rediq_namespace,
        redis_config={"socket_timeout": 0.5},
        enqueue_retry_s=2.0,
    )
    direct = Rediq(redis_url=rediq_redis_url, namespace=rediq_namespace)

    @app.task
    async def job(n: int) -> int:
        return n

    outcomes: list[str] = []
    try:
        await job(0).enqueue()  # connected
        proxy.blackhole()
        for n in range(1, 4):
            try:
                await job(n).enqueue()
                outcomes.append("stored")
            except BrokerUnavailableError as exc:
                assert "s3cret" not in str(exc) and ":***@" in str(exc), exc
                outcomes.append("unavailable")
        proxy.restore()
        for _ in range(3):  # a reset storm: retried within enqueue_retry_s
            proxy.reset_all()
            await job(99).options(task_id=f"after-reset-{_}").enqueue()
            outcomes.append("stored after reset")
    finally:
        proxy.restore()
        await app.close()
        await direct.close()
    assert outcomes[:3] == ["unavailable"] * 3, outcomes
    state = await audit_queue(redis, rediq_namespace, "default")  # invariants hold
    assert set(state.pending) >= {f"after-reset-{i}" for i in range(3)}


async def test_worker_started_while_redis_is_down_waits_and_drains(harness: Harness) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    harness.url = url
    m = harness.write_app(COUNTING_APP)
    worker = harness.start("--redis-url", url, ready=False, env={"REDIQ_REDIS_URL": url})
    worker.wait_for("lost the connection to redis://127.0.0.1", timeout=20)
    await asyncio.sleep(5)  # Redis stays down for 5 s (the outage being simulated)
    assert worker.proc.poll() is None, "the worker gave up instead of waiting"
    server = RedisServer(port=port).start()
    try:
        worker.wait_for("reconnected to", timeout=20)
        worker.wait_for("ready: consuming", timeout=20)
        handles = await m.app.enqueue_many([m.unit(n) for n in range(50)])
        assert [await h.result(timeout=20) for h in handles] == list(range(50))
        await m.counter.aclose()
    finally:
        await harness.close()
        server.close()


async def test_fail_fast_exits_at_once_when_redis_is_down(harness: Harness) -> None:
    harness.write_app(COUNTING_APP)
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    worker = harness.start("--redis-url", url, "--fail-fast", ready=False)
    assert worker.wait_exit(20) == 1
    output = worker.output  # the error may be wrapped over several lines of a panel
    assert "redis://:***@127.0.0.1" in output and "unreachable" in output, output
    assert ":pw@" not in output


async def test_out_of_memory_fails_enqueue_clearly_and_workers_keep_settling(
    harness: Harness, rediq_redis_server_factory: Callable[..., RedisServer]
) -> None:
    server = rediq_redis_server_factory(
        extra_args=("--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    )
    harness.url = server.url()
    harness.env["REDIQ_REDIS_URL"] = server.url()
    m = harness.write_app("""
@app.task
async def hold(blob):
    return len(blob)
""")
    stored, failure = [], None
    for _ in range(400):
        try:
            stored.append(await m.hold("x" * 20_000).enqueue())
        except BrokerOutOfMemoryError as exc:
            failure = exc
            break
    assert failure is not None, "maxmemory was never reached"
    assert "out of memory" in str(failure) and server.url() in str(failure)
    redis = Redis.from_url(server.url())
    state = await audit_queue(redis, harness.namespace, "default")  # nothing half-written
    assert len(state.pending) == len(stored)
    harness.start("--redis-url", server.url())
    broker = m.app.get_broker()
    deadline = time.monotonic() + 30
    while (stats := await broker.queue_stats("default")).succeeded < len(stored):
        assert time.monotonic() < deadline, f"the worker stopped settling: {stats}"
        await asyncio.sleep(0.05)
    # Drained: the payloads are gone, so there is room again for new tasks and waiters.
    assert [await h.result(timeout=5) for h in stored] == [20_000] * len(stored)
    await m.hold("y").enqueue()
    await redis.aclose()
