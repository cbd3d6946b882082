"""What the control API asks of a running worker: stop requests, and the counts it
reports in its registry entry (processed and failed tasks)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..records import Settlement
from ..roles import Registry
from .listening import follow
from .settler import Settler

__all__ = ["CountingSettler", "listen_stop_requests"]

log = logging.getLogger("rediq.worker")


class CountingSettler(Settler):
    """A settler that counts tasks that ended here: ``processed`` (succeeded, failed or
    cancelled) and ``failed`` (of those, the ones that did not succeed)."""

    processed = 0
    failed = 0

    async def settle(self, settlement: Settlement) -> bool:
        held = await super().settle(settlement)
        if held and (settlement.error is None or settlement.retry_delay_ms is None):
            self.processed += 1
            if settlement.error is not None:
                self.failed += 1
        return held


async def listen_stop_requests(
    broker: Registry, worker_id: str, on_stop: Callable[[], None]
) -> None:
    """Call ``on_stop`` once an operator asks this worker to stop (``rediq stop-worker``)."""

    def stop(_: None) -> bool:
        log.warning("stop requested by an operator: shutting down gracefully")
        on_stop()
        return True

    await follow("stop-request listener", lambda: broker.stop_requests(worker_id), stop)
