"""What flow control costs Redis: server time and ``redis.call``s per task for a task
without limits (in a queue without limits and in one with a queue-wide limit), and for
tasks with a concurrency limit, a rate, a fair key, and a concurrency limit that parks
most of a backlog (each task parked once and moved back once).

    .venv/bin/python benchmarks/limits.py [--tasks 3000]

Runs on a throwaway redis-server, through the broker contract: the tasks are enqueued in
batches of 100, then claimed 100 at a time and settled in one batch per claim, as a
worker does. Server time is the scripts' own (``INFO commandstats``, ``EVALSHA`` usec).
Nothing asserts: benchmarks/README.md ("Flow control") carries the table.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence

from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions, Settlement
from rediq_core.flow import Flow, QueueLimits, Rate
from rediq_core.message import TaskMessage, new_task_id
from rediq_redis import RedisBroker
from rediq_redis.testing import RedisServer

WORKER = "limits-worker"
LEASE_MS = 30_000
BATCH = 100
_SKIP = {"cmdstat_evalsha", "cmdstat_script|load", "cmdstat_config|resetstat", "cmdstat_info"}


def message(queue: str, flow: Flow | None) -> TaskMessage:
    return TaskMessage(
        id=new_task_id(),
        name="tasks.noop",
        payload=b"[[],{}]",
        queue=queue,
        serializer="json",
        priority=0,
        max_retries=0,
        timeout_ms=None,
        result_ttl_s=0,
        flow=flow,
    )


async def drain(broker: RedisBroker, queue: str, n: int) -> None:
    """Claim and settle until ``n`` tasks ran (a claim takes what may start)."""
    done = 0
    while done < n:
        batch = await broker.fetch(queue, worker_id=WORKER, limit=BATCH, lease_ms=LEASE_MS)
        settled = [Settlement(d.message.id, queue, result=b"null") for d in batch.deliveries]
        await broker.settle(WORKER, settled)
        done += len(settled)


async def case(
    broker: RedisBroker, redis: Redis, n: int, flow: Callable[[int], Flow | None], queue: str
) -> tuple[float, float]:
    """(server µs per task, redis.calls per task) of enqueueing and running ``n`` tasks."""
    messages = [message(queue, flow(i)) for i in range(n)]
    await redis.config_resetstat()
    for start in range(0, n, BATCH):
        await broker.enqueue(messages[start : start + BATCH])
    await drain(broker, queue, n)
    stats = await redis.info("commandstats")
    usec = float(stats.get("cmdstat_evalsha", {}).get("usec", 0))
    calls = sum(int(v["calls"]) for k, v in stats.items() if k not in _SKIP)
    return usec / n, calls / n


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


async def main(tasks: int) -> None:
    server = RedisServer().start()
    try:
        broker = RedisBroker(BrokerOptions(url=server.url(), namespace="limits-bench"))
        await broker.connect()
        redis = Redis.from_url(server.url())
        await broker.set_limits("queue-limited", QueueLimits(concurrency=10_000))
        many = Rate(1_000_000, 1000, 100_000)  # never stops a task: the cost of the check
        cases: list[tuple[str, Callable[[int], Flow | None], str]] = [
            ("no limits", lambda i: None, "plain"),
            ("no limits, queue-wide limit", lambda i: None, "queue-limited"),
            ("concurrency limit (not reached)", lambda i: Flow(concurrency=(("c:t", 10**6),)), "c"),
            (
                "concurrency limit per key (100 keys)",
                lambda i: Flow(concurrency=((f"c:t:{i % 100}", 10**6),)),
                "ck",
            ),
            ("rate (not reached)", lambda i: Flow(rates=(("r:t", many),)), "r"),
            ("fair key (100 keys)", lambda i: Flow(fair=str(i % 100)), "f"),
            (
                "concurrency limit 10, each task parked once",
                lambda i: Flow(concurrency=(("c:p", 10),)),
                "p",
            ),
        ]
        rows = []
        base = 0.0
        for label, flow, queue in cases:
            await case(broker, redis, min(tasks, 500), flow, queue)  # warm up: scripts loaded
            usec, calls = await case(broker, redis, tasks, flow, queue)
            base = base or usec
            rows.append((label, f"{usec:.1f}", f"{usec - base:+.1f}", f"{calls:.1f}"))
        print(
            f"{tasks} tasks per case, enqueued in batches of {BATCH}, claimed and settled"
            f" {BATCH} at a time"
        )
        print(table(("tasks", "server µs per task", "vs no limits", "redis.calls per task"), rows))
        await redis.aclose()
        await broker.close()
    finally:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    asyncio.run(main(parser.parse_args().tasks))
