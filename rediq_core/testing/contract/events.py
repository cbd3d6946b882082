"""The events role: every task transition recorded in its queue's stream, in order, with
the task's name, attempt and detail; resuming after an event id gives exactly the later
events; a stream keeps about its configured length; length 0 records nothing
(:mod:`rediq_core.task_events`).

The tests need a broker that records events: :meth:`EventsContract.events_broker` builds
one like the ``broker`` fixture's (``type(broker)(replace(broker.options, ...))``, same
store and namespace) with the lengths of :data:`LENGTHS`; override it when your broker
is built otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Protocol, cast

import pytest

from rediq_core.flow import Flow
from rediq_core.message import TaskMessage
from rediq_core.records import CancelOutcome
from rediq_core.roles import Events, Reports, Role, supports
from rediq_core.task_events import LATEST, OLDEST, TaskEvent, TaskEventKind
from rediq_core.tasklogs import (
    LogBounds,
    TaskLogLine,
    TaskProgress,
    TrailUpdate,
    encode_line,
    encode_progress,
    progress_detail,
)

from .helpers import (
    QUEUE,
    WAIT_S,
    WORKER,
    CoreBroker,
    RoleContract,
    enqueue_one,
    failure,
    fetch,
    fetch_one,
    make_message,
    success,
)

__all__ = ["LENGTHS", "EventsContract"]

#: A queue that keeps few events, and one that keeps none.
SHORT, OFF = "contract-short", "contract-off"
#: Events kept by the broker of :meth:`EventsContract.events_broker`.
LENGTHS: Mapping[str, int] = {QUEUE: 1000, SHORT: 5, OFF: 0}
K = TaskEventKind
BOUNDS = LogBounds(max_lines=100, max_bytes=64 * 1024)
DONE = TaskProgress(1.0, "", 1235)


class EventsBroker(CoreBroker, Events, Protocol):
    """A broker with the core roles and the event stream."""


async def read(
    broker: Events, cursors: Mapping[str, str] | None = None, queue: str = QUEUE
) -> list[TaskEvent]:
    """Every event after the cursors (default: all kept of ``queue``), read to the end."""

    async def collect() -> list[TaskEvent]:
        return [e async for e in broker.events(cursors or {queue: OLDEST}, follow=False)]

    return await asyncio.wait_for(collect(), WAIT_S)


def kinds(events: Sequence[TaskEvent], task: TaskMessage | None = None) -> list[tuple[K, int]]:
    return [(e.kind, e.attempt) for e in events if task is None or e.task_id == task.id]


class EventsContract(RoleContract):
    role = Role.EVENTS
    requires: ClassVar[frozenset[Role]] = frozenset(
        {Role.PRODUCER, Role.CONSUMER, Role.RESULTS, Role.CONTROL}
    )

    @pytest.fixture
    async def events_broker(self, broker: Any) -> AsyncIterator[EventsBroker]:
        """The ``broker`` fixture's twin that records events (:data:`LENGTHS`)."""
        options = replace(
            broker.options,
            event_stream_length=LENGTHS[QUEUE],
            event_stream_lengths={SHORT: LENGTHS[SHORT], OFF: LENGTHS[OFF]},
        )
        twin = type(broker)(options)
        await twin.connect()
        try:
            yield twin
        finally:
            await twin.close()

    async def test_a_task_that_succeeds(self, events_broker: EventsBroker) -> None:
        b = events_broker
        task = await enqueue_one(b)
        await fetch_one(b)
        assert await b.settle(WORKER, [success(task)]) == [True]
        events = await read(b)
        assert kinds(events) == [(K.ENQUEUED, 1), (K.STARTED, 1), (K.SUCCEEDED, 1)]
        enqueued, started, succeeded = events
        assert {e.task_id for e in events} == {task.id}
        assert {e.task_name for e in events} == {task.name}
        assert {e.queue for e in events} == {QUEUE}
        assert enqueued.detail == "pending" and started.detail == WORKER
        assert succeeded.detail == ""
        positions = [e.id for e in events]
        assert len(set(positions)) == 3 and all(p.startswith(f"{QUEUE}:") for p in positions)
        assert enqueued.time_ms <= started.time_ms <= succeeded.time_ms
        assert enqueued.position == positions[0].partition(":")[2]

    async def test_progress_reports_are_events(self, events_broker: EventsBroker) -> None:
        b = events_broker
        if not supports(b, Role.REPORTS):
            pytest.skip("the broker keeps no progress reports (Role.REPORTS)")
        reports = cast(Reports, b)
        task = await enqueue_one(b)
        d = await fetch_one(b)
        progress = encode_progress(TaskProgress(0.4, "resizing", 1234))
        log_line = encode_line(TaskLogLine(1234, "INFO", "app", "a line", 0))
        updates = [
            TrailUpdate(task.id, task.queue, d.deliveries, progress, (), 0),
            TrailUpdate(task.id, task.queue, d.deliveries, None, (log_line,), 0),  # no event
            TrailUpdate(task.id, task.queue, d.deliveries, encode_progress(DONE), (), 0),
        ]
        for u in updates:
            assert await reports.report(WORKER, [u], BOUNDS) == [True]
        events = await read(b)
        assert kinds(events) == [(K.ENQUEUED, 1), (K.STARTED, 1), (K.PROGRESS, 1), (K.PROGRESS, 1)]
        assert [e.detail for e in events[2:]] == ["40% resizing", "100%"]
        assert [progress_detail(p) for p in (TaskProgress(0.4, "resizing", 0), DONE)] == [
            "40% resizing",
            "100%",
        ]

    async def test_the_name_is_the_tasks_own(self, events_broker: EventsBroker) -> None:
        b = events_broker
        task = await enqueue_one(b, name="tâches.café", payload=b'{"name":"not-this"}')
        [event] = await read(b)
        assert (event.task_id, event.task_name) == (task.id, "tâches.café")

    async def test_a_task_retried_then_succeeding(self, events_broker: EventsBroker) -> None:
        b = events_broker
        task = await enqueue_one(b, max_retries=1)
        await fetch_one(b)
        assert await b.settle(WORKER, [failure(task, retry_delay_ms=1)]) == [True]
        await fetch_one(b)
        assert await b.settle(WORKER, [success(task)]) == [True]
        events = await read(b)
        assert kinds(events) == [
            (K.ENQUEUED, 1),
            (K.STARTED, 1),
            (K.RETRIED, 1),
            (K.STARTED, 2),
            (K.SUCCEEDED, 2),
        ]
        assert events[2].detail == "ValueError: boom"

    async def test_a_task_that_fails_for_good(self, events_broker: EventsBroker) -> None:
        b = events_broker
        task = await enqueue_one(b)
        await fetch_one(b)
        assert await b.settle(WORKER, [failure(task)]) == [True]
        events = await read(b)
        assert kinds(events) == [(K.ENQUEUED, 1), (K.STARTED, 1), (K.FAILED, 1)]
        assert events[-1].detail == "ValueError: boom"
        assert await b.requeue_dead(QUEUE) == 1
        assert await b.delete(task.id, QUEUE)
        later = await read(b, {QUEUE: events[-1].position})
        assert [(e.kind, e.detail) for e in later] == [
            (K.ENQUEUED, "requeued"),
            (K.DELETED, "pending"),
        ]

    async def test_cancelled_tasks(self, events_broker: EventsBroker) -> None:
        b = events_broker
        waiting = await enqueue_one(b, delay_ms=60_000)
        assert await b.cancel(waiting.id, QUEUE) is CancelOutcome.CANCELLED
        running = await enqueue_one(b)
        await fetch_one(b)
        assert await b.cancel(running.id, QUEUE) is CancelOutcome.REQUESTED
        assert await b.settle(WORKER, [failure(running)]) == [True]
        events = await read(b)
        assert kinds(events, waiting) == [(K.ENQUEUED, 1), (K.CANCELLED, 1)]
        assert events[0].detail == "scheduled"
        assert kinds(events, running) == [(K.ENQUEUED, 1), (K.STARTED, 1), (K.CANCELLED, 1)]

    async def test_an_expired_task(self, events_broker: EventsBroker) -> None:
        b = events_broker
        if not supports(b, Role.LIMITS):
            pytest.skip("expiry is part of the limits role")
        task = make_message(flow=Flow(expires_ms=1), delay_ms=60_000)
        await b.enqueue([task])
        for _ in range(int(WAIT_S / 0.02)):
            if (await fetch(b, wait=False)).expired:
                break
            await asyncio.sleep(0.02)  # re-check interval of a bounded wait
        events = await read(b)
        assert kinds(events) == [(K.ENQUEUED, 1), (K.EXPIRED, 1)]
        assert events[-1].detail.startswith("rediq.TaskExpired: ")

    async def test_events_are_in_order_and_resume_after_an_id(
        self, events_broker: EventsBroker
    ) -> None:
        b = events_broker
        tasks = [make_message() for _ in range(20)]
        await b.enqueue(tasks)
        events = await read(b)
        assert [e.task_id for e in events] == [t.id for t in tasks]
        assert [e.id for e in events] == sorted(
            (e.id for e in events), key=lambda i: tuple(map(int, i.rpartition(":")[2].split("-")))
        )
        after = await read(b, {QUEUE: events[11].position})
        assert after == events[12:]
        assert await read(b, {QUEUE: events[-1].position}) == []
        assert await read(b, {QUEUE: LATEST}) == []

    async def test_following_waits_for_new_events(self, events_broker: EventsBroker) -> None:
        b = events_broker
        first = await enqueue_one(b)
        [seen] = await read(b)
        following = b.events({QUEUE: seen.position, SHORT: OLDEST}, follow=True)
        try:
            second = await enqueue_one(b)
            other = await enqueue_one(b, queue=SHORT)
            got = [await asyncio.wait_for(anext(following), WAIT_S) for _ in range(2)]
            assert sorted(e.task_id for e in got) == sorted([second.id, other.id])
            assert {e.queue for e in got} == {QUEUE, SHORT}
            assert first.id not in {e.task_id for e in got}
        finally:
            await following.aclose()  # type: ignore[attr-defined]

    async def test_a_stream_keeps_about_its_length(self, events_broker: EventsBroker) -> None:
        b = events_broker
        tasks = [make_message(SHORT) for _ in range(300)]
        await b.enqueue(tasks)
        events = await read(b, queue=SHORT)
        kept = LENGTHS[SHORT]
        assert kept <= len(events) < len(tasks), len(events)  # approximate trimming
        assert [e.task_id for e in events] == [t.id for t in tasks[-len(events) :]]

    async def test_length_zero_records_nothing(
        self, events_broker: EventsBroker, broker: EventsBroker
    ) -> None:
        await enqueue_one(events_broker, queue=OFF)
        assert await read(events_broker, queue=OFF) == []
        await enqueue_one(broker)  # the default configuration: no stream
        assert await read(broker) == []
