"""The worker's side of task progress and logs (docs/progress-and-logs.md).

Each running attempt has a :class:`~rediq_core.tasklogs.TaskTrail` in its context
(:func:`rediq_core.context.using`); :class:`TrailLogHandler`, on the root logger while
the worker runs, copies every record emitted in an attempt's context into that trail, so
concurrent tasks keep apart. :class:`Trails` sends what they gathered: in the lease
keeper's renewal round (one pipelined call for every attempt with something new) and
right before an attempt's settlement. An attempt that reports nothing costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .. import roles
from ..broker import Lease
from ..context import current_trail
from ..info import TaskInfo
from ..roles import Reports
from ..tasklogs import LogBounds, TaskTrail

__all__ = ["TrailLogHandler", "Trails"]

log = logging.getLogger("rediq.worker.trails")


class TrailLogHandler(logging.Handler):
    """Copies every record emitted within an attempt into that attempt's trail.

    Being a handler on the root logger, it would keep :data:`logging.lastResort` from
    printing warnings of a process that configured no logging (an embedded worker); it
    hands such records to it, as if it were not there."""

    def emit(self, record: logging.LogRecord) -> None:
        last = logging.lastResort
        if last is not None and record.levelno >= last.level and self._alone(record):
            last.handle(record)
        trail = current_trail()
        if trail is None or trail.owner is not self or record.name == log.name:
            return
        try:
            trail.add(record)
        except Exception:
            self.handleError(record)

    def _alone(self, record: logging.LogRecord) -> bool:
        """Whether no other handler sees ``record`` (``Logger.callHandlers``' walk)."""
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return False
            logger = logger.parent if logger.propagate else None
        return True


class Trails:
    """The trails of the attempts running in one worker, and their sending.

    :param broker: the broker (its reports role; without it nothing is sent).
    :param worker_id: the worker whose leases the writes are made under.
    :param bounds: the lines and bytes kept per task.
    """

    def __init__(self, broker: object, worker_id: str, bounds: LogBounds) -> None:
        self._broker: Reports | None = (
            roles.reports(broker) if roles.supports(broker, roles.Role.REPORTS) else None
        )
        self._worker_id, self.bounds = worker_id, bounds
        self._open: dict[Lease, TaskTrail] = {}
        self._lock = asyncio.Lock()
        self._round: asyncio.Task[None] | None = None
        self.handler = TrailLogHandler()
        #: Report calls sent so far (one per round or settlement with something new).
        self.calls = 0

    def open(self, lease: Lease, info: TaskInfo) -> TaskTrail:
        trail = TaskTrail(info.task_id, info.task_queue, lease.delivery, info.retried, self.bounds)
        trail.owner = self.handler
        self._open[lease] = trail
        return trail

    def discard(self, lease: Lease) -> None:
        """Forget an attempt's trail unsent (the lease was handed back or lost)."""
        self._open.pop(lease, None)

    def round(self) -> None:
        """The lease keeper's renewal round (main loop): send what is new, if anything."""
        if self._broker is None or (self._round is not None and not self._round.done()):
            return
        if any(trail.dirty for trail in self._open.values()):
            self._round = asyncio.create_task(self._send(list(self._open.values())))

    def take(self, lease: Lease) -> TaskTrail | None:
        """Before an attempt's settlement: its trail if it reported anything (send the
        rest with :meth:`finish`; the settlement then says it reported), else None."""
        trail = self._open.pop(lease, None)
        return trail if trail is not None and trail.used else None

    async def finish(self, trail: TaskTrail) -> None:
        """Send the rest of a trail :meth:`take` gave."""
        await self._send([trail])

    async def _send(self, trails: list[TaskTrail]) -> None:
        if self._broker is None:
            return
        async with self._lock:  # one send at a time: lines reach the broker in order
            updates = [u for u in (t.take() for t in trails) if u is not None]
            if not updates:
                return
            self.calls += 1
            try:
                written = await self._broker.report(self._worker_id, updates, self.bounds)
            except Exception as exc:
                log.warning(
                    "could not store the progress and logs of %d task(s): %s", len(updates), exc
                )
                return
            for update, ok in zip(updates, written, strict=True):
                if not ok:
                    log.debug("%s: not stored, the lease is no longer held", update.task_id)

    async def close(self) -> None:
        if self._round is not None:
            with contextlib.suppress(Exception):
                await self._round
