"""One fetcher per consumed queue: lease tasks into the local queue, never more than the
worker's budget has free slots for (:mod:`.budget`)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable

from .. import defaults
from ..broker import Delivery, Expired, FetchBatch
from ..errors import BrokerUnavailableError
from ..logs import task_extra
from ..roles import Consumer
from .budget import Budget
from .health import BrokerHealth

__all__ = ["Fetcher", "LocalQueue"]

log = logging.getLogger("rediq.worker")
#: Prefetched deliveries, lowest priority value first, then in fetch order.
LocalQueue = asyncio.PriorityQueue[tuple[int, int, Delivery]]
_order = itertools.count()


class Fetcher:
    """Leases the tasks of one queue into the local queue, within the worker's budget.

    While its queue probably has due tasks (its last claim used every slot it had), it
    asks the budget for slots and claims that many without waiting. Otherwise it waits
    in the broker (blocked on the queue's wake-up, holding no slot) and keeps what the
    budget still has room for when work arrives; the rest goes back to the queue at once.
    """

    def __init__(
        self,
        *,
        broker: Consumer,
        queue: str,
        worker_id: str,
        budget: Budget,
        lease_ms: int,
        local: LocalQueue,
        on_leased: Callable[[Delivery], None],
        health: BrokerHealth,
        on_expired: Callable[[Expired, str], Awaitable[None]] | None = None,
    ) -> None:
        self.broker, self.queue, self.worker_id = broker, queue, worker_id
        self.budget, self.lease_ms, self.local = budget, lease_ms, local
        self.on_leased, self.health, self.on_expired = on_leased, health, on_expired
        #: Set when the worker stops fetching: a fetch that still completes is handed back.
        self.stopped = False

    async def run(self) -> None:
        """Fetch until cancelled (cancelling a blocked fetch loses nothing)."""
        pause = defaults.WORKER_RECONNECT_MIN_S
        due = True
        while not self.stopped:
            try:
                due = await (self._claim() if due else self._wait_for_work())
            except BrokerUnavailableError as exc:
                self.health.failed(f"fetch from queue {self.queue!r}", exc)
            except Exception as exc:
                log.warning(
                    "fetch from queue %r failed: %s; retrying in %.1f s", self.queue, exc, pause
                )
            else:
                self.health.ok()
                pause = defaults.WORKER_RECONNECT_MIN_S
                continue
            await asyncio.sleep(pause)  # reconnect or error back-off, not a poll
            pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)

    async def _claim(self) -> bool:
        """Claim with the slots granted, without waiting; True if it used them all."""
        limit = await self.budget.acquire(self.queue)
        try:
            batch = await self.broker.fetch(
                self.queue,
                worker_id=self.worker_id,
                limit=limit,
                lease_ms=self.lease_ms,
                wait=False,
            )
        except BaseException:
            self.budget.settle(self.queue, 0)
            raise
        if self.stopped:
            self.budget.settle(self.queue, 0)
            await self._hand_back(batch.deliveries, "fetched while stopping")
            return False
        self.budget.settle(self.queue, len(batch.deliveries))
        self._take(batch)
        await self._report(batch)
        return len(batch.deliveries) + len(batch.rejected) >= limit

    async def _wait_for_work(self) -> bool:
        """Wait in the broker for due tasks, holding no slot; keep those that fit."""
        limit = max(1, self.budget.spare)
        batch = await self.broker.fetch(
            self.queue, worker_id=self.worker_id, limit=limit, lease_ms=self.lease_ms
        )
        if self.stopped:
            await self._hand_back(batch.deliveries, "fetched while stopping")
            return False
        fits = self.budget.admit(len(batch.deliveries))
        self._take(FetchBatch(batch.deliveries[:fits], batch.rejected))
        await self._hand_back(batch.deliveries[fits:], "leased while every slot was taken")
        await self._report(batch)
        if fits:
            await _runners_first()
        return fits < len(batch.deliveries) or len(batch.deliveries) + len(batch.rejected) >= limit

    def _take(self, batch: FetchBatch) -> None:
        for delivery in batch.deliveries:
            self.on_leased(delivery)
            self.local.put_nowait((delivery.message.priority, next(_order), delivery))
        for rejected in batch.rejected:
            log.error(
                "dead-lettered at fetch: %s",
                rejected.reason,
                extra=task_extra(rejected.task_id, "?"),
            )

    async def _report(self, batch: FetchBatch) -> None:
        """Tell the plugins of the tasks the claim ended ``expired``."""
        for expired in batch.expired:
            log.info(
                "expired at fetch: %s",
                expired.reason,
                extra=task_extra(expired.task_id, expired.name),
            )
            if self.on_expired is not None:
                await self.on_expired(expired, self.queue)

    async def _hand_back(self, deliveries: list[Delivery], why: str) -> None:
        if deliveries:
            leases = [d.lease for d in deliveries]
            # Shielded: a stop arriving now must not leave them leased until they expire.
            await asyncio.shield(self.broker.release(self.worker_id, {self.queue: leases}))
            log.debug("queue %r: handed back %d task(s) %s", self.queue, len(leases), why)


async def _runners_first() -> None:
    """Yield until the runners have started what was just put in the local queue, before
    this fetcher registers and waits again: a runner's wake-up is already scheduled, and
    the attempt it creates takes its first step one iteration later. Without this, a
    task handed to an idle worker waited for the next wait's registration to be sent
    (~90 us of its pickup)."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
