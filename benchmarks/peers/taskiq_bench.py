"""taskiq + taskiq-redis under the shared benchmark drivers (peers virtualenv)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from taskiq.api import run_receiver_task
from taskiq_redis import ListQueueBroker

# ListQueueBroker (LPUSH/BRPOP) without a result backend: results are not read, the task
# bodies record into Redis themselves. Default json serializer.
broker = ListQueueBroker(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1"))


@broker.task(task_name=common.NOOP)
async def noop() -> None:
    await common.noop_body()


@broker.task(task_name=common.SLEEP)
async def sleep_10ms() -> None:
    await common.sleep_body()


@broker.task(task_name=common.PROBE)
async def record_latency(reference_ns: int) -> None:
    await common.probe_body(reference_ns)


TASKS: dict[str, Any] = {common.NOOP: noop, common.SLEEP: sleep_10ms, common.PROBE: record_latency}


class TaskiqAdapter(common.Adapter):
    batch_method = "asyncio.gather (taskiq has no batch kiq)"
    delayed_unsupported = (
        "needs a separate `taskiq scheduler` process and a schedule source; not measured"
    )

    async def open(self) -> None:
        await broker.startup()

    async def close(self) -> None:
        await broker.shutdown()

    async def enqueue(self, task: str, *args: int) -> None:
        await TASKS[task].kiq(*args)

    async def run_worker(self) -> None:
        # Same as `taskiq worker --workers 1 --max-async-tasks 100`, in one process.
        broker.is_worker_process = True
        await broker.startup()
        try:
            await run_receiver_task(broker, max_async_tasks=common.CONCURRENCY)
        finally:
            await broker.shutdown()


if __name__ == "__main__":
    common.main(TaskiqAdapter())
