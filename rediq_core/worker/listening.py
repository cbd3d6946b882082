"""Following a broker subscription (cancellations, stop requests, cron changes) for the
life of a worker, subscribing again with backoff when it breaks.

An unreachable broker is the :class:`~.health.BrokerHealth` tracker's to report (one
"lost the connection" line per outage); a listener logs its own attempts at debug level
only, and any other failure once until it changes or the subscription delivers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from .. import defaults
from ..errors import BrokerUnavailableError
from .health import BrokerHealth

__all__ = ["follow"]

log = logging.getLogger("rediq.worker")
T = TypeVar("T")


async def follow(
    what: str,
    subscribe: Callable[[], AsyncIterator[T]],
    on_item: Callable[[T], bool | None],
    *,
    health: BrokerHealth | None = None,
) -> None:
    """Call ``on_item`` with every item of ``subscribe()``, subscribing again after a
    failure, until ``on_item`` returns True (or the caller cancels)."""
    pause = defaults.WORKER_RECONNECT_MIN_S
    reported: str | None = None  # the failure last logged as a warning
    while True:
        try:
            async for item in subscribe():
                pause, reported = defaults.WORKER_RECONNECT_MIN_S, None
                if on_item(item):
                    return
        except BrokerUnavailableError as exc:
            if health is not None:
                health.failed(what, exc)
            log.debug("%s: %s; subscribing again in %.1f s", what, exc, pause)
        except Exception as exc:
            if str(exc) != reported:
                log.warning("%s failed: %s; subscribing again", what, exc)
                reported = str(exc)
            else:
                log.debug("%s failed again: %s", what, exc)
        await asyncio.sleep(pause)  # reconnect back-off, not a poll
        pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)
