"""rediq under the shared benchmark drivers (producer side; runs in the project venv).

The worker is the real CLI, started by ``run.py``::

    rediq worker benchmarks.rediq_app:app --redis-url URL \\
        --worker-task-concurrency 100 --log-level warning
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common
from benchmarks.rediq_app import TASKS, app


class RediqAdapter(common.Adapter):
    batch_method = "pipeline (app.enqueue_many)"

    async def close(self) -> None:
        await app.close()

    async def enqueue(self, task: str, *args: int) -> None:
        await TASKS[task](*args).enqueue()

    async def enqueue_batch(self, task: str, args: Sequence[tuple[int, ...]]) -> None:
        await app.enqueue_many([TASKS[task](*a) for a in args])

    async def enqueue_delayed(self, task: str, delay_s: float) -> int:
        due_ns = time.time_ns() + int(delay_s * 1e9)
        await TASKS[task](due_ns).options(delay=delay_s).enqueue()
        return due_ns

    async def run_worker(self) -> None:
        raise SystemExit("run the worker with `rediq worker benchmarks.rediq_app:app`")


if __name__ == "__main__":
    common.main(RediqAdapter())
