"""Batched settlement: attempts that end while a settle call is in flight are sent
together in the next one (one pipelined round trip per batch, no timer)."""

from __future__ import annotations

import asyncio
import logging

from ..broker import Broker, Settlement

__all__ = ["Settler"]

log = logging.getLogger("rediq.worker")


class Settler:
    def __init__(self, broker: Broker, worker_id: str) -> None:
        self._broker = broker
        self._worker_id = worker_id
        self._pending: list[tuple[Settlement, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def settle(self, settlement: Settlement) -> bool:
        """Record how an attempt ended; False if the lease was no longer held (or the
        broker failed: the lease then expires and the task runs again)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((settlement, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="rediq-settler")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                answers = await self._broker.settle(self._worker_id, [s for s, _ in batch])
            except Exception as exc:
                log.error("could not settle %d task(s): %s; their leases will expire and"
                          " they will run again", len(batch), exc)
                answers = [False] * len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    async def drain(self) -> None:
        """Wait until every settlement handed in so far has been sent."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
