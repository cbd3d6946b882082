"""Prefetch that does not starve other workers or newer high-priority tasks.

Two in-process workers with the default configuration (but for a small concurrency)
against a real redis-server.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from rediq_core.app import Rediq
from rediq_core.testing import run_worker

pytestmark = pytest.mark.timeout(60)

CONCURRENCY = 4


def _app(url: str, namespace: str) -> Rediq:
    return Rediq(redis_url=url, namespace=namespace)


async def _until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


async def test_two_workers_both_get_slow_tasks(rediq_redis_url: str, rediq_namespace: str) -> None:
    app = _app(rediq_redis_url, rediq_namespace)
    ran_by: Counter[str] = Counter()
    release = asyncio.Event()

    @app.task
    async def slow() -> None:
        from rediq import current_task_info

        ran_by[current_task_info().worker_name] += 1
        await release.wait()

    handles = [await slow().enqueue() for _ in range(20)]
    async with run_worker(app, worker_name="first", task_concurrency=CONCURRENCY) as first:
        await _until(lambda: ran_by["first"] == CONCURRENCY, "the first worker is busy")
        held = len(first.leases)
        async with run_worker(app, worker_name="second", task_concurrency=CONCURRENCY):
            try:
                await _until(
                    lambda: ran_by["second"] == CONCURRENCY, "the second worker started tasks too"
                )
            except AssertionError:
                pytest.fail(
                    f"the second worker started {ran_by['second']} task(s) while the"
                    f" first held {held} lease(s) for {CONCURRENCY} runners"
                )
            finally:
                release.set()
            assert held == CONCURRENCY, "a worker leases only what it can start"
            for handle in handles:
                await handle.result(timeout=20)
    await app.close()


async def test_a_high_priority_task_starts_next_behind_a_busy_worker(
    rediq_redis_url: str, rediq_namespace: str
) -> None:
    app = _app(rediq_redis_url, rediq_namespace)
    started: list[str] = []
    gates = {name: asyncio.Event() for name in ("busy", "low")}

    @app.task
    async def job(kind: str) -> None:
        started.append(kind)
        await gates[kind].wait() if kind in gates else None

    async with run_worker(app, task_concurrency=CONCURRENCY) as worker:
        busy = [await job("busy").enqueue() for _ in range(CONCURRENCY)]
        await _until(lambda: started.count("busy") == CONCURRENCY, "all runners busy")
        # more than any local queue holds (the default prefetch was 200)
        low = await app.enqueue_many([job("low").options(priority=5) for _ in range(300)])
        # a prefetching worker would lease some now: wait until this one leased beyond its
        # runners, or has no free slot (then it fetches nothing until a runner frees up)
        await _until(
            lambda: worker.budget.free <= 0 or len(worker.leases) > CONCURRENCY,
            "the worker to lease beyond its runners or to have no free slot",
        )
        urgent = await job("urgent").options(priority=-5).enqueue()
        prefetched = worker.local.qsize()
        gates["busy"].set()  # the runners free up
        await _until(lambda: len(started) > CONCURRENCY, "a task started after the busy ones")
        gates["low"].set()
        assert started[CONCURRENCY] == "urgent", (
            f"after the busy tasks, these started: {started[CONCURRENCY : CONCURRENCY + 5]}"
            f" (prefetched: {prefetched} in the local queue)"
        )
        for handle in [*busy, *low, urgent]:
            await handle.result(timeout=20)
    await app.close()
