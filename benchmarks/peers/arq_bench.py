"""arq under the shared benchmark drivers (runs in the peers virtualenv)."""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker, func


async def noop(ctx: dict[str, Any]) -> None:
    await common.noop_body()


async def sleep_10ms(ctx: dict[str, Any]) -> None:
    await common.sleep_body()


async def record_latency(ctx: dict[str, Any], reference_ns: int) -> None:
    await common.probe_body(reference_ns)


class ArqAdapter(common.Adapter):
    batch_method = "asyncio.gather (arq has no batch enqueue)"

    def __init__(self) -> None:
        self.pool: ArqRedis | None = None

    def settings(self) -> RedisSettings:
        return RedisSettings.from_dsn(common.redis_url())

    async def open(self) -> None:
        self.pool = await create_pool(self.settings())

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.aclose()

    async def enqueue(self, task: str, *args: int) -> None:
        assert self.pool is not None
        await self.pool.enqueue_job(task, *args)

    async def enqueue_delayed(self, task: str, delay_s: float) -> int:
        assert self.pool is not None
        due_ns = time.time_ns() + int(delay_s * 1e9)
        await self.pool.enqueue_job(task, due_ns, _defer_by=timedelta(seconds=delay_s))
        return due_ns

    async def run_worker(self) -> None:
        # arq defaults kept (pickle serializer, poll_delay 0.5 s, keep_result 1 h) except
        # concurrency and the per-job result log line.
        worker = Worker(
            functions=[
                func(noop, name=common.NOOP),
                func(sleep_10ms, name=common.SLEEP),
                func(record_latency, name=common.PROBE),
            ],
            redis_settings=self.settings(),
            max_jobs=common.CONCURRENCY,
            handle_signals=False,
            log_results=False,
        )
        try:
            await worker.main()
        finally:
            await worker.close()


if __name__ == "__main__":
    common.main(ArqAdapter())
