"""How fast a running task is cancelled: from ``handle.cancel()`` to the cancelled result
the producer awaits (announcement, cancellation on the worker, settlement, result wake-up).

    .venv/bin/python benchmarks/cancel_latency.py [--samples 50]

A throwaway redis-server and one ``rediq worker`` whose lease keeper renews only once a
minute, so every cancellation arrives through the announcement, not the keeper's safety
net. Each sample enqueues a task that waits forever, waits until it runs, then cancels it.
Prints p50/p95/max in ms. Nothing asserts (tests only check that the announcement, not
the safety net, ends the task).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rediq import Rediq, TaskState
from rediq_core.errors import TaskCancelledError
from rediq_redis.testing import RedisServer

APP = """
import asyncio, os
from rediq import Rediq

app = Rediq(redis_url=os.environ["BENCH_REDIS_URL"])

@app.task
async def forever():
    await asyncio.Event().wait()
"""
#: The keeper's safety net out of the way: a result within the sample is the announcement.
WORKER_ENV = {"REDIQ_LEASE_MS": "180000", "REDIQ_LEASE_RENEW_MS": "60000"}


async def _sample(app: Rediq, forever: object) -> float:
    handle = await forever().enqueue()  # type: ignore[operator]
    while await handle.state() is not TaskState.ACTIVE:  # noqa: ASYNC110
        await asyncio.sleep(0.005)  # the benchmark's own progress check, outside the sample
    started = time.perf_counter()
    await handle.cancel()
    try:
        await handle.result(timeout=30)
    except TaskCancelledError:
        return (time.perf_counter() - started) * 1000
    raise RuntimeError("the task was not cancelled")


async def measure(folder: Path, samples: int) -> list[float]:
    server = RedisServer().start()
    os.environ["BENCH_REDIS_URL"] = server.url()
    sys.path.insert(0, str(folder))
    import cancel_app  # the module written by main()

    app: Rediq = cancel_app.app
    worker = subprocess.Popen(  # noqa: ASYNC220 - the benchmark starts its worker once
        [
            sys.executable,
            "-m",
            "rediq_core.cli",
            "worker",
            "cancel_app:app",
            "--log-level",
            "warning",
        ],
        cwd=folder,
        env={**os.environ, **WORKER_ENV, "PYTHONPATH": str(folder)},
        stdout=subprocess.DEVNULL,  # a line per cancelled task
        stderr=subprocess.DEVNULL,
    )
    try:
        await _sample(app, cancel_app.forever)  # warm-up
        return [await _sample(app, cancel_app.forever) for _ in range(samples)]
    finally:
        worker.terminate()
        worker.wait(30)
        await app.close()
        server.close()
        sys.modules.pop("cancel_app", None)
        sys.path.remove(str(folder))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "cancel_app.py").write_text(APP)
        ms = sorted(await measure(folder, args.samples))
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(
        f"| cancel a running task → cancelled result (ms), {len(ms)} samples |\n|---|\n"
        f"| p50 {statistics.median(ms):.1f}, p95 {p95:.1f}, max {ms[-1]:.1f} |"
    )


if __name__ == "__main__":
    asyncio.run(main())
