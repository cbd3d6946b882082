"""The rediq app the benchmark worker runs: ``rediq worker benchmarks.rediq_app:app``.

The task bodies are the shared ones of ``common.py`` (identical for every system).
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks import common
from rediq_core.app import Rediq

# rediq defaults kept (json serializer, default namespace and queue); the worker's
# concurrency is given on its command line by run.py (no prefetch: the default).
#: BENCH_EVENT_STREAM_LENGTH=N records the task event stream (N events kept per queue), to
#: see what it costs Redis; unset, rediq's default (off).
app = Rediq(
    redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"),
    event_stream_length=int(os.environ.get("BENCH_EVENT_STREAM_LENGTH", "0")),
)
#: BENCH_RESULT_TTL=0 keeps no result (no peer here has a result store), to see what
#: storing results costs Redis; unset, rediq's default (kept for a day) is used.
OPTIONS: dict[str, Any] = (
    {"result_ttl": int(os.environ["BENCH_RESULT_TTL"])}
    if os.environ.get("BENCH_RESULT_TTL")
    else {}
)


@app.task(task_name=common.NOOP, **OPTIONS)
async def noop() -> None:
    await common.noop_body()


@app.task(task_name=common.SLEEP, **OPTIONS)
async def sleep_10ms() -> None:
    await common.sleep_body()


@app.task(task_name=common.PROBE, **OPTIONS)
async def record_latency(reference_ns: int) -> None:
    await common.probe_body(reference_ns)


TASKS = {common.NOOP: noop, common.SLEEP: sleep_10ms, common.PROBE: record_latency}
