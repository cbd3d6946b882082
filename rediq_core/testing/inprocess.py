"""Run a worker inside the test's own event loop, and point an app at a test broker.

Both work with any broker; with ``memory://`` a test needs no server at all::

    async def test_add():
        async with using_broker(app, "memory://"), run_worker(app):
            handle = await add(1, 2).enqueue()
            assert await handle.result(timeout=5) == 3
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .. import defaults

if TYPE_CHECKING:
    from ..app import Rediq
    from ..worker import Worker

__all__ = ["run_worker", "using_broker"]

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
    from ..worker import Worker, WorkerConfig

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


@contextlib.asynccontextmanager
async def using_broker(
    app: Rediq, url: str, *, namespace: str | None = None
) -> AsyncIterator[Rediq]:
    """Point ``app`` (e.g. the module-level app of the code under test) at ``url`` and
    ``namespace`` for the duration of the block, then back; its broker connections are
    closed on the way in and out. No monkeypatching, and the app's tasks stay bound to it."""
    saved = (app.redis_url, app.namespace)
    await app.close()
    app.redis_url = url
    app.namespace = namespace or saved[1] or defaults.DEFAULT_NAMESPACE
    try:
        yield app
    finally:
        await app.close()
        app.redis_url, app.namespace = saved
