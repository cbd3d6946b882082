"""Sharded queues on the 3-master test cluster (docs/scaling.md): one queue spread over the
masters, routing, a worker consuming every shard, the ordering bound across shards, and
control, cron, workflows and limits on a sharded queue."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from rediq import Rate, Rediq, TaskState
from rediq_core import roles
from rediq_core.cli import main
from rediq_core.errors import ConfigurationError
from rediq_core.shards import parse_shard
from rediq_core.testing import run_worker
from rediq_redis.keys import QueueKeys
from tests.broker.audit import audit_queue, bounded_leftovers, namespace_keys

SHARDS = 6


@pytest.fixture
async def app(rediq_redis_cluster: Any, rediq_namespace: str) -> AsyncIterator[Rediq]:
    app = Rediq(redis_url=rediq_redis_cluster.url(), namespace=rediq_namespace)
    app.queue("emails", shards=SHARDS)
    yield app
    await app.close()


async def _node_of(app: Rediq, queue: str) -> str:
    session = await app.get_broker()._ready()  # type: ignore[attr-defined]
    client = session.client
    assert isinstance(client, RedisCluster)
    return str(client.get_node_from_key(session.keys.queue(queue).key("pending")).name)


async def test_shards_spread_evenly_over_the_masters(app: Rediq) -> None:
    """Six shards: two on each of the three masters (an unsharded queue is on one)."""
    shards = app.shards.names("emails")
    assert shards == tuple(f"emails#{i}of{SHARDS}" for i in range(SHARDS))
    nodes = Counter([await _node_of(app, s) for s in shards])
    assert sorted(nodes.values()) == [2, 2, 2], nodes


async def test_producer_spreads_round_robin_and_routes_by_key(app: Rediq) -> None:
    @app.task(task_queue="emails")
    async def send(user: str, n: int) -> None: ...

    spread = [await send("u", n).enqueue() for n in range(SHARDS * 5)]
    assert Counter(h.queue for h in spread) == {s: 5 for s in app.shards.names("emails")}

    keyed = await app.enqueue_many([send("u", n).options(shard_key="user") for n in range(20)])
    assert len({h.queue for h in keyed}) == 1
    by_key = {await send(f"user{k}", 0).options(shard_key="user").enqueue() for k in range(60)}
    assert len({h.queue for h in by_key}) == SHARDS  # many keys use every shard

    first = await send("u", 1).options(task_id="order-17").enqueue()
    again = await send("u", 1).options(task_id="order-17").enqueue()
    assert first.queue == again.queue and first.accepted and not again.accepted

    with pytest.raises(ConfigurationError, match="names no argument"):
        send("u", 1).options(shard_key="nope")
    with pytest.raises(ConfigurationError, match="declared with 6 shards"):
        app.queue("emails", shards=4)
    with pytest.raises(ConfigurationError, match="shards=0"):
        app.queue("other", shards=0)


async def test_a_worker_consumes_every_shard_and_leaves_nothing(
    app: Rediq, rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    @app.task(task_queue="emails")
    async def double(n: int) -> int:
        return n * 2

    handles = await app.enqueue_many([double(n) for n in range(300)])
    async with run_worker(app, queues=("emails",), skip_default_queue=True, task_concurrency=20):
        results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
    assert results == [n * 2 for n in range(300)]
    overview = await app.control.queue("emails")
    assert (overview.pending, overview.active, overview.totals["succeeded"]) == (0, 0, 300)
    await app.control.purge("emails")
    for h in handles:
        await app.control.delete(h.id)
    await _audit(rediq_redis_cluster, rediq_namespace, app.shards.names("emails"))


async def test_a_worker_finds_the_shards_its_app_does_not_declare(
    app: Rediq, rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    """Shards left by producers with another number of shards are consumed too."""

    @app.task(task_queue="emails", task_name="triple")
    async def triple(n: int) -> int:
        return n * 3

    handles = await app.enqueue_many([triple(n) for n in range(24)])
    other = Rediq(redis_url=rediq_redis_cluster.url(), namespace=rediq_namespace)
    other.task(task_queue="emails", task_name="triple")(triple.fn)
    try:
        async with run_worker(other, queues=("emails",), skip_default_queue=True) as worker:
            assert set(worker.consumed) == {"emails", *app.shards.names("emails")}
            results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
    finally:
        await other.close()
    assert results == [n * 3 for n in range(24)]


async def test_priority_across_shards_holds_within_the_bound(app: Rediq) -> None:
    """One worker with one slot; 40 low-priority tasks spread over the shards, then 8
    high-priority ones all in one shard (the worst case for the bound): each high task
    starts after at most ``shards - 1`` low ones per high task before it, and the tasks of
    one shard key start in their enqueue order."""
    started: list[tuple[str, int]] = []

    @app.task(task_queue="emails")
    async def job(kind: str, n: int) -> None:
        started.append((kind, n))

    await app.enqueue_many([job("low", n).options(priority=5) for n in range(40)])
    await app.enqueue_many(
        [job("high", n).options(priority=0, shard_key=lambda kind, n: "hot") for n in range(8)]
    )
    async with run_worker(
        app, queues=("emails",), skip_default_queue=True, task_concurrency=1, queue_size=0
    ):
        await _until(lambda: len(started) == 48, "every task ran")
    highs = [i for i, (kind, _) in enumerate(started) if kind == "high"]
    assert [n for kind, n in started if kind == "high"] == list(range(8))  # FIFO in its shard
    for k, position in enumerate(highs):
        lows_before = position - k
        assert lows_before <= (SHARDS - 1) * (k + 1), (k, started)


async def test_highs_spread_over_the_shards_start_first(app: Rediq) -> None:
    """Spread evenly (the producer's round-robin), higher priority starts first."""
    started: list[str] = []

    @app.task(task_queue="emails")
    async def job(kind: str) -> None:
        started.append(kind)

    await app.enqueue_many([job("low").options(priority=5) for _ in range(30)])
    await app.enqueue_many([job("high").options(priority=0) for _ in range(SHARDS * 2)])
    async with run_worker(
        app, queues=("emails",), skip_default_queue=True, task_concurrency=1, queue_size=0
    ):
        await _until(lambda: len(started) == 30 + SHARDS * 2, "every task ran")
    # the very first start may be a low task leased before the others arrived: one shard
    # turn at most
    assert "low" not in started[SHARDS : SHARDS * 2], started


async def test_control_treats_a_sharded_queue_as_one(
    app: Rediq, rediq_redis_cluster: Any, rediq_namespace: str
) -> None:
    @app.task(task_queue="emails")
    async def send(n: int) -> None: ...

    handles = await app.enqueue_many([send(n).groups("batch") for n in range(30)])
    await app.enqueue_many([send(n) for n in range(12)])
    control = app.control
    assert await control.queues() == ["emails"]
    assert (await control.queue("emails")).pending == 42
    assert [o.pending for o in await control.shard_overviews("emails")] == [7] * SHARDS

    listed, cursor = [], None
    while True:
        page = await control.tasks("emails", TaskState.PENDING, limit=10, cursor=cursor)
        listed += [t.id for t in page.tasks]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(listed) == len(set(listed)) == 42

    one = handles[0]
    assert (await control.task(one.id, "emails")) is not None
    assert parse_shard(one.queue) is not None

    assert await control.pause("emails")
    assert all(o.paused for o in await control.shard_overviews("emails"))
    assert (await control.queue("emails")).paused
    assert await control.resume("emails")

    outcomes = await control.cancel_group("batch", "emails")
    assert len(outcomes) == 30
    assert (await control.queue("emails")).pending == 12

    target = ["--redis-url", rediq_redis_cluster.url(), "--namespace", rediq_namespace]
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["queues", "--shards", "--json", *target]
    )
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)["queues"]
    assert row["name"] == "emails" and row["shards"] == SHARDS and row["pending"] == 12
    assert [s["name"] for s in row["shard_detail"]] == list(app.shards.names("emails"))
    text = await asyncio.to_thread(CliRunner().invoke, main, ["queues", *target])
    assert f"emails ({SHARDS} shards)" in text.output

    assert await control.purge("emails") == 12
    assert await control.forget("emails")
    await control.delete_group("batch", "emails")
    await _audit(rediq_redis_cluster, rediq_namespace, app.shards.names("emails"))


async def test_limits_on_a_sharded_queue(app: Rediq) -> None:
    """A keyed concurrency limit routes every call with that key to one shard, so the
    limit holds across shards; the queue's own limits are split among its shards."""
    running: Counter[str] = Counter()
    most: Counter[str] = Counter()

    @app.task(task_queue="emails", concurrency_limit=1, concurrency_key="user")
    async def sync(user: str, n: int) -> None:
        running[user] += 1
        most[user] = max(most[user], running[user])
        await asyncio.sleep(0.01)
        running[user] -= 1

    handles = await app.enqueue_many([sync(f"u{n % 3}", n) for n in range(30)])
    assert len({h.queue for h in handles if h.id}) <= 3
    async with run_worker(app, queues=("emails",), skip_default_queue=True, task_concurrency=10):
        await asyncio.gather(*(h.result(timeout=60) for h in handles))
    assert set(most.values()) == {1}, most

    await app.control.set_limits("emails", concurrency=8, rate="60/s")
    [flow] = await app.control.limits("emails")
    assert (flow.limits.concurrency, flow.limits.rate) == (8, Rate.parse("60/s"))
    shares = [await roles.limits(app.get_broker()).limits(s) for s in app.shards.names("emails")]
    assert [f.limits.concurrency for f in shares] == [2, 2, 1, 1, 1, 1]
    assert {(f.limits.rate.count, f.limits.rate.period_ms) for f in shares if f.limits.rate} == {
        (60, 6000)
    }
    with pytest.raises(ConfigurationError, match="at least 6"):
        await app.control.set_limits("emails", concurrency=4)
    await app.control.set_limits("emails")


async def test_cron_and_workflows_on_a_sharded_queue(app: Rediq) -> None:
    from rediq import chain

    @app.task(task_queue="emails")
    async def add(x: int, y: int) -> int:
        return x + y

    @app.task(task_queue="emails")
    async def ping() -> str:
        return "pong"

    app.cron("0 3 * * *", name="nightly")(ping)
    [schedule] = app.schedules.values()
    assert parse_shard(schedule.spec.queue) is not None  # its state lives in one shard

    async with run_worker(app, queues=("emails",), skip_default_queue=True, task_concurrency=5):
        flow = await app.enqueue_workflow(chain(add(1, 2), add.s(10), add.s(100)))
        assert await flow.result(timeout=60) == 113
        assert all(parse_shard(step.queue) for step in await flow.status())
        task_id = await app.cron_control.trigger("nightly")
        handle = await app.handle(task_id)
        assert await handle.result(timeout=60) == "pong"


#: Per-queue metadata that stays, bounded (docs/broker.md, "What remains").
_METADATA = ("seq", "stats", "wake", "minutes", "history", "paused")


async def _audit(cluster: Any, namespace: str, shards: tuple[str, ...]) -> None:
    """Each shard, on its master: the invariants hold, no task is left, and only bounded
    metadata remains (besides the namespace's own keys, tag ``{NS}``)."""
    keys: set[str] = set()
    for master in cluster.masters():
        async with Redis(port=master.port) as redis:
            keys |= await namespace_keys(redis, namespace)
    for shard in shards:
        tag = QueueKeys(namespace, shard).tag
        port = cluster.master_of_slot(key_slot(tag.encode())).port
        async with Redis(port=port) as redis:
            state = await audit_queue(redis, namespace, shard)
            assert not state.states, (shard, state.states)
            keys -= await bounded_leftovers(redis, namespace, shard, 120_000)
        keys -= {f"{tag}:{name}" for name in _METADATA}
    assert {k for k in keys if not k.startswith(f"{{{namespace}}}")} == set()


async def _until(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.01)  # bounded wait for the worker's progress
