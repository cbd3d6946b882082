"""Chaos for workflows: 1,000 workflows (chains of 3 and chords of 10, their steps on two
queues) while workers with default settings are SIGKILLed and replaced every second.
Every workflow ends once with the right result; no step runs twice unless it was running
at a kill; nothing is left waiting, pending or in an outbox."""

from __future__ import annotations

import time

import pytest

from rediq import TaskState, chain, chord, group

from ..worker.conftest import Harness, WorkerProcess
from .chaos import kill_one_a_second

pytestmark = pytest.mark.timeout(240)

#: Each step counts its runs by task id; "running" holds, per worker pid, the steps
#: started there whose outcome is not stored yet (after_task_success fires once it is).
CHAOS_APP = """
import redis.asyncio as redis_asyncio

NS = os.environ["REDIQ_TEST_NAMESPACE"]
counter = redis_asyncio.from_url(os.environ["REDIQ_REDIS_URL"])

async def _ran():
    task_id = current_task_info().task_id
    async with counter.pipeline(transaction=False) as pipe:
        pipe.hincrby(NS + ":runs", task_id, 1)
        pipe.sadd(f"{NS}:running:{os.getpid()}", task_id)
        await pipe.execute()
    await asyncio.sleep(0.2)

@app.task
async def add(a, b):
    await _ran()
    return a + b

@app.task(task_queue="other")
async def double(a):
    await _ran()
    return 2 * a

@app.task(task_queue="other")
async def total(values):
    await _ran()
    return sum(values)

@app.event
async def after_task_success():
    await counter.srem(f"{NS}:running:{os.getpid()}", current_task_info().task_id)
"""

CHAINS, CHORDS, KILLS = 500, 500, 10


async def test_workflows_survive_workers_sigkilled_every_second(harness: Harness) -> None:
    m = harness.write_app(CHAOS_APP)
    handles = []
    for n in range(CHAINS):  # add(n, 1) -> double -> add(+3): (n + 1) * 2 + 3
        handles.append(await chain(m.add(n, 1), m.double.s(), m.add.s(3)).enqueue())
    for n in range(CHORDS):  # sum of i + n for i < 10, then doubled
        members = group(m.add(i, n) for i in range(10))
        handles.append(await chain(chord(members, m.total.s()), m.double.s()).enqueue())
    expected = [(n + 1) * 2 + 3 for n in range(CHAINS)]
    expected += [2 * sum(i + n for i in range(10)) for n in range(CHORDS)]
    steps = CHAINS * 3 + CHORDS * 12

    args = ("--queue-name", "default", "--queue-name", "other")
    workers: list[WorkerProcess] = [harness.start(*args) for _ in range(3)]  # default settings
    counter, ns = m.counter, harness.namespace
    # steps started on a worker and not settled at its kill
    exposed = await kill_one_a_second(harness, workers, counter, KILLS, seed=11, args=args)
    last_kill = time.monotonic()
    results = [await h.result(timeout=120) for h in handles]
    done_after_s = time.monotonic() - last_kill
    runs = {k.decode(): int(v) for k, v in (await counter.hgetall(f"{ns}:runs")).items()}
    extra = {step for step, count in runs.items() if count > 1}
    broker = m.app.get_broker()
    left = [await broker.queue_stats(q) for q in ("default", "other")]
    waiting = [(await broker.list_tasks(q, TaskState.WAITING)).tasks for q in ("default", "other")]
    outbox = [await counter.zcard(f"{{{ns}:{q}}}:outbox") for q in ("default", "other")]
    print(
        f"\nworkflow chaos: {CHAINS} chains of 3 and {CHORDS} chords of 10 (+2), {steps} steps"
        f" on two queues, {KILLS} SIGKILLs (1/s) among 3 workers with default settings: every"
        f" workflow right; {len(runs)} steps ran, {len(extra)} twice (all running at a kill:"
        f" {len(exposed)} were); all done {done_after_s:.1f} s after the last kill"
    )
    assert results == expected
    assert len(runs) == steps
    assert extra <= exposed, f"ran twice without being exposed to a kill: {extra - exposed}"
    for stats in left:
        assert (stats.pending, stats.scheduled, stats.active, stats.dead) == (0, 0, 0, 0)
    assert waiting == [[], []] and outbox == [0, 0]
    await counter.aclose()
