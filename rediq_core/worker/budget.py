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
    among the candidates, all weights 1 when fair; the first listed one when strict.

    The shards of a sharded queue (docs/scaling.md) count as their queue: the turn picks
    a queue, then the next of its shards with a fetcher waiting, round-robin."""

    def __init__(
        self,
        queues: Sequence[str],
        order: QueueOrder,
        weights: Mapping[str, int],
        groups: Mapping[str, str],
    ):
        self.order, self.weights = order, weights
        #: Some queue has several shards (else every queue is its own group).
        self.sharded = False
        #: queue (a shard's queue) -> its broker queues, in order
        self.members: dict[str, list[str]] = {}
        self.group: dict[str, str] = {}
        self.weight: dict[str, int] = {}
        self.current: dict[str, int] = {}
        self.next_member: dict[str, int] = {}
        for queue in queues:
            self.add(queue, groups.get(queue, queue))

    def add(self, queue: str, group: str) -> None:
        if queue in self.group:
            return
        self.group[queue] = group
        if group not in self.members:
            self.members[group] = []
            weighted = self.order is QueueOrder.WEIGHTED
            self.weight[group] = self.weights.get(group, 1) if weighted else 1
            self.current[group], self.next_member[group] = 0, 0
        self.members[group].append(queue)
        self.sharded = self.sharded or len(self.members[group]) > 1

    def pick(self, waiting: Collection[str]) -> str:
        candidates = [g for g, qs in self.members.items() if any(q in waiting for q in qs)]
        if self.order is QueueOrder.STRICT:
            best = candidates[0]
        else:
            for group in candidates:
                self.current[group] += self.weight[group]
            best = max(candidates, key=self.current.__getitem__)  # the first listed on ties
            self.current[best] -= sum(self.weight[g] for g in candidates)
        members = self.members[best]
        if len(members) == 1:
            return members[0]
        start = self.next_member[best]
        for step in range(len(members)):
            queue = members[(start + step) % len(members)]
            if queue in waiting:
                self.next_member[best] = (start + step + 1) % len(members)
                return queue
        raise AssertionError("a candidate queue has no waiting member")


class Budget:
    """The worker's slots; every method runs on the worker's event loop."""

    def __init__(
        self,
        size: int,
        queues: Sequence[str],
        order: QueueOrder = QueueOrder.FAIR,
        weights: Mapping[str, int] | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        """``groups`` maps a shard to its queue (the turn of a sharded queue is shared by
        its shards); ``weights`` are by queue."""
        self.size = size
        #: Slots of leased tasks (running or prefetched).
        self.held = 0
        self._granted = dict.fromkeys(queues, 0)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._turns = _Turns(queues, order, weights or {}, groups or {})
        self._scheduled = False

    def add(self, queue: str, group: str) -> None:
        """Share the slots with one more queue (a shard of ``group`` found later)."""
        self._granted.setdefault(queue, 0)
        self._turns.add(queue, group)

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
        the rest of its grant is free again at once, and another shard of its queue may
        claim."""
        granted, self._granted[queue] = self._granted[queue], 0
        assert used <= granted, f"claimed {used} tasks with {granted} slots"
        self.held += used
        if used < granted or self._turns.sharded:
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
        """Grant the free slots one at a time by the order. The shards of one queue claim
        one at a time: while one shard's grant is out (its claim in flight), the queue's
        turns go to that shard alone, so its claim takes every slot the queue gets and
        the next shard's claim, in turn, the slots freed meanwhile (claims as large as an
        unsharded queue's: as few script calls per task)."""
        self._scheduled = False
        free = self.free
        sharded, group = self._turns.sharded, self._turns.group
        claiming = {group[q] for q, n in self._granted.items() if n} if sharded else set()
        while free > 0:
            # without shards, a queue's group is itself: every waiting queue is eligible
            eligible = [q for q in self._waiting if self._granted[q] or group[q] not in claiming]
            if not eligible:
                return
            queue = self._turns.pick(eligible)
            claiming.add(group[queue])
            self._granted[queue] += 1
            free -= 1
            waiter = self._waiting[queue]
            if not waiter.done():
                waiter.set_result(None)
