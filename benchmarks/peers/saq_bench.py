"""SAQ under the shared benchmark drivers (runs in the peers virtualenv)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from saq import Queue, Worker


async def noop(ctx: dict[str, Any]) -> None:
    await common.noop_body()


async def sleep_10ms(ctx: dict[str, Any]) -> None:
    await common.sleep_body()


async def record_latency(ctx: dict[str, Any], *, reference_ns: int) -> None:
    await common.probe_body(reference_ns)


class SaqAdapter(common.Adapter):
    batch_method = "asyncio.gather (saq has no batch enqueue; max_concurrent_ops=20)"

    def __init__(self) -> None:
        self.queue: Queue | None = None

    async def open(self) -> None:
        self.queue = Queue.from_url(common.redis_url())
        await self.queue.connect()

    async def close(self) -> None:
        if self.queue is not None:
            await self.queue.disconnect()

    async def enqueue(self, task: str, *args: int) -> None:
        assert self.queue is not None
        kwargs = {"reference_ns": args[0]} if args else {}
        await self.queue.enqueue(task, **kwargs)

    async def enqueue_delayed(self, task: str, delay_s: float) -> int:
        # `scheduled` is whole epoch seconds: round the due time to the second SAQ sees.
        assert self.queue is not None
        scheduled = round(time.time() + delay_s)
        await self.queue.enqueue(task, scheduled=scheduled, reference_ns=scheduled * 10**9)
        return scheduled * 10**9

    async def run_worker(self) -> None:
        # SAQ defaults kept (json, schedule timer 1 s, dequeue via BLMOVE) except concurrency.
        queue = Queue.from_url(common.redis_url())
        worker = Worker(
            queue,
            functions=[
                (common.NOOP, noop),
                (common.SLEEP, sleep_10ms),
                (common.PROBE, record_latency),
            ],
            concurrency=common.CONCURRENCY,
        )
        try:
            await worker.start()
        finally:
            await worker.stop()


if __name__ == "__main__":
    common.main(SaqAdapter())
