"""The limits role: concurrency limits and rates checked when a worker claims, limited
tasks that wait without holding back the tasks behind them, fair order by key, the
queue's own limits, and tasks that end ``expired`` by their expiry or deadline
(:mod:`rediq_core.flow`)."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Protocol

from rediq_core.flow import EXPIRED_ERROR_TYPE, SUPERSEDED_ERROR_TYPE, Flow, QueueLimits, Rate
from rediq_core.message import TaskMessage
from rediq_core.records import TaskState
from rediq_core.roles import Limits, Role

from .helpers import (
    LEASE_MS,
    QUEUE,
    WAIT_S,
    CoreBroker,
    RoleContract,
    failure,
    fetch,
    fetch_nothing,
    make_message,
    started_at,
    success,
)

__all__ = ["LimitsContract"]

#: The queue whose claims read the broker's clock.
CLOCK = "contract-clock"
#: Two starts a second, one at a time (no burst).
TWO_PER_SECOND = Rate(2, 1000, 1)


class LimitedBroker(CoreBroker, Limits, Protocol):
    """A broker with the core roles and limits."""


def limited(n: int, flow: Flow, **overrides: Any) -> list[TaskMessage]:
    return [make_message(flow=flow, **overrides) for _ in range(n)]


def ids(batch: Any) -> list[str]:
    return [d.message.id for d in batch.deliveries]


class LimitsContract(RoleContract):
    role = Role.LIMITS
    requires: ClassVar[frozenset[Role]] = frozenset(
        {Role.PRODUCER, Role.CONSUMER, Role.RESULTS, Role.CONTROL}
    )

    async def state(self, broker: LimitedBroker, message: TaskMessage) -> TaskState | None:
        record = await broker.get_task(message.id, message.queue)
        return record.state if record else None

    async def test_a_full_concurrency_limit_holds_tasks_until_a_slot_frees(
        self, broker: LimitedBroker
    ) -> None:
        first, second, third = limited(3, Flow(concurrency=(("c:t", 2),)))
        await broker.enqueue([first, second, third])
        assert ids(await fetch(broker)) == [first.id, second.id]
        assert await self.state(broker, third) is TaskState.LIMITED
        await fetch_nothing(broker)
        assert await broker.settle("worker-1", [success(first)]) == [True]
        assert ids(await fetch(broker)) == [third.id]

    async def test_a_limited_task_never_holds_back_the_tasks_behind_it(
        self, broker: LimitedBroker
    ) -> None:
        blocked = limited(3, Flow(concurrency=(("c:t", 1),)))
        free = make_message()
        await broker.enqueue([*blocked, free])
        assert ids(await fetch(broker, limit=2)) == [blocked[0].id, free.id]
        assert [await self.state(broker, m) for m in blocked[1:]] == [TaskState.LIMITED] * 2

    async def test_priority_holds_among_the_tasks_that_may_start(
        self, broker: LimitedBroker
    ) -> None:
        flow = Flow(concurrency=(("c:t", 1),))
        running = make_message(flow=flow, priority=5)
        await broker.enqueue([running])
        assert ids(await fetch(broker)) == [running.id]
        urgent = make_message(flow=flow, priority=-5)
        later = make_message(priority=0)
        await broker.enqueue([urgent, later])
        assert ids(await fetch(broker)) == [later.id]  # the urgent one may not start yet
        newer = make_message(priority=0)
        await broker.enqueue([newer])
        await broker.settle("worker-1", [success(running)])
        assert ids(await fetch(broker, limit=1)) == [urgent.id]  # back before lower priorities

    async def test_limits_with_other_keys_are_apart(self, broker: LimitedBroker) -> None:
        a = limited(2, Flow(concurrency=(("c:t:a", 1),)))
        b = limited(2, Flow(concurrency=(("c:t:b", 1),)))
        await broker.enqueue([*a, *b])
        assert sorted(ids(await fetch(broker))) == sorted([a[0].id, b[0].id])

    async def test_a_retry_and_a_lost_lease_give_the_slot_back(self, broker: LimitedBroker) -> None:
        first, second = limited(2, Flow(concurrency=(("c:t", 1),)), max_retries=1)
        await broker.enqueue([first, second])
        assert ids(await fetch(broker)) == [first.id]
        await broker.settle("worker-1", [failure(first, retry_delay_ms=60_000)])
        assert ids(await fetch(broker, lease_ms=300)) == [second.id]
        # the worker holding `second` dies: its lease expires and the slot comes back
        batch = await fetch(broker, worker_id="worker-2", lease_ms=LEASE_MS)
        assert ids(batch) == [second.id] and batch.deliveries[0].lost == 1

    async def test_a_rate_spaces_starts_on_the_brokers_clock(self, broker: LimitedBroker) -> None:
        first, second, third = limited(3, Flow(rates=(("r:t", TWO_PER_SECOND),)))
        free = make_message()
        await broker.enqueue([first, second, third, free])
        assert ids(await fetch(broker)) == [first.id, free.id]
        assert await self.state(broker, second) is TaskState.LIMITED
        assert ids(await fetch(broker)) == [second.id]  # woken by the next token
        assert ids(await fetch(broker)) == [third.id]
        starts = [await started_at(broker, m) for m in (first, second, third)]
        assert starts[1] - starts[0] >= 499 and starts[2] - starts[1] >= 499, starts

    async def test_a_rate_allows_its_burst_at_once(self, broker: LimitedBroker) -> None:
        messages = limited(5, Flow(rates=(("r:t", Rate(3, 1000, 3)),)))
        await broker.enqueue(messages)
        assert ids(await fetch(broker)) == [m.id for m in messages[:3]]

    async def test_fair_keys_take_turns(self, broker: LimitedBroker) -> None:
        heavy = limited(20, Flow(fair="a"))
        await broker.enqueue(heavy)
        assert ids(await fetch(broker, limit=2)) == [heavy[0].id, heavy[1].id]
        light = make_message(flow=Flow(fair="b"))
        await broker.enqueue([light])
        assert ids(await fetch(broker, limit=1)) == [light.id]  # next, not after a's 18
        assert ids(await fetch(broker, limit=1)) == [heavy[2].id]

    async def test_a_limited_task_can_be_cancelled_deleted_and_purged(
        self, broker: LimitedBroker
    ) -> None:
        running, *waiting = limited(4, Flow(concurrency=(("c:t", 1),)))
        await broker.enqueue([running, *waiting])
        assert ids(await fetch(broker)) == [running.id]
        await broker.fetch(QUEUE, worker_id="worker-1", limit=10, lease_ms=LEASE_MS, wait=False)
        page = await broker.list_tasks(QUEUE, TaskState.LIMITED)
        assert [r.id for r in page.tasks] == [m.id for m in waiting]
        assert (await broker.cancel(waiting[0].id, QUEUE)).value == "cancelled"
        assert await broker.delete(waiting[1].id, QUEUE)
        assert await broker.purge_tasks(QUEUE, [TaskState.LIMITED]) == 1
        assert (await broker.queue_stats(QUEUE)).limited == 0
        await broker.settle("worker-1", [success(running)])
        assert ids(await fetch(broker, wait=False)) == []

    async def test_the_queues_own_limits_apply_to_every_task(self, broker: LimitedBroker) -> None:
        await broker.set_limits(QUEUE, QueueLimits(concurrency=1))
        messages = [make_message() for _ in range(3)]
        await broker.enqueue(messages)
        assert ids(await fetch(broker)) == [messages[0].id]
        flow = await broker.limits(QUEUE)
        assert flow.limits == QueueLimits(concurrency=1)
        uses = {use.name: use for use in flow.uses}
        assert (uses["c"].running, uses["c"].limited) == (1, 2), flow
        assert (await broker.queue_stats(QUEUE)).limited == 2
        await broker.set_limits(QUEUE, QueueLimits())  # cleared: the waiting ones start
        assert ids(await fetch(broker)) == [m.id for m in messages[1:]]
        assert (await broker.limits(QUEUE)).limits == QueueLimits()

    async def test_raising_a_queue_limit_lets_waiting_tasks_start(
        self, broker: LimitedBroker
    ) -> None:
        await broker.set_limits(QUEUE, QueueLimits(concurrency=1, rate=Rate(1000, 1000, 100)))
        messages = [make_message() for _ in range(3)]
        await broker.enqueue(messages)
        assert ids(await fetch(broker)) == [messages[0].id]
        waiter = asyncio.ensure_future(fetch(broker, worker_id="worker-2"))
        await self.wait_until_blocked(broker, waiter)
        await broker.set_limits(QUEUE, QueueLimits(concurrency=3))
        batch = await asyncio.wait_for(waiter, WAIT_S)
        assert ids(batch) == [m.id for m in messages[1:]]

    async def test_the_use_of_task_limits_is_reported(self, broker: LimitedBroker) -> None:
        messages = limited(3, Flow(concurrency=(("c:t:a", 1),), rates=(("r:t", TWO_PER_SECOND),)))
        await broker.enqueue(messages)
        assert ids(await fetch(broker)) == [messages[0].id]
        await fetch(broker, wait=False)
        flow = await broker.limits(QUEUE)
        uses = {use.name: use for use in flow.uses}
        assert uses["c:t:a"].running == 1 and uses["c:t:a"].kind == "concurrency"
        assert sum(use.limited for use in flow.uses) == 2

    async def clock(self, broker: LimitedBroker) -> int:
        """The broker's clock, read by a claim of another queue (a claim of this one would
        end the tasks these tests wait to see ended)."""
        sentinel = make_message(CLOCK, result_ttl_s=0)
        await broker.enqueue([sentinel])
        assert ids(await fetch(broker, queue=CLOCK)) == [sentinel.id]
        now = await started_at(broker, sentinel)
        assert await broker.settle("worker-1", [success(sentinel)]) == [True]
        return now

    async def until_broker_time(self, broker: LimitedBroker, at_ms: int) -> None:
        """Wait (bounded) until the broker's clock passed ``at_ms``."""
        for _ in range(int(WAIT_S / 0.05)):
            if await self.clock(broker) > at_ms:
                return
            await asyncio.sleep(0.05)  # re-check interval of a bounded wait
        raise AssertionError(f"the broker's clock did not pass {at_ms} within {WAIT_S} s")

    async def expired_by_claim(self, broker: LimitedBroker, message: TaskMessage) -> None:
        """The next claim ends the task expired; it never runs."""
        batch = await fetch(broker, wait=False)
        assert ids(batch) == [] and [e.task_id for e in batch.expired] == [message.id], batch
        assert batch.expired[0].name == message.name
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.EXPIRED, record
        assert record.error is not None and record.error.type == EXPIRED_ERROR_TYPE
        assert (await broker.queue_stats(QUEUE)).expired == 1

    async def test_a_task_not_started_by_its_expiry_ends_expired(
        self, broker: LimitedBroker
    ) -> None:
        late = make_message(flow=Flow(expires_ms=200), delay_ms=60_000)  # due after it
        await broker.enqueue([late])
        begun = await self.clock(broker)  # after the enqueue: its expiry is before begun + 200
        await self.until_broker_time(broker, begun + 200)
        await self.expired_by_claim(broker, late)
        record = await broker.get_task(late.id, QUEUE)
        assert record is not None and record.error is not None
        assert "expiry" in record.error.message

    async def test_a_started_task_does_not_expire(self, broker: LimitedBroker) -> None:
        task = make_message(flow=Flow(expires_ms=300), max_retries=1)
        await broker.enqueue([task])
        assert ids(await fetch(broker)) == [task.id]
        await broker.settle("worker-1", [failure(task, retry_delay_ms=500)])
        batch = await fetch(broker)  # its retry comes after the expiry time: it runs
        assert ids(batch) == [task.id] and batch.expired == []

    async def test_no_retry_starts_after_the_deadline(self, broker: LimitedBroker) -> None:
        task = make_message(flow=Flow(deadline_ms=300), max_retries=3)
        await broker.enqueue([task])
        assert ids(await fetch(broker)) == [task.id]
        begun = await started_at(broker, task)
        await broker.settle("worker-1", [failure(task, retry_delay_ms=60_000)])
        await self.until_broker_time(broker, begun + 300)
        await self.expired_by_claim(broker, task)  # at its deadline, not its retry's time

    async def test_a_deadline_passed_while_running_refuses_the_retry(
        self, broker: LimitedBroker
    ) -> None:
        task = make_message(flow=Flow(deadline_ms=200), max_retries=3)
        await broker.enqueue([task])
        assert ids(await fetch(broker)) == [task.id]
        await self.until_broker_time(broker, await started_at(broker, task) + 200)
        assert await broker.settle("worker-1", [failure(task, retry_delay_ms=0)]) == [True]
        batch = await fetch(broker)  # the refused retry wakes a worker: it ends it expired
        assert ids(batch) == [] and [e.task_id for e in batch.expired] == [task.id], batch

    async def test_a_unique_task_is_held_until_it_ends(self, broker: LimitedBroker) -> None:
        first, again, later = (make_message(flow=Flow(unique=("u:t:k", "d"))) for _ in range(3))
        await broker.enqueue([first])
        [duplicate] = await broker.enqueue([again])
        assert not duplicate.accepted and duplicate.task_id == first.id  # answers with it
        assert await broker.get_task(again.id, QUEUE) is None
        assert ids(await fetch(broker)) == [first.id]
        [running] = await broker.enqueue([again])  # started is not done
        assert not running.accepted and running.task_id == first.id
        await broker.settle("worker-1", [success(first)])
        [stored] = await broker.enqueue([later])
        assert stored.accepted and stored.task_id == later.id

    async def test_a_task_unique_until_started_frees_its_key_when_it_starts(
        self, broker: LimitedBroker
    ) -> None:
        first, again, later = (make_message(flow=Flow(unique=("u:t:k", "s"))) for _ in range(3))
        await broker.enqueue([first])
        assert not (await broker.enqueue([again]))[0].accepted
        assert ids(await fetch(broker)) == [first.id]
        assert (await broker.enqueue([later]))[0].accepted
        # a cancelled or dead-lettered holder frees its key too
        assert (await broker.cancel(later.id, QUEUE)).value == "cancelled"
        assert (await broker.enqueue([again]))[0].accepted

    async def test_a_burst_of_debounced_calls_runs_the_last_once(
        self, broker: LimitedBroker
    ) -> None:
        calls = [make_message(flow=Flow(debounce=("b:t", 300))) for _ in range(3)]
        begun = await self.clock(broker)
        for call in calls:
            [outcome] = await broker.enqueue([call])
            assert outcome.accepted and outcome.state is TaskState.SCHEDULED
        for superseded in calls[:2]:
            record = await broker.get_task(superseded.id, QUEUE)
            assert record is not None and record.state is TaskState.CANCELLED, record
            assert record.error is not None and record.error.type == SUPERSEDED_ERROR_TYPE
        assert ids(await fetch(broker)) == [calls[2].id]  # woken at its due time
        assert await started_at(broker, calls[2]) >= begun + 300
        after = make_message(flow=Flow(debounce=("b:t", 300)))
        await broker.enqueue([after])  # the last one started: this is a new burst
        assert (await broker.get_task(calls[2].id, QUEUE)).state is TaskState.ACTIVE  # type: ignore[union-attr]

    async def test_a_claim_takes_every_task_a_refilled_bucket_allows(
        self, broker: LimitedBroker
    ) -> None:
        messages = limited(10, Flow(rates=(("r:t", Rate(50, 1000, 5)),)))
        await broker.enqueue(messages)
        first = await fetch(broker, wait=False)
        assert ids(first) == [m.id for m in messages[:5]]  # the bucket
        await self.until_broker_time(broker, await started_at(broker, messages[0]) + 300)
        second = await fetch(broker, wait=False)  # the bucket is full again: 5 more
        assert ids(second) == [m.id for m in messages[5:]]

    async def test_purging_pending_tasks_leaves_the_limited_ones(
        self, broker: LimitedBroker
    ) -> None:
        running, *waiting = limited(4, Flow(concurrency=(("c:t", 1),)))
        await broker.enqueue([running, *waiting])
        assert ids(await fetch(broker)) == [running.id]
        await broker.settle("worker-1", [success(running)])  # the limit has room again
        removed = await broker.purge_tasks(QUEUE, [TaskState.PENDING])
        assert removed <= 1  # the lane's first task, if the freed slot moved it to pending
        for task in waiting[1:]:  # the lane's others stay
            assert await broker.get_task(task.id, QUEUE) is not None, task.id
