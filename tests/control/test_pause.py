"""Pause: 1,000 tasks enqueued to a paused queue with a worker running: none starts; the
pause survives a worker restart; after resume every task finishes exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from .conftest import Harness, cli, eventually

pytestmark = pytest.mark.timeout(120)

APP = """
@app.task(task_queue="p")
async def work(n):
    with open(os.environ["REDIQ_TEST_RUNS"], "a") as runs:
        runs.write(f"{n}\\n")
    return n
"""
COUNT = 1000


async def claimed(redis: Redis, harness: Harness) -> None:
    """Push a wake token and wait until the worker took it, twice: a fetcher takes a token,
    runs a claim step, then waits again, so a second token taken means a whole claim step
    ran after the first."""
    wake = f"{{{harness.namespace}:p}}:wake"

    async def taken() -> bool:
        return await redis.llen(wake) == 0

    for _ in range(2):
        await redis.delete(wake)
        await redis.rpush(wake, "1")
        await eventually(taken, "the worker to run a fetch cycle")


async def counts(m: Any) -> tuple[int, int, int]:
    o = await m.app.control.queue("p")
    return o.pending, o.active, o.totals["succeeded"]


async def test_pause_holds_tasks_across_a_restart_and_resume_runs_them(
    harness: Harness, rediq_redis_url: str
) -> None:
    runs = harness.dir / "runs.txt"
    harness.env["REDIQ_TEST_RUNS"] = str(runs)
    m = harness.write_app(APP)
    await m.work(-1).enqueue()  # the queue exists before it is paused
    worker = harness.start("--queue-name", "p", "--skip-default-queue")
    redis = Redis.from_url(rediq_redis_url)
    try:
        await eventually(lambda: _done(m, 1), "the first task to finish")
        done = await cli(harness, "pause", "p")
        assert done.code == 0, done
        handles = await m.app.enqueue_many([m.work(n) for n in range(COUNT)])
        await claimed(redis, harness)
        assert await counts(m) == (COUNT, 0, 1), "a task of the paused queue started"

        worker.signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait_exit, 20) == 0
        worker = harness.start("--queue-name", "p", "--skip-default-queue")
        await claimed(redis, harness)
        assert await counts(m) == (COUNT, 0, 1), "the pause did not survive the restart"
        assert (await m.app.control.queue("p")).paused

        started = time.perf_counter()
        assert (await cli(harness, "resume", "p")).code == 0
        await eventually(lambda: _done(m, COUNT + 1), f"all {COUNT} tasks to finish", 60)
        elapsed = time.perf_counter() - started
        print(f"\n[measure] resume_to_all_{COUNT}_done_s = {elapsed:.2f}")
        assert [await h.result(timeout=5) for h in handles] == list(range(COUNT))
        ran = runs.read_text().split()
        assert sorted(int(n) for n in ran) == [-1, *range(COUNT)], "a task ran twice or never"
    finally:
        await redis.aclose()


async def _done(m: Any, count: int) -> bool:
    return (await counts(m))[2] >= count
