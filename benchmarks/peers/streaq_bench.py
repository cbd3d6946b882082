"""streaq under the shared benchmark drivers (runs in the peers virtualenv)."""

from __future__ import annotations

import os
import sys
import time
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from streaq import Worker

# streaq defaults kept (pickle serializer, prefetch = concurrency, delayed-task poll
# 0.5 s) except concurrency; the worker must exist at import time to register tasks.
worker: Worker[Any] = Worker(
    redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"),
    concurrency=common.CONCURRENCY,
    handle_signals=False,
)


@worker.task(name=common.NOOP, silent=True)
async def noop() -> None:
    await common.noop_body()


@worker.task(name=common.SLEEP, silent=True)
async def sleep_10ms() -> None:
    await common.sleep_body()


@worker.task(name=common.PROBE, silent=True)
async def record_latency(reference_ns: int) -> None:
    await common.probe_body(reference_ns)


TASKS: dict[str, Any] = {common.NOOP: noop, common.SLEEP: sleep_10ms, common.PROBE: record_latency}


class StreaqAdapter(common.Adapter):
    batch_method = "pipeline (Worker.enqueue_many)"

    def __init__(self) -> None:
        self.stack = AsyncExitStack()

    async def open(self) -> None:
        await self.stack.enter_async_context(worker)

    async def close(self) -> None:
        await self.stack.aclose()

    async def enqueue(self, task: str, *args: int) -> None:
        await TASKS[task].enqueue(*args)

    async def enqueue_batch(self, task: str, args: Any) -> None:
        await worker.enqueue_many([TASKS[task].enqueue(*a) for a in args])

    async def enqueue_delayed(self, task: str, delay_s: float) -> int:
        due_ns = time.time_ns() + int(delay_s * 1e9)
        await TASKS[task].enqueue(due_ns).start(delay=timedelta(seconds=delay_s))
        return due_ns

    async def run_worker(self) -> None:
        await worker.run_async()


if __name__ == "__main__":
    common.main(StreaqAdapter())
