"""The consumer role: fetching (limits, blocking, cancelling a fetch, ``wait=False``),
leases (expiry, the crash budget, stale leases, renewal, hand-back), settlement (once,
by the lease holder, retries, dead letters, batches) and cancellation announcements."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rediq_core import defaults
from rediq_core.records import CancelOutcome, Lease, TaskError, TaskState
from rediq_core.roles import Role

from .helpers import (
    LEASE_MS,
    QUEUE,
    WORKER,
    CoreBroker,
    Record,
    RoleContract,
    announce,
    enqueue_one,
    failure,
    fetch,
    fetch_nothing,
    fetch_one,
    finished_while_fetching,
    lease,
    make_message,
    success,
)

__all__ = ["ConsumerContract"]


class ConsumerContract(RoleContract):
    role = Role.CONSUMER
    requires: ClassVar[frozenset[Role]] = frozenset({Role.PRODUCER, Role.RESULTS, Role.CONTROL})

    async def test_fetch_limit(self, broker: CoreBroker) -> None:
        await broker.enqueue([make_message() for _ in range(5)])
        assert len((await fetch(broker, limit=2)).deliveries) == 2
        assert len((await fetch(broker, limit=10)).deliveries) == 3

    async def test_cancelled_fetch_loses_nothing(self, broker: CoreBroker) -> None:
        await fetch_nothing(broker, within_s=0.1)
        message = await enqueue_one(broker)
        assert (await fetch_one(broker)).message.id == message.id

    async def test_idle_workers_all_get_work(self, broker: CoreBroker) -> None:
        fetchers = [
            asyncio.ensure_future(fetch(broker, limit=1, worker_id=f"w{i}")) for i in range(3)
        ]
        for fetcher in fetchers:
            await self.wait_until_blocked(broker, fetcher)
        await broker.enqueue([make_message() for _ in range(3)])
        batches = await asyncio.gather(*fetchers)
        assert sorted(len(b.deliveries) for b in batches) == [1, 1, 1]

    async def test_a_fetch_without_wait_returns_at_once(self, broker: CoreBroker) -> None:
        """``fetch(..., wait=False)`` claims what is ready, at most ``limit``, and returns
        at once, possibly with nothing (a worker claims so with slots it reserved); a
        waiting fetch after it still wakes for new work."""

        async def ids(limit: int, wait: bool) -> list[str]:
            return [d.message.id for d in (await fetch(broker, limit=limit, wait=wait)).deliveries]

        assert await ids(5, False) == [], "an empty queue gives nothing"
        first, second = await enqueue_one(broker), await enqueue_one(broker)
        assert await ids(1, False) == [first.id]
        assert await ids(5, False) == [second.id], "what is ready, no more"
        assert await ids(5, False) == []
        waiting = asyncio.ensure_future(ids(5, True))
        third = await enqueue_one(broker)
        assert await waiting == [third.id], "a waiting fetch after it wakes for new work"

    async def test_expired_lease_returns_task_counting_deliveries(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        assert (await fetch_one(broker, lease_ms=100)).deliveries == 1
        again = await fetch_one(broker, worker_id="worker-2")  # blocks until expiry
        assert again.message.id == message.id and again.deliveries == 2
        assert await broker.settle(WORKER, [success(message)]) == [False]
        assert await broker.settle("worker-2", [success(message)]) == [True]

    async def test_task_killing_its_worker_is_dead_lettered(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        for n in range(1, defaults.MAX_DELIVERIES + 1):
            delivery = await fetch_one(broker, lease_ms=50)
            assert (delivery.deliveries, delivery.lost) == (n, n - 1)
        record = await finished_while_fetching(broker, message)  # a claim ends the last lease
        assert record.state is TaskState.FAILED
        assert record.error is not None
        assert f"lost its lease {defaults.MAX_DELIVERIES} times" in record.error.message
        assert [r.id for r in (await broker.list_tasks(QUEUE, TaskState.FAILED)).tasks] == [
            message.id
        ]

    async def test_retried_failures_do_not_count_as_lost_leases(self, broker: CoreBroker) -> None:
        """Only expired leases use up the crash budget; retries have their own."""
        message = await enqueue_one(broker, max_retries=20)
        for _ in range(defaults.MAX_DELIVERIES + 1):
            await fetch_one(broker)
            assert await broker.settle(WORKER, [failure(message, 0)]) == [True]
        await fetch_one(broker, lease_ms=50)  # and then its worker dies once
        again = await fetch_one(broker, worker_id="worker-2")
        assert (again.retried, again.lost) == (defaults.MAX_DELIVERIES + 1, 1)

    async def test_a_stale_lease_of_the_same_worker_settles_nothing(
        self, broker: CoreBroker
    ) -> None:
        """The worker stalled past its lease and leased the task again: the first attempt
        can neither settle, renew nor hand back the second lease."""
        message = await enqueue_one(broker)
        first = await fetch_one(broker, lease_ms=50)
        second = await fetch_one(broker)  # blocks until the first lease expires
        assert (first.deliveries, second.deliveries) == (1, 2)
        assert await broker.settle(WORKER, [success(message, delivery=1)]) == [False]
        assert await broker.extend_leases(WORKER, {QUEUE: [first.lease]}, LEASE_MS) == {first.lease}
        assert await broker.release(WORKER, {QUEUE: [first.lease]}) == 0
        assert await broker.extend_leases(WORKER, {QUEUE: [second.lease]}, LEASE_MS) == set()
        assert await broker.settle(WORKER, [success(message, delivery=2)]) == [True]

    async def test_extend_leases(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker, lease_ms=150)
        assert await broker.extend_leases(WORKER, {QUEUE: [lease(message)]}, 10_000) == set()
        await fetch_nothing(broker, within_s=0.4)
        lost = await broker.extend_leases("intruder", {QUEUE: [lease(message)]}, 10_000)
        assert lost == {lease(message)}
        unknown = Lease("no-such-task", 1)
        assert await broker.extend_leases(WORKER, {QUEUE: [unknown]}, 1000) == {unknown}

    async def test_release_hands_back_at_once(self, broker: CoreBroker) -> None:
        first, second = make_message(), make_message()
        await broker.enqueue([first, second])
        batch = await fetch(broker)
        assert await broker.release("intruder", {QUEUE: [lease(first)]}) == 0
        assert await broker.release(WORKER, {QUEUE: [lease(first), lease(second)]}) == 2
        again = await fetch(broker, worker_id="worker-2")
        assert [d.message.id for d in again.deliveries] == [d.message.id for d in batch.deliveries]
        # A new lease number; a release is neither lost nor failed.
        assert [(d.deliveries, d.lost, d.retried) for d in again.deliveries] == [(2, 0, 0)] * 2

    async def test_success_keeps_result_for_its_ttl(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        assert await broker.settle(WORKER, [success(message, b"\x00result")]) == [True]
        record = await broker.get_task(message.id)
        assert record is not None and record.state is TaskState.SUCCEEDED
        assert record.result == b"\x00result" and record.serializer == "json"
        assert record.finished_at_ms is not None
        assert (await broker.queue_stats(QUEUE)).succeeded == 1

    async def test_success_with_ttl_zero_keeps_nothing(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker, result_ttl_s=0)
        await fetch_one(broker)
        assert await broker.settle(WORKER, [success(message)]) == [True]
        assert await broker.get_task(message.id, QUEUE) is None
        stats = await broker.queue_stats(QUEUE)
        assert (stats.pending, stats.active, stats.succeeded) == (0, 0, 1)

    async def test_settle_requires_the_lease(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        assert await broker.settle(WORKER, [success(message)]) == [False]  # not leased
        await fetch_one(broker)
        assert await broker.settle("intruder", [success(message)]) == [False]
        assert await broker.settle(WORKER, [success(message)]) == [True]
        assert await broker.settle(WORKER, [success(message)]) == [False]  # once only

    async def test_retry_after_backoff(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker, max_retries=1)
        await fetch_one(broker)
        assert await broker.settle(WORKER, [failure(message, 150)]) == [True]
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.SCHEDULED
        assert record.error is not None and record.error.message == "boom"
        retry = await fetch_one(broker)
        assert (retry.retried, retry.deliveries) == (1, 2)
        assert (await broker.queue_stats(QUEUE)).retried == 1

    async def test_failed_attempts_keep_their_errors(self, broker: CoreBroker) -> None:
        """Each retried attempt's error is kept (the last few, capped) with the task while
        it lives and with its result once it ended."""
        kept = defaults.ATTEMPT_ERRORS_KEPT
        message = await enqueue_one(broker, max_retries=kept + 5)
        long_trace = "t" * defaults.ATTEMPT_TRACEBACK_MAX + "the end"
        long_message = "m" * (defaults.ATTEMPT_MESSAGE_MAX + 50)
        for n in range(1, kept + 3):
            await fetch_one(broker)
            text = long_message if n == kept + 2 else f"boom {n}"
            error = TaskError("ValueError", text, long_trace)
            assert await broker.settle(WORKER, [failure(message, 0, error)]) == [True]
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.PENDING
        attempts = record.failed_attempts
        assert [a.number for a in attempts] == list(range(3, kept + 3)), attempts
        assert [a.error.message for a in attempts[:-1]] == [f"boom {n}" for n in range(3, kept + 2)]
        assert attempts[-1].error.message == long_message[: defaults.ATTEMPT_MESSAGE_MAX]
        for attempt in attempts:
            assert attempt.error.type == "ValueError" and attempt.worker == WORKER
            assert attempt.error.traceback.endswith("the end")
            assert len(attempt.error.traceback) == defaults.ATTEMPT_TRACEBACK_MAX
            assert attempt.failed_at_ms is not None and attempt.failed_at_ms > 0
        await fetch_one(broker)
        assert await broker.settle(WORKER, [success(message)]) == [True]
        ended = await broker.get_task(message.id, QUEUE)
        assert ended is not None and ended.state is TaskState.SUCCEEDED
        assert ended.failed_attempts == attempts

    async def test_a_dead_letter_keeps_its_retried_attempts_until_requeued(
        self, broker: CoreBroker
    ) -> None:
        message = await enqueue_one(broker, max_retries=1)
        await fetch_one(broker)
        first = TaskError("KeyError", "first", "Traceback: first")
        assert await broker.settle(WORKER, [failure(message, 0, first)]) == [True]
        await fetch_one(broker)
        final = TaskError("ValueError", "final", "Traceback: final")
        assert await broker.settle(WORKER, [failure(message, error=final)]) == [True]
        dead = await broker.get_task(message.id, QUEUE)
        assert dead is not None and dead.state is TaskState.FAILED and dead.error == final
        assert [(a.number, a.error) for a in dead.failed_attempts] == [(1, first)]
        assert await broker.requeue_dead(QUEUE, [message.id]) == 1
        again = await broker.get_task(message.id, QUEUE)
        assert again is not None and again.state is TaskState.PENDING
        assert again.failed_attempts == () and again.error is None

    async def test_unusable_task_settled_by_worker_is_dead_lettered(
        self, broker: CoreBroker
    ) -> None:
        # What a worker does for an unknown task name or an undecodable payload.
        message = await enqueue_one(broker, name="no.such.task", max_retries=5)
        await fetch_one(broker)
        error = TaskError("UnknownTaskError", "no task named 'no.such.task' is registered")
        assert await broker.settle(WORKER, [failure(message, error=error)]) == [True]
        [dead] = (await broker.list_tasks(QUEUE, TaskState.FAILED)).tasks
        assert dead.error == error and dead.state is TaskState.FAILED

    async def test_settlements_in_one_batch(self, broker: CoreBroker) -> None:
        messages = [make_message() for _ in range(60)]
        await broker.enqueue(messages)
        await fetch(broker)
        settlements = [success(m) if i % 3 else failure(m) for i, m in enumerate(messages)]
        assert await broker.settle(WORKER, settlements) == [True] * 60
        stats = await broker.queue_stats(QUEUE)
        assert (stats.succeeded, stats.failed, stats.active) == (40, 20, 0)

    async def test_cancel_running_is_announced(self, broker: CoreBroker, measure: Record) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        stream = broker.cancellations()
        latency = await announce(broker, stream, message.id)
        measure("cancel_announcement_ms", latency)
        # the safety net: the lease keeper learns it too
        assert await broker.extend_leases(WORKER, {QUEUE: [lease(message)]}, LEASE_MS) == {
            lease(message)
        }
        # the worker cancels the task and settles the attempt: it ends as cancelled
        assert await broker.settle(WORKER, [failure(message, 0)]) == [True]
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.CANCELLED
        await fetch_nothing(broker)

    async def test_cancelled_task_with_expired_lease_never_runs_again(
        self, broker: CoreBroker
    ) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker, lease_ms=100)
        assert await broker.cancel(message.id, QUEUE) is CancelOutcome.REQUESTED
        record = await finished_while_fetching(broker, message)  # a claim ends the lease
        assert record.state is TaskState.CANCELLED
