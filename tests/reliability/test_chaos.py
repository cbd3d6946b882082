"""Chaos: workers with default settings are SIGKILLed and replaced while they drain."""

from __future__ import annotations

import time

import pytest

from ..worker.conftest import Harness, WorkerProcess
from .chaos import kill_one_a_second

pytestmark = pytest.mark.timeout(150)

#: Each task counts its runs; "running" holds, per worker pid, the tasks started there
#: whose outcome is not stored yet (after_task_success fires once it is).
CHAOS_APP = """
import redis.asyncio as redis_asyncio

NS = os.environ["REDIQ_TEST_NAMESPACE"]
counter = redis_asyncio.from_url(os.environ["REDIQ_REDIS_URL"])

@app.task
async def unit(n):
    async with counter.pipeline(transaction=False) as pipe:
        pipe.hincrby(NS + ":runs", str(n), 1)
        pipe.sadd(f"{NS}:running:{os.getpid()}", n)
        await pipe.execute()
    await asyncio.sleep(0.5)  # 3 workers x 100 slots: ~600 tasks/s, about the 10 s of chaos
    return n

@app.event
async def after_task_success():
    n = current_task_info().args[0]
    await counter.srem(f"{NS}:running:{os.getpid()}", n)
"""

TASKS, KILLS = 5000, 10


async def test_random_worker_sigkilled_every_second(harness: Harness) -> None:
    m = harness.write_app(CHAOS_APP)
    handles = await m.app.enqueue_many([m.unit(n) for n in range(TASKS)])
    workers: list[WorkerProcess] = [harness.start() for _ in range(3)]  # default settings
    counter, ns = m.counter, harness.namespace
    # tasks started on a worker and not settled at its kill
    exposed = {int(n) for n in await kill_one_a_second(harness, workers, counter, KILLS, seed=7)}
    last_kill = time.monotonic()
    for handle in handles:
        await handle.result(timeout=60)
    done_after_s = time.monotonic() - last_kill
    runs = {int(k): int(v) for k, v in (await counter.hgetall(f"{ns}:runs")).items()}
    lost = TASKS - len(runs)
    extra = {n for n, count in runs.items() if count > 1}
    stats = await m.app.get_broker().queue_stats("default")
    print(
        f"\nchaos: {TASKS} tasks, {KILLS} SIGKILLs (1/s) among 3 workers with default"
        f" settings: lost {lost}, ran twice {len(extra)} (all of them running at a kill:"
        f" {len(exposed)} were), all done {done_after_s:.1f} s after the last kill"
    )
    assert lost == 0 and sorted(runs) == list(range(TASKS))
    assert extra <= exposed, f"ran twice without being exposed to a kill: {extra - exposed}"
    assert (stats.pending, stats.scheduled, stats.active, stats.dead) == (0, 0, 0, 0)
    await counter.aclose()
