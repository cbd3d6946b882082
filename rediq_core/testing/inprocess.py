"""Run a worker inside the test's own event loop, and point an app at a test broker.

Both work with any broker; with ``memory://`` a test needs no server at all::

    async def test_add():
        async with using_broker(app, "memory://"), run_worker(app):
            handle = await add(1, 2).enqueue()
            assert await handle.result(timeout=5) == 3

``run_worker`` is production code (``lifespan(app, worker=True)`` uses it too), defined
in :mod:`rediq_core.worker.inprocess` and re-exported here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from .. import defaults
from ..worker.inprocess import START_TIMEOUT_S, STOP_TIMEOUT_S, run_worker

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["START_TIMEOUT_S", "STOP_TIMEOUT_S", "run_worker", "using_broker"]


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
