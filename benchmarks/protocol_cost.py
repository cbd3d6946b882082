"""What each step of a task's life costs Redis: round trips, script calls, ``redis.call``s
and server time, one task alone and in batches of 100; then memory per pending task and
what is left after draining tasks that keep no result.

    .venv/bin/python benchmarks/protocol_cost.py [--tasks 2000] [--events 10000]

Runs on a throwaway redis-server, through the broker contract (the calls a producer and a
worker make). ``redis.call``s are counted with ``INFO commandstats`` (every command a script
runs counts there; the ``EVALSHA`` itself and script loading are left out). Memory is
``used_memory`` before and after. ``--events N`` records the task event stream (N events
kept per queue; 0, the default: off), to measure what it costs. Nothing asserts:
docs/broker.md carries the table, docs/observability.md the event stream's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions, Settlement
from rediq_core.message import TaskMessage
from rediq_redis import RedisBroker
from rediq_redis.testing import RedisServer

QUEUE = "cost"
WORKER = "cost-worker"
LEASE_MS = 5_000
_SKIP = {"cmdstat_evalsha", "cmdstat_script|load", "cmdstat_config|resetstat", "cmdstat_info"}


def message(i: int, result_ttl_s: int = 0) -> TaskMessage:
    return TaskMessage(
        id=f"{i:08d}-{time.perf_counter_ns():x}"[:32].ljust(32, "0"),
        name="tasks.noop",
        payload=b"[[],{}]",
        queue=QUEUE,
        serializer="json",
        priority=0,
        max_retries=3,
        timeout_ms=0,
        result_ttl_s=result_ttl_s,
    )


async def _counted(redis: Redis, step: Callable[[], Awaitable[Any]]) -> tuple[int, int, float]:
    """(script calls, redis.calls, server µs in scripts) of one run of ``step``."""
    await redis.config_resetstat()
    await step()
    stats = await redis.info("commandstats")
    scripts = stats.get("cmdstat_evalsha", {})
    calls = sum(int(v["calls"]) for k, v in stats.items() if k not in _SKIP)
    return int(scripts.get("calls", 0)), calls, float(scripts.get("usec", 0))


async def lifecycle(broker: RedisBroker, redis: Redis, batch: int) -> list[tuple[str, str]]:
    """Enqueue, claim, renew and settle ``batch`` tasks, one step at a time."""
    messages = [message(i) for i in range(batch)]
    delivered: list[Any] = []

    async def enqueue() -> None:
        await broker.enqueue(messages)

    async def claim() -> None:
        fetched = await broker.fetch(QUEUE, worker_id=WORKER, limit=batch, lease_ms=LEASE_MS)
        delivered.extend(fetched.deliveries)

    async def renew() -> None:
        await broker.extend_leases(WORKER, {QUEUE: [d.lease for d in delivered]}, LEASE_MS)

    async def settle() -> None:
        await broker.settle(
            WORKER,
            [
                Settlement(d.message.id, QUEUE, result=b"null", delivery=d.deliveries)
                for d in delivered
            ],
        )

    rows = []
    for label, step in (
        ("enqueue", enqueue),
        ("claim", claim),
        ("renew", renew),
        ("settle", settle),
    ):
        scripts, calls, usec = await _counted(redis, step)
        rows.append((label, f"{scripts} | {calls / batch:.1f} | {usec / batch:.1f}"))
    return rows


async def handoff(broker: RedisBroker, redis: Redis) -> list[tuple[str, str]]:
    """A task enqueued while a worker waits: the registration, then the enqueue that hands
    it over (the worker's BLPOP returns it)."""
    rows: list[tuple[str, str]] = []
    for _ in range(2):  # the first round loads the scripts
        await redis.config_resetstat()
        waiting = asyncio.ensure_future(
            broker.fetch(QUEUE, worker_id=WORKER, limit=1, lease_ms=LEASE_MS)
        )
        for _ in range(5000):  # the registration is on its way (bounded: 5 s)
            if await redis.llen(f"{{cost:{QUEUE}}}:idle"):
                break
            await asyncio.sleep(0.001)
        else:
            raise RuntimeError("the waiting fetch never registered")
        registered = await redis.info("commandstats")
        wait_calls = sum(int(v["calls"]) for k, v in registered.items() if k not in _SKIP)
        scripts, calls, usec = await _counted(redis, lambda: broker.enqueue([message(0)]))
        [delivery] = (await waiting).deliveries
        await broker.settle(WORKER, [Settlement(delivery.message.id, QUEUE, result=b"null")])
        rows = [
            ("a claim that finds nothing, then the registration", f"2 | {wait_calls} | -"),
            ("the enqueue that hands the task over", f"{scripts} | {calls} | {usec:.1f}"),
        ]
    return rows


async def memory(broker: RedisBroker, redis: Redis, n: int) -> tuple[float, float]:
    """Bytes per pending no-op task, and per task left right after draining them."""
    await redis.flushall()
    await broker.enqueue([message(0)])  # the queue's own keys exist before measuring
    await broker.settle(
        WORKER,
        [
            Settlement(d.message.id, QUEUE, result=b"null", delivery=d.deliveries)
            for d in (
                await broker.fetch(QUEUE, worker_id=WORKER, limit=1, lease_ms=LEASE_MS)
            ).deliveries
        ],
    )
    before = int((await redis.info("memory"))["used_memory"])
    for start in range(0, n, 500):
        await broker.enqueue([message(start + i) for i in range(min(500, n - start))])
    pending = int((await redis.info("memory"))["used_memory"])
    left = n
    while left:
        fetched = await broker.fetch(QUEUE, worker_id=WORKER, limit=500, lease_ms=LEASE_MS)
        await broker.settle(
            WORKER,
            [
                Settlement(d.message.id, QUEUE, result=b"null", delivery=d.deliveries)
                for d in fetched.deliveries
            ],
        )
        left -= len(fetched.deliveries)
    drained = int((await redis.info("memory"))["used_memory"])
    return (pending - before) / n, (drained - before) / n


def table(header: Sequence[str], rows: Sequence[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [f"| {label} | {value} |" for label, value in rows]
    return "\n".join(lines)


async def main(tasks: int, events: int) -> None:
    server = RedisServer().start()
    redis = Redis.from_url(server.url())
    options = BrokerOptions(url=server.url(), namespace="cost", event_stream_length=events)
    broker = RedisBroker(options)
    try:
        await broker.connect()
        for batch in (1, 1, 100):  # the first round loads the scripts
            rows = await lifecycle(broker, redis, batch)
        print("one task: script calls | redis.calls per task | server µs per task")
        print(table(("step", "scripts | calls/task | µs/task"), await lifecycle(broker, redis, 1)))
        print()
        print(table(("step (batch of 100)", "scripts | calls/task | µs/task"), rows))
        print()
        print(table(("a waiting worker", "scripts | calls | µs"), await handoff(broker, redis)))
        print()
        pending, left = await memory(broker, redis, tasks)
        print(f"Redis memory per pending no-op task: {pending:.0f} B")
        print(f"left per task right after draining them (no result kept): {left:.0f} B")
    finally:
        await broker.close()
        await redis.aclose()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=0, help="event stream length (0: off)")
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.events))
