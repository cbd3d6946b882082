"""One budget of local slots shared by every queue a worker consumes.

A slot is a leased task held by the worker: running, or prefetched and waiting for a
runner; the budget has ``task_concurrency + queue_size`` of them. The fetcher of a queue
that probably has due tasks asks for slots (:meth:`Budget.acquire`); free slots are
granted one at a time among the waiting fetchers in the order the worker's
:class:`QueueOrder` picks, and what a claim did not use is free again at once
(:meth:`Budget.settle`). A fetcher whose queue has nothing due holds no slot while it
waits in the broker: what it leases when work arrives takes the slots still free
(:meth:`Budget.admit`) and the rest goes back to the queue.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Collection, Mapping, Sequence

__all__ = ["Budget", "QueueOrder"]


class QueueOrder(enum.StrEnum):
    """Which waiting queue gets a free slot (``--queue-order``)."""

    #: Round-robin among the queues with due tasks.
    FAIR = "fair"
    #: The first queue, as listed, with due tasks (a later one runs when those are idle).
    STRICT = "strict"
    #: Weighted round-robin among the queues with due tasks (``--queue-name name:weight``).
    WEIGHTED = "weighted"


class _Turns:
    """Picks the queue that gets the next slot: smooth weighted round-robin (nginx's)
    among the candidates, all weights 1 when fair; the first listed one when strict."""

    def __init__(self, queues: Sequence[str], order: QueueOrder, weights: Mapping[str, int]):
        self.queues, self.order = tuple(queues), order
        weighted = order is QueueOrder.WEIGHTED
        self.weight = {q: weights.get(q, 1) if weighted else 1 for q in self.queues}
        self.current = dict.fromkeys(self.queues, 0)

    def pick(self, waiting: Collection[str]) -> str:
        candidates = [q for q in self.queues if q in waiting]
        if self.order is QueueOrder.STRICT:
            return candidates[0]
        for queue in candidates:
            self.current[queue] += self.weight[queue]
        best = max(candidates, key=self.current.__getitem__)  # the first listed on ties
        self.current[best] -= sum(self.weight[q] for q in candidates)
        return best


class Budget:
    """The worker's slots; every method runs on the worker's event loop."""

    def __init__(
        self,
        size: int,
        queues: Sequence[str],
        order: QueueOrder = QueueOrder.FAIR,
        weights: Mapping[str, int] | None = None,
    ) -> None:
        self.size = size
        #: Slots of leased tasks (running or prefetched).
        self.held = 0
        self._granted = dict.fromkeys(queues, 0)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._turns = _Turns(queues, order, weights or {})
        self._scheduled = False

    @property
    def free(self) -> int:
        return self.size - self.held - sum(self._granted.values())

    @property
    def spare(self) -> int:
        """Free slots no fetcher waits for."""
        return 0 if self._waiting else self.free

    @property
    def idle(self) -> bool:
        """No task is held."""
        return self.held == 0

    async def acquire(self, queue: str) -> int:
        """Wait for slots for ``queue``'s fetcher; return how many it was granted (at
        least one). It must :meth:`settle` them after its claim."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[queue] = waiter
        self._schedule()
        try:
            # Granted in a later turn of the event loop, so that the runners ending in
            # this one free their slots first and one claim serves them all.
            await waiter
        except BaseException:
            self.settle(queue, 0)
            raise
        finally:
            del self._waiting[queue]
        return self._granted[queue]

    def settle(self, queue: str, used: int) -> None:
        """The claim of ``queue``'s fetcher leased ``used`` tasks: they keep their slots;
        the rest of its grant is free again at once."""
        granted, self._granted[queue] = self._granted[queue], 0
        assert used <= granted, f"claimed {used} tasks with {granted} slots"
        self.held += used
        if used < granted:
            self._schedule()

    def admit(self, count: int) -> int:
        """Tasks leased without a grant (a fetch that waited for work): hold as many of
        them as slots are free; return how many."""
        fits = min(count, max(0, self.free))
        self.held += fits
        return fits

    def give(self) -> None:
        """A held task ended: its slot is free."""
        self.held -= 1
        self._schedule()

    def _schedule(self) -> None:
        if self._waiting and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._grant)

    def _grant(self) -> None:
        self._scheduled = False
        free = self.free
        while free > 0 and self._waiting:
            queue = self._turns.pick(self._waiting)
            self._granted[queue] += 1
            free -= 1
            waiter = self._waiting[queue]
            if not waiter.done():
                waiter.set_result(None)
