"""Batched settlement: attempts that end while a settle call is in flight are sent
together in the next one (one pipelined round trip per batch, no timer).

While the broker is unreachable a batch is kept and sent again with backoff (each
settlement keeps its idempotency key, so one that did reach the broker answers instead
of applying twice) for up to ``SETTLE_RETRY_S``; only then is it given up, and the task
runs again once its lease expires.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .. import defaults
from ..broker import Settlement
from ..errors import BrokerUnavailableError
from ..roles import Consumer
from .health import BrokerHealth

__all__ = ["Settler"]

log = logging.getLogger("rediq.worker")

_Pending = tuple[Settlement, "asyncio.Future[bool]", float]


class Settler:
    def __init__(
        self,
        broker: Consumer,
        worker_id: str,
        health: BrokerHealth | None = None,
        retry_s: float = defaults.SETTLE_RETRY_S,
    ) -> None:
        self._broker = broker
        self._worker_id = worker_id
        self._health = health or BrokerHealth(str(getattr(broker, "url", "the broker")))
        self._retry_s = retry_s
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def settle(self, settlement: Settlement) -> bool:
        """Record how an attempt ended; False if the lease was no longer held (or the
        broker stayed unreachable: the lease then expires and the task runs again)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((settlement, future, time.monotonic() + self._retry_s))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="rediq-settler")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        pause = defaults.WORKER_RECONNECT_MIN_S
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                answers = await self._broker.settle(self._worker_id, [s for s, _, _ in batch])
            except BrokerUnavailableError as exc:
                self._health.failed("settle", exc)
                kept = self._give_up_expired(batch, exc)
                self._pending = kept + self._pending
                await asyncio.sleep(pause)  # reconnect back-off, not a poll
                pause = min(pause * 2, defaults.WORKER_RECONNECT_MAX_S)
                continue
            except Exception as exc:
                log.error(
                    "could not settle %d task(s): %s; their leases will expire and"
                    " they will run again",
                    len(batch),
                    exc,
                )
                answers = [False] * len(batch)
            else:
                self._health.ok()
                pause = defaults.WORKER_RECONNECT_MIN_S
            for (_, future, _), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    def _give_up_expired(self, batch: list[_Pending], exc: Exception) -> list[_Pending]:
        now = time.monotonic()
        kept = [item for item in batch if item[2] > now]
        expired = [item for item in batch if item[2] <= now]
        if expired:
            log.error(
                "gave up settling %d task(s) after %.0f s without the broker (%s);"
                " they run again once their leases expire",
                len(expired),
                self._retry_s,
                exc,
            )
        for _, future, _ in expired:
            if not future.done():
                future.set_result(False)
        return kept

    async def drain(self) -> None:
        """Wait until every settlement handed in so far has been sent (or given up)."""
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
