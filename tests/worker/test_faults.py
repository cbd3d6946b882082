"""Fault tests: a worker rides out a real Redis restart and loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rediq_redis.testing import RedisServer

from .conftest import Harness

pytestmark = pytest.mark.timeout(90)

SLOW_ADD = """
@app.task
async def add(a, b):
    await asyncio.sleep(0.05)
    return a + b
"""


async def test_worker_rides_out_a_redis_restart(
    tmp_path: Path, rediq_namespace: str, rediq_redis_server_factory: Callable[..., RedisServer]
) -> None:
    # fsync on every write, so a SIGKILLed server comes back with every acknowledged write
    server = rediq_redis_server_factory(
        extra_args=("--appendonly", "yes", "--appendfsync", "always")
    )
    harness = Harness(tmp_path, server.url(), rediq_namespace)
    try:
        m = harness.write_app(SLOW_ADD)
        worker = harness.start(
            "--worker-task-concurrency",
            "10",
            "--worker-queue-size",
            "10",
            env={"REDIQ_LEASE_MS": "2000"},
        )
        before = await m.app.enqueue_many([m.add(i, 1) for i in range(300)])
        assert await before[0].result(timeout=20) == 1  # the worker is busy now
        mid_run = await m.app.get_broker().queue_stats("default")
        assert mid_run.pending > 100 and mid_run.active > 0, mid_run
        server.restart()  # SIGKILL in the middle of the run, then start on the same port
        after = await m.app.enqueue_many([m.add(i, 1000) for i in range(100)])
        results = [await h.result(timeout=30) for h in [*before, *after]]
        assert results == [i + 1 for i in range(300)] + [i + 1000 for i in range(100)]
        assert worker.proc.poll() is None, f"the worker died:\n{worker.output[-4000:]}"
        stats = await m.app.get_broker().queue_stats("default")
        assert (stats.pending, stats.scheduled, stats.active, stats.dead) == (0, 0, 0, 0)
    finally:
        await harness.close()
