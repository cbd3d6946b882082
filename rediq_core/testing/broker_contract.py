"""A test suite for any :class:`~rediq_core.broker.Broker` implementation.

Subclass :class:`BrokerContract` (or, for a broker without cron schedules,
:class:`CoreBrokerContract`) in a test module of your plugin and provide a ``broker``
fixture: an async fixture yielding a broker that is connected to a fresh, empty store
(unique namespace) and uses the default protocol bounds (``MAX_DELIVERIES``)::

    from rediq_core.testing.broker_contract import BrokerContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        async def broker(self):
            broker = MyBroker(BrokerOptions(url=..., namespace=unique()))
            await broker.connect()
            yield broker
            await broker.close()

The suite asserts order and conditions, never a wall-clock window, so a slow or loaded
machine cannot fail it for the wrong reason: "not before its due time" is checked on the
broker's own clock (when a lease began, :attr:`TaskRecord.started_at_ms`), "woken at
once" as a fetch that returns while the next deadline it knows of is a minute away, and
every wait is bounded (a broker that needs longer is broken). Latencies are measured by
``benchmarks/run.py`` (pickup latency, delayed-task lateness), not here.

A fetch that should block is started and then handed to
:meth:`CoreBrokerContract.wait_until_blocked`; override it when your broker's fetch does
I/O before it blocks (the default only lets the event loop run, enough for an in-process
broker), so that the wake-up tests see a fetch that is really waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from rediq_core import defaults
from rediq_core.broker import (
    Broker,
    CancelOutcome,
    Delivery,
    FetchBatch,
    Lease,
    Settlement,
    TaskError,
    TaskRecord,
    TaskState,
    WorkerRecord,
)
from rediq_core.errors import TaskNotFoundError
from rediq_core.message import TaskMessage, new_task_id, now_ms
from rediq_core.testing.cron_contract import CronContract

__all__ = ["BrokerContract", "CoreBrokerContract", "make_message"]

QUEUE = "contract"
WORKER = "worker-1"
LEASE_MS = 10_000
#: Upper bound of every wait in this suite; a broker that needs longer is broken.
WAIT_S = 5.0
#: Bound of a wait that a wake-up must end, far below FAR_MS: a fetch or a wait that ends
#: within it was woken, it did not sleep out its deadline.
WAKE_WAIT_S = 20.0
#: A deadline far enough away that nothing in a test reaches it.
FAR_MS = 60_000

Record = Callable[[str, object], None]


def make_message(queue: str = QUEUE, **overrides: object) -> TaskMessage:
    """A valid message with a fresh id; any field may be overridden."""
    fields: dict[str, object] = {
        "id": new_task_id(),
        "name": "contract.task",
        "queue": queue,
        "payload": b"\x00payload\xff",
        "serializer": "json",
        "priority": 0,
        "max_retries": 0,
        "timeout_ms": None,
        "result_ttl_s": 60,
    }
    fields.update(overrides)
    return TaskMessage(**fields)  # type: ignore[arg-type]


async def fetch(
    broker: Broker,
    *,
    limit: int = 100,
    lease_ms: int = LEASE_MS,
    worker_id: str = WORKER,
    queue: str = QUEUE,
    wait: bool = True,
) -> FetchBatch:
    """A fetch that must return within WAIT_S."""
    return await asyncio.wait_for(
        broker.fetch(queue, worker_id=worker_id, limit=limit, lease_ms=lease_ms, wait=wait),
        WAIT_S,
    )


async def fetch_nothing(broker: Broker, within_s: float = 0.3, **kwargs: object) -> None:
    """Assert that a fetch stays blocked for ``within_s`` (and cancel it: loses nothing).

    Nothing may be ready: a slower machine can only make this pass, never fail."""
    task = asyncio.ensure_future(
        broker.fetch(
            str(kwargs.get("queue", QUEUE)),
            worker_id=str(kwargs.get("worker_id", WORKER)),
            limit=100,
            lease_ms=LEASE_MS,
        )
    )
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if done:
        raise AssertionError(f"fetch returned {task.result()} but nothing should be ready")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def enqueue_one(broker: Broker, **overrides: object) -> TaskMessage:
    queue = str(overrides.pop("queue", QUEUE))
    message = make_message(queue, **overrides)
    [outcome] = await broker.enqueue([message])
    assert outcome.accepted and outcome.task_id == message.id
    return message


async def fetch_one(broker: Broker, **kwargs: object) -> Delivery:
    batch = await fetch(broker, **kwargs)  # type: ignore[arg-type]
    assert len(batch.deliveries) == 1, batch
    return batch.deliveries[0]


def success(message: TaskMessage, result: bytes = b"ok", delivery: int | None = None) -> Settlement:
    return Settlement(message.id, message.queue, result=result, delivery=delivery)


def failure(
    message: TaskMessage, retry_delay_ms: int | None = None, error: TaskError | None = None
) -> Settlement:
    return Settlement(
        message.id,
        message.queue,
        error=error or TaskError("ValueError", "boom", "Traceback: ..."),
        retry_delay_ms=retry_delay_ms,
    )


def lease(message: TaskMessage, delivery: int = 1) -> Lease:
    return Lease(message.id, delivery)


async def started_at(broker: Broker, message: TaskMessage) -> int:
    """When the task's current lease began, on the broker's clock."""
    record = await broker.get_task(message.id, message.queue)
    assert record is not None and record.started_at_ms is not None, record
    return record.started_at_ms


async def claim_beside_sentinel(broker: Broker) -> tuple[int, list[str]]:
    """Enqueue a ready sentinel task of the highest priority and claim everything ready
    with it; settle all of it. Returns when that claim ran, on the broker's clock, and
    the ids leased besides the sentinel: what was ready at that instant."""
    sentinel = await enqueue_one(broker, priority=defaults.PRIORITY_MIN, result_ttl_s=0)
    batch = await fetch(broker)
    ids = [d.message.id for d in batch.deliveries]
    assert ids[:1] == [sentinel.id], ids
    claimed_at = await started_at(broker, sentinel)
    settled = await broker.settle(WORKER, [success(d.message) for d in batch.deliveries])
    assert all(settled), settled
    return claimed_at, ids[1:]


async def broker_now(broker: Broker) -> int:
    """The broker's clock, in epoch ms (it need not be this process's clock)."""
    claimed_at, others = await claim_beside_sentinel(broker)
    assert others == [], f"{others} were ready too"
    return claimed_at


class CoreBrokerContract:
    """The behaviour every broker must show (producing, consuming, results, control and
    the worker registry). Subclasses provide the ``broker`` fixture. A broker without cron
    support (``memory://``) runs this class; one with it runs :class:`BrokerContract`."""

    @pytest.fixture
    def measure(self, record_property: Record) -> Record:
        """Print a measurement (visible with ``-s``) and record it in the JUnit report."""

        def record(name: str, value: object) -> None:
            print(f"\n[measure] {name} = {value}")
            record_property(name, value)

        return record

    # --- enqueue and fetch ------------------------------------------------------------

    async def test_round_trip_keeps_every_field(self, broker: Broker) -> None:
        message = await enqueue_one(
            broker, groups=("g1", "user:42"), headers={"trace": "abc"}, priority=7, max_retries=3
        )
        delivery = await fetch_one(broker)
        assert delivery.message == message
        assert (delivery.retried, delivery.deliveries) == (0, 1)
        assert delivery.lease_deadline_ms > now_ms()
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.ACTIVE
        assert record.worker == WORKER

    async def test_priority_then_fifo_over_many_mixed_enqueues(self, broker: Broker) -> None:
        messages = [make_message(priority=(i * 7919) % 13 - 6) for i in range(3000)]
        for start in range(0, len(messages), 500):
            await broker.enqueue(messages[start : start + 500])
        expected = [m.id for m in sorted(messages, key=lambda m: m.priority)]  # stable sort
        got: list[str] = []
        while len(got) < len(messages):
            got += [d.message.id for d in (await fetch(broker, limit=250)).deliveries]
        assert got == expected

    async def test_fetch_limit(self, broker: Broker) -> None:
        await broker.enqueue([make_message() for _ in range(5)])
        assert len((await fetch(broker, limit=2)).deliveries) == 2
        assert len((await fetch(broker, limit=10)).deliveries) == 3

    async def test_deduplication_while_unfinished(self, broker: Broker) -> None:
        first = await enqueue_one(broker)
        [again] = await broker.enqueue([make_message(id=first.id, priority=99, result_ttl_s=0)])
        assert not again.accepted and again.state is TaskState.PENDING
        assert again.result_ttl_s == first.result_ttl_s  # the existing task's, not the call's
        await fetch_one(broker)
        [while_active] = await broker.enqueue([make_message(id=first.id)])
        assert not while_active.accepted and while_active.state is TaskState.ACTIVE
        assert await broker.settle(WORKER, [success(first)]) == [True]
        [after] = await broker.enqueue([make_message(id=first.id)])
        assert after.accepted and after.state is TaskState.PENDING
        stats = await broker.queue_stats(QUEUE)
        assert stats.enqueued == 2

    async def test_scheduled_task_is_not_ready_before_its_eta(self, broker: Broker) -> None:
        message = await enqueue_one(broker, eta_ms=now_ms() + 60_000)
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.SCHEDULED
        await fetch_nothing(broker)
        assert (await broker.queue_stats(QUEUE)).scheduled == 1

    async def test_delayed_task_ready_at_due_time(self, broker: Broker) -> None:
        """Not leased by a claim before its due time, leased by the first claim after it
        (both on the broker's clock); a blocked fetch returns it once it is due. How late
        is measured by benchmarks/run.py (delayed-task lateness)."""
        for delay_ms in (150, 300, 500):
            message = await enqueue_one(broker, eta_ms=now_ms() + delay_ms)
            record = await broker.get_task(message.id, QUEUE)
            assert record is not None and record.state is TaskState.SCHEDULED
            due = record.due_at_ms
            assert due is not None and due == message.eta_ms, (due, message.eta_ms)
            claimed_at, others = await claim_beside_sentinel(broker)
            if message.id in others:  # only on a slow machine: the claim came after its due time
                assert claimed_at >= due, f"leased {due - claimed_at} ms before its due time"
                continue
            assert others == [] and claimed_at <= due, f"due {claimed_at - due} ms ago, not leased"
            delivery = await fetch_one(broker)  # blocks until it is due
            assert delivery.message.id == message.id
            assert await started_at(broker, message) >= due, "leased before its due time"
            await broker.settle(WORKER, [success(message)])

    async def test_delay_counts_from_when_the_broker_stores_it(self, broker: Broker) -> None:
        """A delay is a duration: the broker adds it to its own clock when it stores the
        task, whatever the message's creation time says (here a minute ago)."""
        before = await broker_now(broker)
        message = await enqueue_one(broker, delay_ms=300, enqueued_at_ms=now_ms() - FAR_MS)
        after = await broker_now(broker)
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.SCHEDULED
        assert record.due_at_ms is not None
        assert before + 300 <= record.due_at_ms <= after + 300, (before, record.due_at_ms, after)
        assert (await fetch_one(broker)).message.id == message.id
        assert await started_at(broker, message) >= record.due_at_ms

    async def wait_until_blocked(self, broker: Broker, fetches: asyncio.Future[Any]) -> None:
        """Return once the fetch ``fetches`` (started, not awaited) waits for work.

        The default lets the event loop run a few turns: enough for a broker whose fetch
        blocks without I/O (``memory://``). Override it when the fetch talks to a server
        first (e.g. wait until the server lists the blocked connection). A wake-up test
        whose fetch had not blocked yet still passes: it then shows less."""
        for _ in range(20):
            if fetches.done():
                return
            await asyncio.sleep(0)  # a turn of the event loop, not a timed wait

    async def test_blocked_fetch_picks_up_new_task_at_once(self, broker: Broker) -> None:
        """The only deadline a fetch knows of is a minute away: a fetch that returns a new
        task within WAKE_WAIT_S was woken by the enqueue (how fast: benchmarks/run.py,
        pickup latency)."""
        await enqueue_one(broker, eta_ms=now_ms() + FAR_MS)
        for _ in range(5):
            waiting = asyncio.ensure_future(
                broker.fetch(QUEUE, worker_id=WORKER, limit=100, lease_ms=LEASE_MS)
            )
            await self.wait_until_blocked(broker, waiting)
            assert not waiting.done(), waiting
            message = await enqueue_one(broker)
            batch = await asyncio.wait_for(waiting, WAKE_WAIT_S)
            assert [d.message.id for d in batch.deliveries] == [message.id]

    async def test_delayed_enqueue_wakes_a_worker_sleeping_longer(self, broker: Broker) -> None:
        await enqueue_one(broker, eta_ms=now_ms() + FAR_MS)
        waiting = asyncio.ensure_future(
            broker.fetch(QUEUE, worker_id=WORKER, limit=100, lease_ms=LEASE_MS)
        )
        await self.wait_until_blocked(broker, waiting)
        soon = await enqueue_one(broker, eta_ms=now_ms() + 200)
        batch = await asyncio.wait_for(waiting, WAKE_WAIT_S)  # a minute without the wake-up
        assert [d.message.id for d in batch.deliveries] == [soon.id]

    async def test_cancelled_fetch_loses_nothing(self, broker: Broker) -> None:
        await fetch_nothing(broker, within_s=0.1)
        message = await enqueue_one(broker)
        assert (await fetch_one(broker)).message.id == message.id

    async def test_idle_workers_all_get_work(self, broker: Broker) -> None:
        fetchers = [
            asyncio.ensure_future(fetch(broker, limit=1, worker_id=f"w{i}")) for i in range(3)
        ]
        for fetcher in fetchers:
            await self.wait_until_blocked(broker, fetcher)
        await broker.enqueue([make_message() for _ in range(3)])
        batches = await asyncio.gather(*fetchers)
        assert sorted(len(b.deliveries) for b in batches) == [1, 1, 1]

    # --- leases -----------------------------------------------------------------------

    async def test_expired_lease_returns_task_counting_deliveries(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        assert (await fetch_one(broker, lease_ms=100)).deliveries == 1
        again = await fetch_one(broker, worker_id="worker-2")  # blocks until expiry
        assert again.message.id == message.id and again.deliveries == 2
        assert await broker.settle(WORKER, [success(message)]) == [False]
        assert await broker.settle("worker-2", [success(message)]) == [True]

    async def test_task_killing_its_worker_is_dead_lettered(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        for n in range(1, defaults.MAX_DELIVERIES + 1):
            delivery = await fetch_one(broker, lease_ms=50)
            assert (delivery.deliveries, delivery.lost) == (n, n - 1)
        record = await _finished_while_fetching(broker, message)  # a claim ends the last lease
        assert record.state is TaskState.FAILED
        assert record.error is not None
        assert f"lost its lease {defaults.MAX_DELIVERIES} times" in record.error.message
        assert [r.id for r in await broker.dead_letters(QUEUE)] == [message.id]

    async def test_retried_failures_do_not_count_as_lost_leases(self, broker: Broker) -> None:
        """Only expired leases use up the crash budget; retries have their own."""
        message = await enqueue_one(broker, max_retries=20)
        for _ in range(defaults.MAX_DELIVERIES + 1):
            await fetch_one(broker)
            assert await broker.settle(WORKER, [failure(message, 0)]) == [True]
        await fetch_one(broker, lease_ms=50)  # and then its worker dies once
        again = await fetch_one(broker, worker_id="worker-2")
        assert (again.retried, again.lost) == (defaults.MAX_DELIVERIES + 1, 1)

    async def test_a_stale_lease_of_the_same_worker_settles_nothing(self, broker: Broker) -> None:
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

    async def test_extend_leases(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker, lease_ms=150)
        assert await broker.extend_leases(WORKER, {QUEUE: [lease(message)]}, 10_000) == set()
        await fetch_nothing(broker, within_s=0.4)
        lost = await broker.extend_leases("intruder", {QUEUE: [lease(message)]}, 10_000)
        assert lost == {lease(message)}
        unknown = Lease("no-such-task", 1)
        assert await broker.extend_leases(WORKER, {QUEUE: [unknown]}, 1000) == {unknown}

    async def test_release_hands_back_at_once(self, broker: Broker) -> None:
        first, second = make_message(), make_message()
        await broker.enqueue([first, second])
        batch = await fetch(broker)
        assert await broker.release("intruder", {QUEUE: [lease(first)]}) == 0
        assert await broker.release(WORKER, {QUEUE: [lease(first), lease(second)]}) == 2
        again = await fetch(broker, worker_id="worker-2")
        assert [d.message.id for d in again.deliveries] == [d.message.id for d in batch.deliveries]
        # A new lease number; a release is neither lost nor failed.
        assert [(d.deliveries, d.lost, d.retried) for d in again.deliveries] == [(2, 0, 0)] * 2

    # --- settlement -------------------------------------------------------------------

    async def test_success_keeps_result_for_its_ttl(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        assert await broker.settle(WORKER, [success(message, b"\x00result")]) == [True]
        record = await broker.get_task(message.id)
        assert record is not None and record.state is TaskState.SUCCEEDED
        assert record.result == b"\x00result" and record.serializer == "json"
        assert record.finished_at_ms is not None
        assert (await broker.queue_stats(QUEUE)).succeeded == 1

    async def test_success_with_ttl_zero_keeps_nothing(self, broker: Broker) -> None:
        message = await enqueue_one(broker, result_ttl_s=0)
        await fetch_one(broker)
        assert await broker.settle(WORKER, [success(message)]) == [True]
        assert await broker.get_task(message.id, QUEUE) is None
        stats = await broker.queue_stats(QUEUE)
        assert (stats.pending, stats.active, stats.succeeded) == (0, 0, 1)

    async def test_settle_requires_the_lease(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        assert await broker.settle(WORKER, [success(message)]) == [False]  # not leased
        await fetch_one(broker)
        assert await broker.settle("intruder", [success(message)]) == [False]
        assert await broker.settle(WORKER, [success(message)]) == [True]
        assert await broker.settle(WORKER, [success(message)]) == [False]  # once only

    async def test_retry_after_backoff(self, broker: Broker) -> None:
        message = await enqueue_one(broker, max_retries=1)
        await fetch_one(broker)
        assert await broker.settle(WORKER, [failure(message, 150)]) == [True]
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.SCHEDULED
        assert record.error is not None and record.error.message == "boom"
        retry = await fetch_one(broker)
        assert (retry.retried, retry.deliveries) == (1, 2)
        assert (await broker.queue_stats(QUEUE)).retried == 1

    async def test_final_failure_is_dead_lettered_and_requeued(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        error = TaskError("myapp.Boom", "it broke", "Traceback (most recent call last): ...")
        assert await broker.settle(WORKER, [failure(message, error=error)]) == [True]
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.FAILED
        assert record.error == error and record.message == message
        [dead] = await broker.dead_letters(QUEUE)
        assert dead.id == message.id and dead.error == error
        stats = await broker.queue_stats(QUEUE)
        assert (stats.dead, stats.failed) == (1, 1)
        assert await broker.requeue_dead(QUEUE) == 1
        again = await fetch_one(broker)
        # Fresh retry and crash budgets; lease numbers go on (they are never reused).
        assert (again.message.id, again.retried, again.lost, again.deliveries) == (
            message.id,
            0,
            0,
            2,
        )
        assert (await broker.queue_stats(QUEUE)).dead == 0

    async def test_requeue_selected_dead_letters(self, broker: Broker) -> None:
        messages = [make_message() for _ in range(3)]
        await broker.enqueue(messages)
        await fetch(broker)
        await broker.settle(WORKER, [failure(m) for m in messages])
        assert await broker.requeue_dead(QUEUE, [messages[1].id, "unknown"]) == 1
        assert (await fetch_one(broker)).message.id == messages[1].id
        assert {r.id for r in await broker.dead_letters(QUEUE, limit=10)} == {
            messages[0].id,
            messages[2].id,
        }
        assert len(await broker.dead_letters(QUEUE, limit=1)) == 1

    async def test_unusable_task_settled_by_worker_is_dead_lettered(self, broker: Broker) -> None:
        # What a worker does for an unknown task name or an undecodable payload.
        message = await enqueue_one(broker, name="no.such.task", max_retries=5)
        await fetch_one(broker)
        error = TaskError("UnknownTaskError", "no task named 'no.such.task' is registered")
        assert await broker.settle(WORKER, [failure(message, error=error)]) == [True]
        [dead] = await broker.dead_letters(QUEUE)
        assert dead.error == error and dead.state is TaskState.FAILED

    async def test_settlements_in_one_batch(self, broker: Broker) -> None:
        messages = [make_message() for _ in range(60)]
        await broker.enqueue(messages)
        await fetch(broker)
        settlements = [success(m) if i % 3 else failure(m) for i, m in enumerate(messages)]
        assert await broker.settle(WORKER, settlements) == [True] * 60
        stats = await broker.queue_stats(QUEUE)
        assert (stats.succeeded, stats.failed, stats.active) == (40, 20, 0)

    # --- waiting for results ----------------------------------------------------------

    async def test_several_waiters_are_all_woken(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        waiters = [
            asyncio.ensure_future(broker.wait_finished(message.id, QUEUE, WAIT_S)) for _ in range(4)
        ]
        await fetch_one(broker)
        assert not any(w.done() for w in waiters), "a waiter returned before the task ended"
        await broker.settle(WORKER, [success(message, b"42")])
        records = await asyncio.gather(*waiters)
        assert all(r is not None and r.result == b"42" for r in records)

    async def test_wait_after_the_task_finished(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        await broker.settle(WORKER, [success(message)])
        record = await asyncio.wait_for(broker.wait_finished(message.id, QUEUE, None), WAIT_S)
        assert record is not None and record.state is TaskState.SUCCEEDED

    async def test_wait_times_out(self, broker: Broker) -> None:
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

    async def test_wait_for_an_unknown_task_raises(self, broker: Broker) -> None:
        await enqueue_one(broker)  # the queue exists; the awaited id does not
        with pytest.raises(TaskNotFoundError):
            await broker.wait_finished("no-such-task", QUEUE, WAIT_S)

    async def test_wait_sees_failure(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        waiter = asyncio.ensure_future(broker.wait_finished(message.id, QUEUE, WAIT_S))
        await fetch_one(broker)
        await broker.settle(WORKER, [failure(message)])
        record = await waiter
        assert record is not None and record.state is TaskState.FAILED

    # --- cancel, delete, purge --------------------------------------------------------

    async def test_cancel_pending_and_scheduled(self, broker: Broker) -> None:
        pending = await enqueue_one(broker)
        scheduled = await enqueue_one(broker, eta_ms=now_ms() + 60_000)
        waiter = asyncio.ensure_future(broker.wait_finished(pending.id, QUEUE, WAIT_S))
        assert await broker.cancel(pending.id) is CancelOutcome.CANCELLED
        assert await broker.cancel(scheduled.id, QUEUE) is CancelOutcome.CANCELLED
        record = await waiter
        assert record is not None and record.state is TaskState.CANCELLED
        stats = await broker.queue_stats(QUEUE)
        assert (stats.pending, stats.scheduled) == (0, 0)
        await fetch_nothing(broker)
        assert await broker.cancel(pending.id, QUEUE) is CancelOutcome.FINISHED
        assert await broker.cancel("unknown", QUEUE) is CancelOutcome.NOT_FOUND
        assert await broker.cancel("unknown") is CancelOutcome.NOT_FOUND

    async def test_cancel_running_is_announced(self, broker: Broker, measure: Record) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        stream = broker.cancellations()
        latency = await _announce(broker, stream, message.id)
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

    async def test_cancelled_task_with_expired_lease_never_runs_again(self, broker: Broker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker, lease_ms=100)
        assert await broker.cancel(message.id, QUEUE) is CancelOutcome.REQUESTED
        record = await _finished_while_fetching(broker, message)  # a claim ends the lease
        assert record.state is TaskState.CANCELLED

    async def test_delete(self, broker: Broker) -> None:
        pending, running, done = (make_message() for _ in range(3))
        await broker.enqueue([done])
        await fetch_one(broker)
        await broker.settle(WORKER, [success(done)])
        await broker.enqueue([running])
        await fetch_one(broker)
        await broker.enqueue([pending])
        assert await broker.delete(pending.id, QUEUE)
        assert not await broker.delete(running.id, QUEUE)
        assert await broker.delete(done.id)
        assert not await broker.delete("unknown")
        assert await broker.get_task(pending.id) is None
        assert await broker.get_task(done.id) is None
        record = await broker.get_task(running.id)
        assert record is not None and record.state is TaskState.ACTIVE

    async def test_purge(self, broker: Broker) -> None:
        running = await enqueue_one(broker)
        await fetch_one(broker)
        await broker.enqueue([make_message() for _ in range(5)])
        await broker.enqueue([make_message(eta_ms=now_ms() + 60_000) for _ in range(2)])
        assert await broker.purge(QUEUE) == 7
        stats = await broker.queue_stats(QUEUE)
        assert (stats.pending, stats.scheduled, stats.active) == (0, 0, 1)
        assert await broker.settle(WORKER, [success(running)]) == [True]

    # --- inspection and registry ------------------------------------------------------

    async def test_queues_and_lookup_without_queue(self, broker: Broker) -> None:
        a = await enqueue_one(broker, queue="alpha")
        b = await enqueue_one(broker, queue="beta")
        assert {"alpha", "beta"} <= set(await broker.queues())
        record = await broker.get_task(b.id)
        assert record is not None and record.queue == "beta"
        assert await broker.get_task(a.id, "beta") is None
        assert await broker.get_task("unknown") is None

    async def test_queue_stats_counts(self, broker: Broker) -> None:
        await broker.enqueue([make_message() for _ in range(4)])
        await broker.enqueue([make_message(eta_ms=now_ms() + 60_000)])
        batch = await fetch(broker, limit=2)
        await broker.settle(
            WORKER, [success(batch.deliveries[0].message), failure(batch.deliveries[1].message)]
        )
        stats = await broker.queue_stats(QUEUE)
        assert (stats.name, stats.pending, stats.scheduled, stats.active, stats.dead) == (
            QUEUE,
            2,
            1,
            0,
            1,
        )
        assert (stats.enqueued, stats.succeeded, stats.failed, stats.retried) == (5, 1, 1, 0)

    # --- operating (the control API) ---------------------------------------------------

    async def test_records_carry_names_groups_and_times(self, broker: Broker) -> None:
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

    async def test_list_tasks_by_state_with_cursor(self, broker: Broker) -> None:
        running = await enqueue_one(broker, priority=-10)
        await fetch_one(broker, limit=1)
        dead = await enqueue_one(broker, priority=-10)
        await fetch_one(broker, limit=1)
        await broker.settle(WORKER, [failure(dead)])
        pending = [make_message(priority=p) for p in (5, 1, 5, 0, 1)]
        await broker.enqueue(pending)
        later, sooner = (make_message(eta_ms=now_ms() + d) for d in (90_000, 60_000))
        await broker.enqueue([later, sooner])
        order = [m.id for m in sorted(pending, key=lambda m: m.priority)]
        first = await broker.list_tasks(QUEUE, TaskState.PENDING, limit=3)
        assert [r.id for r in first.tasks] == order[:3] and first.next_cursor
        rest = await broker.list_tasks(QUEUE, TaskState.PENDING, limit=3, cursor=first.next_cursor)
        assert [r.id for r in rest.tasks] == order[3:] and rest.next_cursor is None
        scheduled = (await broker.list_tasks(QUEUE, TaskState.SCHEDULED)).tasks
        assert [r.id for r in scheduled] == [sooner.id, later.id]
        assert scheduled[0].due_at_ms == sooner.eta_ms
        [active] = (await broker.list_tasks(QUEUE, TaskState.ACTIVE)).tasks
        assert (active.id, active.worker) == (running.id, WORKER)
        assert active.lease_deadline_ms is not None and active.lease_deadline_ms > now_ms()
        [failed] = (await broker.list_tasks(QUEUE, TaskState.FAILED)).tasks
        assert failed.id == dead.id and failed.error is not None
        with pytest.raises(ValueError):
            await broker.list_tasks(QUEUE, TaskState.SUCCEEDED)

    async def test_cancel_and_delete_a_group(self, broker: Broker) -> None:
        running = await enqueue_one(broker, groups=("g",))
        await fetch_one(broker)
        tagged = [make_message(groups=("g", f"n{i}")) for i in range(5)]
        tagged.append(make_message(groups=("g",), eta_ms=now_ms() + 60_000))
        others = [make_message(groups=("h",)), make_message()]
        await broker.enqueue([*tagged, *others])
        outcomes = await broker.cancel_group("g")
        assert outcomes == {
            running.id: CancelOutcome.REQUESTED,
            **{m.id: CancelOutcome.CANCELLED for m in tagged},
        }
        for message in tagged:
            record = await broker.get_task(message.id, QUEUE)
            assert record is not None and record.state is TaskState.CANCELLED
        for message in others:
            record = await broker.get_task(message.id, QUEUE)
            assert record is not None and record.state is TaskState.PENDING
        assert await broker.cancel_group("no-such-group") == {}
        assert await broker.delete_group("h", QUEUE) == 1
        assert await broker.get_task(others[0].id) is None
        assert await broker.delete_group("g") == len(tagged)  # ended (cancelled); not running
        await broker.enqueue([make_message(groups=("g",)) for _ in range(2)])
        assert await broker.delete_group("g") == 2
        record = await broker.get_task(running.id, QUEUE)
        assert record is not None and record.state is TaskState.ACTIVE

    async def test_purge_by_state_and_delete_dead_letters(self, broker: Broker) -> None:
        running = await enqueue_one(broker)
        await fetch_one(broker)
        dead = [make_message() for _ in range(3)]
        await broker.enqueue(dead)
        await fetch(broker)
        await broker.settle(WORKER, [failure(m) for m in dead])
        await broker.enqueue([make_message() for _ in range(4)])
        await broker.enqueue([make_message(eta_ms=now_ms() + 60_000) for _ in range(2)])
        assert await broker.purge_tasks(QUEUE, [TaskState.SCHEDULED]) == 2
        assert await broker.delete_dead(QUEUE, [dead[0].id, running.id, "unknown"]) == 1
        assert await broker.get_task(dead[0].id) is None
        stats = await broker.queue_stats(QUEUE)
        assert (stats.pending, stats.scheduled, stats.active, stats.dead) == (4, 0, 1, 2)
        assert await broker.purge_tasks(QUEUE, [TaskState.PENDING, TaskState.FAILED]) == 6
        stats = await broker.queue_stats(QUEUE)
        assert (stats.pending, stats.active, stats.dead) == (0, 1, 0)
        with pytest.raises(ValueError):
            await broker.purge_tasks(QUEUE, [TaskState.ACTIVE])
        assert await broker.settle(WORKER, [success(running)]) == [True]

    async def test_queue_overview(self, broker: Broker) -> None:
        before = now_ms()
        old = await enqueue_one(broker, priority=9)
        await broker.enqueue([make_message() for _ in range(3)])
        batch = await fetch(broker, limit=2)
        await broker.settle(
            WORKER, [success(batch.deliveries[0].message), failure(batch.deliveries[1].message)]
        )
        overview = await broker.queue_overview(QUEUE, minutes=5)
        assert (overview.pending, overview.active, overview.dead, overview.paused) == (
            2,
            0,
            1,
            False,
        )
        assert overview.totals == {"enqueued": 4, "succeeded": 1, "failed": 1, "retried": 0}
        assert len(overview.minutes) == 5
        assert sum(m.enqueued for m in overview.minutes) == 4
        assert sum(m.succeeded for m in overview.minutes) == 1
        minute = overview.minutes[-1].minute_ms  # the current one, as the call saw it
        assert minute <= now_ms() and before < minute + 60_000, (before, minute)
        assert overview.oldest_pending_age_s is not None
        assert 0 <= overview.oldest_pending_age_s <= (now_ms() - old.enqueued_at_ms) / 1000 + 1
        empty = await broker.queue_overview("nothing-here")
        assert (empty.pending, empty.oldest_pending_age_s) == (0, None)

    async def test_pause_and_resume(self, broker: Broker) -> None:
        running = await enqueue_one(broker)
        await fetch_one(broker)
        assert await broker.pause(QUEUE) and not await broker.pause(QUEUE)
        assert (await broker.queue_overview(QUEUE)).paused
        waiting = [make_message() for _ in range(3)]
        await broker.enqueue(waiting)
        await fetch_nothing(broker)  # paused: nothing is leased, and the fetch sleeps
        assert await broker.settle(WORKER, [success(running)]) == [True]  # running finishes
        blocked = asyncio.ensure_future(
            broker.fetch(QUEUE, worker_id=WORKER, limit=100, lease_ms=LEASE_MS)
        )
        await self.wait_until_blocked(broker, blocked)
        assert not blocked.done()
        assert await broker.resume(QUEUE) and not await broker.resume(QUEUE)
        batch = await asyncio.wait_for(blocked, WAKE_WAIT_S)  # resume wakes the fetch
        assert [d.message.id for d in batch.deliveries] == [m.id for m in waiting]
        assert QUEUE in await broker.queues()

    async def test_stop_workers(self, broker: Broker) -> None:
        for worker_id in ("w-1", "w-2"):
            await broker.heartbeat(
                WorkerRecord(id=worker_id, name="n", queues=(), heartbeat_age_s=0), ttl_s=60
            )
        stream = broker.stop_requests("w-1")
        try:
            first = asyncio.ensure_future(anext(stream))
            for _ in range(60):  # the subscription may start after the first request
                assert await broker.stop_workers(["w-1", "ghost"]) == 1
                done, _ = await asyncio.wait({first}, timeout=0.25)
                if done:
                    break
            assert first.done(), "stop request never arrived"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        # A request made before the worker listens is seen when it subscribes.
        assert await broker.stop_workers(["w-2"]) == 1
        late = broker.stop_requests("w-2")
        try:
            await asyncio.wait_for(anext(late), WAIT_S)
        finally:
            aclose = getattr(late, "aclose", None)
            if aclose is not None:
                await aclose()

    async def test_worker_registry(self, broker: Broker) -> None:
        worker = WorkerRecord(
            id="w-1", name="host:1", queues=("a", "b"), heartbeat_age_s=0, info={"pid": 1}
        )
        before = now_ms()
        await broker.heartbeat(worker, ttl_s=60)
        await broker.heartbeat(
            WorkerRecord(id="w-2", name="host:2", queues=(), heartbeat_age_s=0), ttl_s=1
        )
        found = {w.id: w for w in await broker.workers()}
        assert set(found) == {"w-1", "w-2"}
        assert found["w-1"].queues == ("a", "b") and found["w-1"].name == "host:1"
        assert found["w-1"].info == {"pid": 1}
        since_s = (now_ms() - before) / 1000
        assert 0 <= found["w-1"].heartbeat_age_s <= since_s + 1, since_s  # 1 s: clock steps
        await broker.unregister_worker("w-1")
        assert "w-1" not in {w.id for w in await broker.workers()}

    # --- forgetting queues and deleting ended tasks by group -----------------------------

    async def test_delete_group_includes_ended_tasks(self, broker: Broker) -> None:
        ended = [make_message(groups=("user:42",)) for _ in range(2)]
        cancelled = make_message(groups=("user:42", "other"))
        kept = [make_message(groups=("user:4",)), make_message(groups=("user:42x",))]
        await broker.enqueue([*ended, cancelled, *kept])
        assert await broker.cancel(cancelled.id, QUEUE) is CancelOutcome.CANCELLED
        batch = await fetch(broker)
        assert {d.message.id for d in batch.deliveries} == {m.id for m in [*ended, *kept]}
        assert await broker.settle(WORKER, [success(m) for m in [*ended, *kept]]) == [True] * 4
        elsewhere = await enqueue_one(broker, queue="elsewhere", groups=("user:42",))
        assert await broker.cancel(elsewhere.id, "elsewhere") is CancelOutcome.CANCELLED
        assert await broker.delete_group("user:42", QUEUE) == 3
        for message in [*ended, cancelled]:
            assert await broker.get_task(message.id, QUEUE) is None
        for message in kept:
            record = await broker.get_task(message.id, QUEUE)
            assert record is not None and record.state is TaskState.SUCCEEDED
        assert await broker.get_task(elsewhere.id, "elsewhere") is not None
        assert await broker.delete_group("user:42") == 1  # every queue
        assert await broker.get_task(elsewhere.id, "elsewhere") is None
        assert await broker.delete_group("user:42") == 0

    async def test_forget_an_empty_queue(self, broker: Broker) -> None:
        assert not await broker.queue_known("never-seen")
        assert await broker.pause("phantom")  # e.g. a typo, paused by mistake
        assert await broker.queue_known("phantom") and "phantom" in await broker.queues()
        assert await broker.forget_queue("phantom")
        assert "phantom" not in await broker.queues()
        assert not await broker.queue_known("phantom")
        assert not (await broker.queue_overview("phantom")).paused

        running = await enqueue_one(broker)
        assert await broker.queue_known(QUEUE)
        await fetch_one(broker)
        assert not await broker.forget_queue(QUEUE)  # active
        assert await broker.settle(WORKER, [failure(running)]) == [True]
        assert not await broker.forget_queue(QUEUE)  # dead
        assert await broker.delete_dead(QUEUE) == 1
        await enqueue_one(broker, eta_ms=now_ms() + 60_000)
        assert not await broker.forget_queue(QUEUE)  # scheduled
        assert await broker.purge_tasks(QUEUE, [TaskState.SCHEDULED]) == 1
        await enqueue_one(broker)
        assert not await broker.forget_queue(QUEUE)  # pending
        assert await broker.pause(QUEUE)
        assert await broker.purge_tasks(QUEUE, [TaskState.PENDING]) == 1

        assert await broker.forget_queue(QUEUE)
        assert QUEUE not in await broker.queues() and not await broker.queue_known(QUEUE)
        overview = await broker.queue_overview(QUEUE)
        assert not overview.paused and set(overview.totals.values()) == {0}
        again = await enqueue_one(broker)  # the queue comes back with its next task
        assert QUEUE in await broker.queues()
        assert (await fetch_one(broker)).message.id == again.id

    async def test_waiters_of_a_deleted_or_purged_task_are_told(self, broker: Broker) -> None:
        """A wait ends with TaskNotFoundError when its task is deleted or purged (not at
        its timeout, nor only at a safety net's next check)."""
        deleted, purged = await enqueue_one(broker), await enqueue_one(broker)
        waiters = [
            asyncio.ensure_future(broker.wait_finished(m.id, QUEUE, WAIT_S))
            for m in (deleted, purged)
        ]
        await asyncio.sleep(0.05)  # let the waiters start waiting (either order is correct)
        assert await broker.delete(deleted.id, QUEUE)
        assert await broker.purge(QUEUE) == 1
        for outcome in await asyncio.gather(*waiters, return_exceptions=True):
            assert isinstance(outcome, TaskNotFoundError), outcome

    async def test_a_fetch_without_wait_returns_at_once(self, broker: Broker) -> None:
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


class BrokerContract(CoreBrokerContract, CronContract):
    """The whole contract: :class:`CoreBrokerContract` plus cron schedules."""


async def _finished_while_fetching(broker: Broker, message: TaskMessage) -> TaskRecord:
    """Keep a fetch blocked until the task ends (its claims handle the task's expired
    lease; nothing else is ready); the fetch must lease nothing. The task's end."""
    fetching = asyncio.ensure_future(
        broker.fetch(QUEUE, worker_id="worker-2", limit=100, lease_ms=LEASE_MS)
    )
    try:
        record = await broker.wait_finished(message.id, QUEUE, WAKE_WAIT_S)
        assert record is not None, "the expired lease was not ended within WAKE_WAIT_S"
        assert not fetching.done(), f"the fetch leased {fetching.result()}"
        return record
    finally:
        fetching.cancel()
        await asyncio.gather(fetching, return_exceptions=True)


async def _announce(broker: Broker, stream: AsyncIterator[str], task_id: str) -> float:
    """Request the cancellation until the stream announces it (a subscription may start
    after the first request); return the latency of the announcement that arrived, in ms."""
    next_id = asyncio.ensure_future(anext(stream))
    try:
        for _ in range(60):  # re-requested every 0.25 s: the subscription may start late
            started = time.perf_counter()
            assert await broker.cancel(task_id) is CancelOutcome.REQUESTED
            done, _ = await asyncio.wait({next_id}, timeout=0.25)
            if done:
                assert next_id.result() == task_id
                return round((time.perf_counter() - started) * 1000, 2)
        raise AssertionError("cancellation of a running task was never announced")
    finally:
        next_id.cancel()
        await asyncio.gather(next_id, return_exceptions=True)
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
