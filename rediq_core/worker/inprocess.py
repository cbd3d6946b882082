"""Run a worker inside an event loop that is already running (the caller's).

Production code uses it (``lifespan(app, worker=True)`` runs a worker in the web
process) and tests do too (``rediq.testing.run_worker`` re-exports it), so it lives
here, beside the worker, and not in the testing package that production code must never
import. It is not exported from :mod:`rediq_core.worker`, whose ``run_worker`` is the
blocking one the CLI runs in a new event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .config import WorkerConfig
from .orchestrator import Worker

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["START_TIMEOUT_S", "STOP_TIMEOUT_S", "run_worker"]

#: How long run_worker waits for the worker to start, then to stop.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@contextlib.asynccontextmanager
async def run_worker(app: Rediq, **config: Any) -> AsyncIterator[Worker]:
    """Start a worker for ``app`` in the running event loop; yield it once it consumes its
    queues; on exit stop it gracefully (running and prefetched tasks finish) and re-raise
    anything it failed with. ``config`` holds :class:`~rediq_core.worker.WorkerConfig`
    fields (e.g. ``queues=("mail",)``, ``task_concurrency=1``, ``burst=True``); signal
    handlers are not installed."""
    worker = Worker(app, WorkerConfig(**{"handle_signals": False, **config}))
    running = asyncio.create_task(worker.run(), name="rediq-test-worker")
    ready = asyncio.create_task(worker.ready.wait())
    await asyncio.wait(
        {running, ready}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    if not ready.done():
        ready.cancel()
        if running.done():
            running.result()  # raises what stopped it
        running.cancel()
        raise TimeoutError(f"the worker did not start within {START_TIMEOUT_S} s")
    try:
        yield worker
    finally:
        worker.request_shutdown()
        await asyncio.wait_for(running, STOP_TIMEOUT_S)
