"""The rediq app the benchmark worker runs: ``rediq worker benchmarks.rediq_app:app``.

The task bodies are the shared ones of ``common.py`` (identical for every system).
"""

from __future__ import annotations

import os

from benchmarks import common
from rediq_core.app import Rediq

# rediq defaults kept (json serializer, default namespace and queue); the worker's
# concurrency is given on its command line by run.py (no prefetch: the default).
app = Rediq(redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))


@app.task(task_name=common.NOOP)
async def noop() -> None:
    await common.noop_body()


@app.task(task_name=common.SLEEP)
async def sleep_10ms() -> None:
    await common.sleep_body()


@app.task(task_name=common.PROBE)
async def record_latency(reference_ns: int) -> None:
    await common.probe_body(reference_ns)


TASKS = {common.NOOP: noop, common.SLEEP: sleep_10ms, common.PROBE: record_latency}
