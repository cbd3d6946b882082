"""The autoscaling signal's wait histogram with a real worker, on Redis and on
``memory://``: tasks due two minutes ago (a past ETA) and tasks due now show in
``app.control.scaling(queue)`` in their buckets once the worker's heartbeat carries them."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from rediq import QueueScaling, Rediq
from rediq.testing import run_worker

pytestmark = pytest.mark.timeout(90)

WAIT_S = 20.0
#: Heartbeats (and lease rounds) every 0.1 s: the counts reach the registry at once.
FAST = {"lease_ms": 1_500, "lease_renew_ms": 100, "heartbeat_interval_s": 0.1}


async def test_waits_reach_the_scaling_signal_through_the_heartbeat(app: Rediq) -> None:
    @app.task(task_queue="waits")
    async def work(n: int) -> int:
        return n

    late = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    handles = [await work(n).options(eta=late).enqueue() for n in range(3)]
    handles += [await work(n).enqueue() for n in range(2)]
    async with run_worker(app, queues=("waits",), **FAST):
        for handle in handles:
            await handle.result(timeout=WAIT_S)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        found: QueueScaling = await app.control.scaling("waits")
        while sum(b.count for b in found.wait_histogram) < 5:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"5 starts not in the histogram in {WAIT_S} s: {found}")
            await asyncio.sleep(0.05)  # re-check interval of a bounded wait
            found = await app.control.scaling("waits")
        by_bound = {b.le_s: b.count for b in found.wait_histogram}
        assert by_bound[300] == 3, found.wait_histogram  # due 2 minutes before they ran
        assert sum(n for le, n in by_bound.items() if le <= 60) == 2, found.wait_histogram
        assert found.wait_p95_s is not None and 60 < found.wait_p95_s <= 300
        assert found.wait_window_s == 300
        document = found.as_json()
        histogram = document["wait_histogram"]
        assert isinstance(histogram, list) and histogram[-1] == {"le_s": None, "count": 0}
        other = await app.control.scaling("elsewhere")
        assert sum(b.count for b in other.wait_histogram) == 0 and other.wait_p50_s is None
