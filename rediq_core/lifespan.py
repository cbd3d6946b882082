"""ASGI lifespan integration (FastAPI, Starlette, or anything that takes a lifespan).

::

    from fastapi import FastAPI
    from rediq import lifespan

    api = FastAPI(lifespan=lifespan(app))

On shutdown the app's broker connections are closed. With ``worker=True`` a worker runs
inside the web process too (development, small deployments); it stops gracefully, its
running tasks finishing, before the connections close.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Rediq

__all__ = ["lifespan"]


def lifespan(
    app: Rediq, *, worker: bool = False, **worker_config: Any
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A lifespan function for an ASGI framework: ``FastAPI(lifespan=lifespan(app))``.

    To combine it with a lifespan of your own, enter it inside yours:
    ``async with lifespan(app)(asgi_app): yield``.

    :param worker: also run a worker in the web process (``worker_config``: the fields
        of :class:`~rediq_core.worker.WorkerConfig`, e.g. ``queues=("mail",)``).
    """

    @contextlib.asynccontextmanager
    async def run(asgi_app: Any) -> AsyncIterator[None]:
        try:
            if worker:
                from .worker.inprocess import run_worker

                async with run_worker(app, **worker_config):
                    yield
            else:
                yield
        finally:
            await app.close()

    return run
