"""The results role: looking a task up (in a queue or in every one) with its names,
groups and times, and waiting for its end in the broker: every waiter woken, timeouts
kept, an unknown, deleted or purged task reported."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from rediq_core.errors import TaskNotFoundError
from rediq_core.records import TaskState
from rediq_core.roles import Role

from .helpers import (
    QUEUE,
    WAIT_S,
    WAKE_WAIT_S,
    WORKER,
    CoreBroker,
    RoleContract,
    enqueue_one,
    failure,
    fetch_one,
    success,
)

__all__ = ["ResultsContract"]


class ResultsContract(RoleContract):
    role = Role.RESULTS
    requires: ClassVar[frozenset[Role]] = frozenset({Role.PRODUCER, Role.CONSUMER, Role.CONTROL})

    async def test_queues_and_lookup_without_queue(self, broker: CoreBroker) -> None:
        a = await enqueue_one(broker, queue="alpha")
        b = await enqueue_one(broker, queue="beta")
        assert {"alpha", "beta"} <= set(await broker.queues())
        record = await broker.get_task(b.id)
        assert record is not None and record.queue == "beta"
        assert await broker.get_task(a.id, "beta") is None
        assert await broker.get_task("unknown") is None

    async def test_many_tasks_are_looked_up_at_once(self, broker: CoreBroker) -> None:
        waiting = [await enqueue_one(broker, queue=q) for q in ("alpha", "beta") * 300]
        done = await fetch_one(broker, queue="alpha", limit=1)
        assert await broker.settle(WORKER, [success(done.message)]) == [True]
        asked = [(m.id, m.queue) for m in waiting] + [
            ("unknown", "alpha"),
            (waiting[1].id, "alpha"),
        ]
        found = await broker.get_tasks(asked)
        assert [r.id if r else None for r in found] == [m.id for m in waiting] + [None, None]
        assert [r.queue for r in found if r] == [m.queue for m in waiting]
        states = {r.id: r.state for r in found if r}
        assert states.pop(done.message.id) is TaskState.SUCCEEDED
        assert set(states.values()) == {TaskState.PENDING}
        assert await broker.get_tasks([]) == []

    async def test_records_carry_names_groups_and_times(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker, groups=("g", "user:1"), priority=3)
        record = await broker.get_task(message.id)
        assert record is not None and (record.name, record.priority) == ("contract.task", 3)
        assert record.groups == ("g", "user:1") and record.started_at_ms is None
        assert record.enqueued_at_ms == message.enqueued_at_ms
        delivery = await fetch_one(broker)
        record = await broker.get_task(message.id)
        assert record is not None and record.started_at_ms is not None
        assert record.lease_deadline_ms == delivery.lease_deadline_ms
        await broker.settle(WORKER, [success(message)])
        done = await broker.get_task(message.id)
        assert done is not None and done.state is TaskState.SUCCEEDED
        assert (done.name, done.priority, done.groups) == ("contract.task", 3, ("g", "user:1"))
        assert done.started_at_ms == record.started_at_ms
        assert done.enqueued_at_ms == message.enqueued_at_ms

    async def test_several_waiters_are_all_woken(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        waiters = [
            asyncio.ensure_future(broker.wait_finished(message.id, QUEUE, WAIT_S)) for _ in range(4)
        ]
        await fetch_one(broker)
        assert not any(w.done() for w in waiters), "a waiter returned before the task ended"
        await broker.settle(WORKER, [success(message, b"42")])
        records = await asyncio.gather(*waiters)
        assert all(r is not None and r.result == b"42" for r in records)

    async def test_wait_after_the_task_finished(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        await broker.settle(WORKER, [success(message)])
        record = await asyncio.wait_for(broker.wait_finished(message.id, QUEUE, None), WAIT_S)
        assert record is not None and record.state is TaskState.SUCCEEDED

    async def test_wait_times_out(self, broker: CoreBroker) -> None:
        """A wait ends with None at its timeout, and not before: a longer wait on the same
        unfinished task is still waiting then, and sees the task end."""
        message = await enqueue_one(broker)
        longer = asyncio.ensure_future(broker.wait_finished(message.id, QUEUE, WAKE_WAIT_S))
        short = broker.wait_finished(message.id, QUEUE, 0.2)
        assert await asyncio.wait_for(short, WAIT_S) is None
        assert not longer.done(), "a wait with a longer timeout ended as early"
        await fetch_one(broker)
        await broker.settle(WORKER, [success(message)])
        record = await asyncio.wait_for(longer, WAKE_WAIT_S)
        assert record is not None and record.state is TaskState.SUCCEEDED

    async def test_wait_for_an_unknown_task_raises(self, broker: CoreBroker) -> None:
        await enqueue_one(broker)  # the queue exists; the awaited id does not
        with pytest.raises(TaskNotFoundError):
            await broker.wait_finished("no-such-task", QUEUE, WAIT_S)

    async def test_wait_sees_failure(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        waiter = asyncio.ensure_future(broker.wait_finished(message.id, QUEUE, WAIT_S))
        await fetch_one(broker)
        await broker.settle(WORKER, [failure(message)])
        record = await waiter
        assert record is not None and record.state is TaskState.FAILED

    async def test_waiters_of_a_deleted_or_purged_task_are_told(self, broker: CoreBroker) -> None:
        """A wait ends with TaskNotFoundError when its task is deleted or purged (not at
        its timeout, nor only at a safety net's next check)."""
        deleted, purged = await enqueue_one(broker), await enqueue_one(broker)
        waiters = [
            asyncio.ensure_future(broker.wait_finished(m.id, QUEUE, WAIT_S))
            for m in (deleted, purged)
        ]
        await asyncio.sleep(0.05)  # let the waiters start waiting (either order is correct)
        assert await broker.delete(deleted.id, QUEUE)
        assert await broker.purge_tasks(QUEUE, [TaskState.PENDING, TaskState.SCHEDULED]) == 1
        for outcome in await asyncio.gather(*waiters, return_exceptions=True):
            assert isinstance(outcome, TaskNotFoundError), outcome
