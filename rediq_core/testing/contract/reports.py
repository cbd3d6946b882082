"""The reports role: a running task's progress and log lines, written only under a lease
the worker holds, bounded (the last lines within a byte cap, the dropped ones counted),
kept with the result (every attempt's), and gone with the task or its result."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import ClassVar, Protocol

from rediq_core.message import TaskMessage
from rediq_core.records import Delivery, Settlement, TaskState
from rediq_core.roles import Reports, Role
from rediq_core.tasklogs import (
    LogBounds,
    TaskLogLine,
    TaskProgress,
    TrailUpdate,
    encode_line,
    encode_progress,
)

from .helpers import (
    QUEUE,
    WAIT_S,
    WORKER,
    CoreBroker,
    RoleContract,
    enqueue_one,
    failure,
    fetch_one,
)

__all__ = ["ReportsContract"]

BOUNDS = LogBounds(max_lines=100, max_bytes=64 * 1024)


class ReportingBroker(CoreBroker, Reports, Protocol):
    """A broker with the core roles and reports."""


def line(n: int, attempt: int = 0, size: int = 0) -> str:
    return encode_line(TaskLogLine(1_000 + n, "INFO", "app", f"line {n}" + "x" * size, attempt))


def update(
    d: Delivery,
    *lines: str,
    progress: TaskProgress | None = None,
    dropped: int = 0,
) -> TrailUpdate:
    m = d.message
    encoded = encode_progress(progress) if progress else None
    return TrailUpdate(m.id, m.queue, d.deliveries, encoded, lines, dropped)


def settled(d: Delivery, **how: object) -> Settlement:
    m = d.message
    return Settlement(m.id, m.queue, delivery=d.deliveries, reported=True, **how)  # type: ignore[arg-type]


class ReportsContract(RoleContract):
    role = Role.REPORTS
    requires: ClassVar[frozenset[Role]] = frozenset({Role.PRODUCER, Role.CONSUMER, Role.CONTROL})

    async def messages(self, broker: ReportingBroker, message: TaskMessage) -> list[str]:
        report = await broker.get_report(message.id, message.queue)
        return [x.message for x in report.logs.lines] if report else []

    async def test_progress_and_lines_are_kept_with_the_result(
        self, broker: ReportingBroker
    ) -> None:
        message = await enqueue_one(broker)
        assert await broker.get_report(message.id, QUEUE) is None
        d = await fetch_one(broker)
        half = TaskProgress(0.5, "half", 1234)
        assert await broker.report(WORKER, [update(d, line(1), progress=half)], BOUNDS) == [True]
        assert await broker.report(WORKER, [update(d, line(2), line(3))], BOUNDS) == [True]
        report = await broker.get_report(message.id, QUEUE)
        assert report is not None and report.progress == half
        assert [x.message for x in report.logs.lines] == ["line 1", "line 2", "line 3"]
        assert report.logs.lines[0] == TaskLogLine(1001, "INFO", "app", "line 1", 0)
        assert await broker.settle(WORKER, [settled(d, result=b"ok")]) == [True]
        ended = await broker.get_report(message.id, QUEUE)
        assert ended == report, "the report goes on as long as the result"
        assert await broker.delete(message.id, QUEUE)
        assert await broker.get_report(message.id, QUEUE) is None

    async def test_only_the_holder_of_the_current_lease_writes(
        self, broker: ReportingBroker
    ) -> None:
        message = await enqueue_one(broker)
        d = await fetch_one(broker)
        assert await broker.report("worker-2", [update(d, line(1))], BOUNDS) == [False]
        stale = dataclasses.replace(d, deliveries=d.deliveries + 1)
        assert await broker.report(WORKER, [update(stale, line(2))], BOUNDS) == [False]
        assert await broker.get_report(message.id, QUEUE) is None
        assert await broker.settle(WORKER, [settled(d, result=b"ok")]) == [True]
        assert await broker.report(WORKER, [update(d, line(3))], BOUNDS) == [False]
        assert await broker.get_report(message.id, QUEUE) is None

    async def test_an_expired_lease_writes_nothing(self, broker: ReportingBroker) -> None:
        message = await enqueue_one(broker)
        d = await fetch_one(broker, lease_ms=200)
        for _ in range(int(WAIT_S / 0.05)):
            if await broker.report(WORKER, [update(d, line(1))], BOUNDS) == [False]:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"writes still accepted {WAIT_S} s after the lease expired")
        again = await fetch_one(broker, worker_id="worker-2")
        assert await broker.report(WORKER, [update(d, line(9))], BOUNDS) == [False]
        assert "line 9" not in await self.messages(broker, message)
        assert again.deliveries == d.deliveries + 1

    async def test_bounds_keep_the_last_lines_and_count_the_dropped(
        self, broker: ReportingBroker
    ) -> None:
        message = await enqueue_one(broker)
        d = await fetch_one(broker)
        bounds = LogBounds(max_lines=5, max_bytes=64 * 1024)
        lines = [line(n) for n in range(8)]
        assert await broker.report(WORKER, [update(d, *lines, dropped=2)], bounds) == [True]
        report = await broker.get_report(message.id, QUEUE)
        assert report is not None
        assert [x.message for x in report.logs.lines] == [f"line {n}" for n in range(3, 8)]
        assert report.logs.dropped == 2 + 3
        big = LogBounds(max_lines=100, max_bytes=3 * (len(line(10, size=200)) + 1))
        more = [line(n, size=200) for n in range(10, 15)]
        assert await broker.report(WORKER, [update(d, *more)], big) == [True]
        report = await broker.get_report(message.id, QUEUE)
        assert report is not None and len(report.logs.lines) == 3
        assert report.logs.lines[-1].message.startswith("line 14")
        assert report.logs.dropped == 5 + 7

    async def test_every_attempt_of_a_retried_task_is_kept(self, broker: ReportingBroker) -> None:
        message = await enqueue_one(broker, max_retries=1)
        first = await fetch_one(broker)
        assert await broker.report(WORKER, [update(first, line(1, attempt=0))], BOUNDS) == [True]
        retry = failure(message, retry_delay_ms=0)
        assert await broker.settle(WORKER, [settled(first, error=retry.error, retry_delay_ms=0)])
        second = await fetch_one(broker)
        assert await broker.report(WORKER, [update(second, line(2, attempt=1))], BOUNDS) == [True]
        # the second attempt settles without saying it reported: an earlier lease did
        plain = Settlement(message.id, QUEUE, result=b"ok", delivery=second.deliveries)
        assert await broker.settle(WORKER, [plain]) == [True]
        report = await broker.get_report(message.id, QUEUE)
        assert report is not None
        assert [(x.message, x.attempt) for x in report.logs.lines] == [
            ("line 1", 0),
            ("line 2", 1),
        ]

    async def test_nothing_is_kept_without_a_result(self, broker: ReportingBroker) -> None:
        message = await enqueue_one(broker, result_ttl_s=0)
        d = await fetch_one(broker)
        assert await broker.report(WORKER, [update(d, line(1))], BOUNDS) == [True]
        assert await broker.settle(WORKER, [settled(d, result=b"ok")]) == [True]
        assert await broker.get_report(message.id, QUEUE) is None

    async def test_forgetting_a_task_forgets_its_report(self, broker: ReportingBroker) -> None:
        message = await enqueue_one(broker, max_retries=1)
        d = await fetch_one(broker)
        assert await broker.report(WORKER, [update(d, line(1))], BOUNDS) == [True]
        retry = failure(message, retry_delay_ms=60_000)
        assert await broker.settle(WORKER, [settled(d, error=retry.error, retry_delay_ms=60_000)])
        assert await self.messages(broker, message) == ["line 1"]
        assert await broker.purge_tasks(QUEUE, [TaskState.SCHEDULED]) == 1
        assert await broker.get_report(message.id, QUEUE) is None

    async def test_cancelling_a_waiting_retry_drops_its_report(
        self, broker: ReportingBroker
    ) -> None:
        message = await enqueue_one(broker, max_retries=1)
        d = await fetch_one(broker)
        assert await broker.report(WORKER, [update(d, line(1))], BOUNDS) == [True]
        retry = failure(message, retry_delay_ms=60_000)
        assert await broker.settle(WORKER, [settled(d, error=retry.error, retry_delay_ms=60_000)])
        await broker.cancel(message.id, QUEUE)
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.CANCELLED
        assert await broker.get_report(message.id, QUEUE) is None

    async def test_a_new_run_of_the_id_starts_without_the_old_report(
        self, broker: ReportingBroker
    ) -> None:
        message = await enqueue_one(broker)
        d = await fetch_one(broker)
        assert await broker.report(WORKER, [update(d, line(1))], BOUNDS) == [True]
        assert await broker.settle(WORKER, [settled(d, result=b"ok")]) == [True]
        again = await enqueue_one(broker, id=message.id)
        assert await broker.get_report(again.id, QUEUE) is None
        d2 = await fetch_one(broker)
        assert await broker.report(WORKER, [update(d2, line(2))], BOUNDS) == [True]
        assert await self.messages(broker, message) == ["line 2"]

    async def test_a_requeued_dead_letter_starts_without_its_report(
        self, broker: ReportingBroker
    ) -> None:
        message = await enqueue_one(broker)
        d = await fetch_one(broker)
        assert await broker.report(WORKER, [update(d, line(1))], BOUNDS) == [True]
        dead = failure(message)
        assert await broker.settle(WORKER, [settled(d, error=dead.error)]) == [True]
        assert await self.messages(broker, message) == ["line 1"]
        assert await broker.requeue_dead(QUEUE, [message.id]) == 1
        assert await broker.get_report(message.id, QUEUE) is None
