"""One fetcher per consumed queue: lease tasks into the local queue, never more than the
free local slots of that queue."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from .. import defaults
from ..broker import Delivery
from ..errors import BrokerUnavailableError
from ..logs import task_extra
from ..roles import Consumer
from .health import BrokerHealth

__all__ = ["Fetcher", "LocalQueue", "Slots"]

log = logging.getLogger("rediq.worker")
#: Prefetched deliveries, lowest priority value first, then in fetch order.
LocalQueue = asyncio.PriorityQueue[tuple[int, int, Delivery]]
_order = itertools.count()


class Slots:
    """How many more tasks this queue may hold locally (prefetched plus running)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self._available = asyncio.Event()
        self._available.set()

    def take(self, count: int) -> None:
        self.free -= count
        if self.free <= 0:
            self._available.clear()

    def give(self) -> None:
        self.free += 1
        self._available.set()

    async def wait(self) -> int:
        while self.free <= 0:
            await self._available.wait()
        return self.free

    @property
    def idle(self) -> bool:
        return self.free == self.size


class Fetcher:
    def __init__(
        self,
        *,
        broker: Consumer,
        queue: str,
        worker_id: str,
        slots: Slots,
        lease_ms: int,
        local: LocalQueue,
        on_leased: Callable[[Delivery], None],
        health: BrokerHealth,
    ) -> None:
        self.broker, self.queue, self.worker_id = broker, queue, worker_id
        self.slots, self.lease_ms, self.local = slots, lease_ms, local
        self.on_leased, self.health = on_leased, health
        #: Set when the worker stops fetching: a fetch that still completes is handed back.
        self.stopped = False

    async def run(self) -> None:
        """Fetch until cancelled (cancelling a blocked fetch loses nothing)."""
        pause = defaults.WORKER_RECONNECT_MIN_S
        while True:
            await self.slots.wait()
            # Let the runners that end in this turn of the event loop free their slots
            # too, so one claim serves them all (a yield, not a timed wait).
            await asyncio.sleep(0)
            limit = await self.slots.wait()
            try:
                batch = await self.broker.fetch(
                    self.queue, worker_id=self.worker_id, limit=limit, lease_ms=self.lease_ms
                )
            except BrokerUnavailableError as exc:
                self.health.failed(f"fetch from queue {self.queue!r}", exc)
                await asyncio.sleep(pause)  # reconnect back-off, not a poll
                pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)
                continue
            except Exception as exc:
                log.warning(
                    "fetch from queue %r failed: %s; retrying in %.1f s", self.queue, exc, pause
                )
                await asyncio.sleep(pause)  # error back-off, not a poll
                pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)
                continue
            self.health.ok()
            pause = defaults.WORKER_RECONNECT_MIN_S
            if self.stopped:
                await self._hand_back(batch.deliveries)
                return
            self.slots.take(len(batch.deliveries))
            for delivery in batch.deliveries:
                self.on_leased(delivery)
                self.local.put_nowait((delivery.message.priority, next(_order), delivery))
            for rejected in batch.rejected:
                log.error(
                    "dead-lettered at fetch: %s",
                    rejected.reason,
                    extra=task_extra(rejected.task_id, "?"),
                )

    async def _hand_back(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            leases = [d.lease for d in deliveries]
            await self.broker.release(self.worker_id, {self.queue: leases})
            log.info("handed back %d task(s) fetched while stopping", len(leases))
