"""The control role (what ``app.control`` and the CLI use): cancel, delete, purge,
dead letters, groups, listings, stats and overviews, pause and resume, forgetting a queue."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from dataclasses import replace
from typing import ClassVar

import pytest

from rediq_core.history import history_window
from rediq_core.message import now_ms
from rediq_core.records import CancelOutcome, TaskError, TaskState
from rediq_core.roles import Role

from .helpers import (
    LEASE_MS,
    QUEUE,
    WAIT_S,
    WAKE_WAIT_S,
    WORKER,
    CoreBroker,
    RoleContract,
    enqueue_one,
    failure,
    fetch,
    fetch_nothing,
    fetch_one,
    make_message,
    success,
)

__all__ = ["ControlContract"]


class ControlContract(RoleContract):
    role = Role.CONTROL
    requires: ClassVar[frozenset[Role]] = frozenset({Role.PRODUCER, Role.CONSUMER, Role.RESULTS})

    async def test_cancel_pending_and_scheduled(self, broker: CoreBroker) -> None:
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

    async def test_delete(self, broker: CoreBroker) -> None:
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

    async def test_purge(self, broker: CoreBroker) -> None:
        running = await enqueue_one(broker)
        await fetch_one(broker)
        await broker.enqueue([make_message() for _ in range(5)])
        await broker.enqueue([make_message(eta_ms=now_ms() + 60_000) for _ in range(2)])
        assert await broker.purge_tasks(QUEUE, [TaskState.PENDING, TaskState.SCHEDULED]) == 7
        stats = await broker.queue_stats(QUEUE)
        assert (stats.pending, stats.scheduled, stats.active) == (0, 0, 1)
        assert await broker.settle(WORKER, [success(running)]) == [True]

    async def test_final_failure_is_dead_lettered_and_requeued(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker)
        await fetch_one(broker)
        error = TaskError("myapp.Boom", "it broke", "Traceback (most recent call last): ...")
        assert await broker.settle(WORKER, [failure(message, error=error)]) == [True]
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.FAILED
        assert record.error == error and record.message == message
        [dead] = (await broker.list_tasks(QUEUE, TaskState.FAILED)).tasks
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

    async def test_requeue_selected_dead_letters(self, broker: CoreBroker) -> None:
        messages = [make_message() for _ in range(3)]
        await broker.enqueue(messages)
        await fetch(broker)
        await broker.settle(WORKER, [failure(m) for m in messages])
        assert await broker.requeue_dead(QUEUE, [messages[1].id, "unknown"]) == 1
        assert (await fetch_one(broker)).message.id == messages[1].id
        assert {
            r.id for r in (await broker.list_tasks(QUEUE, TaskState.FAILED, limit=10)).tasks
        } == {
            messages[0].id,
            messages[2].id,
        }
        assert len((await broker.list_tasks(QUEUE, TaskState.FAILED, limit=1)).tasks) == 1

    async def test_queue_stats_counts(self, broker: CoreBroker) -> None:
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

    async def test_list_tasks_by_state_with_cursor(self, broker: CoreBroker) -> None:
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

    async def test_cancel_and_delete_a_group(self, broker: CoreBroker) -> None:
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

    async def test_purge_by_state_and_delete_dead_letters(self, broker: CoreBroker) -> None:
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

    async def test_queue_overview(self, broker: CoreBroker) -> None:
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
        assert overview.totals == {
            "enqueued": 4,
            "succeeded": 1,
            "failed": 1,
            "retried": 0,
            "expired": 0,
        }
        assert len(overview.minutes) == 5
        assert sum(m.enqueued for m in overview.minutes) == 4
        assert sum(m.succeeded for m in overview.minutes) == 1
        minute = overview.minutes[-1].minute_ms  # the current one, as the call saw it
        assert minute <= now_ms() and before < minute + 60_000, (before, minute)
        assert overview.oldest_pending_age_s is not None
        assert 0 <= overview.oldest_pending_age_s <= (now_ms() - old.enqueued_at_ms) / 1000 + 1
        empty = await broker.queue_overview("nothing-here")
        assert (empty.pending, empty.oldest_pending_age_s) == (0, None)

    async def test_run_time_and_history(self, broker: CoreBroker) -> None:
        """Settlements carry their attempt's run time: the minute counts the attempts and
        sums their time (a retry's too; a settlement without one is not counted), and the
        history answers the same counts, in minutes and in a step of whole hours."""
        before = now_ms()
        messages = [make_message() for _ in range(4)]
        await broker.enqueue(messages)
        batch = await fetch(broker, limit=4)
        ran = [m.message for m in batch.deliveries]
        assert len(ran) == 4
        assert (
            await broker.settle(
                WORKER,
                [
                    replace(success(ran[0]), run_ms=100),
                    replace(success(ran[1]), run_ms=300),
                    replace(failure(ran[2], retry_delay_ms=60_000), run_ms=800),
                    success(ran[3]),  # not measured
                ],
            )
            == [True] * 4
        )
        overview = await broker.queue_overview(QUEUE, minutes=2)
        runs = sum(m.runs for m in overview.minutes)
        run_ms = sum(m.run_ms for m in overview.minutes)
        assert (runs, run_ms) == (3, 1200), overview.minutes
        window = history_window(before - 60_000, step=60_000)
        history = await broker.queue_history(
            QUEUE, window.since_ms, window.until_ms, window.step_ms
        )
        assert history.points and all(p.step_ms == 60_000 for p in history.points)
        assert [p.start_ms for p in history.points] == list(window.starts)
        total = {
            name: sum(int(getattr(p, name)) for p in history.points)
            for name in ("enqueued", "succeeded", "retried", "failed", "runs", "run_ms")
        }
        assert total == {
            "enqueued": 4,
            "succeeded": 3,
            "retried": 1,
            "failed": 0,
            "runs": 3,
            "run_ms": 1200,
        }
        hours = history_window(dt.timedelta(days=2), step=dt.timedelta(hours=1))
        by_hour = await broker.queue_history(QUEUE, hours.since_ms, hours.until_ms, hours.step_ms)
        assert sum(p.enqueued for p in by_hour.points) == 4
        assert sum(p.run_ms for p in by_hour.points) == 1200
        assert all(p.step_ms == 3_600_000 for p in by_hour.points)
        empty = await broker.queue_history("nothing-here", *dataclasses.astuple(window))
        assert len(empty.points) == len(history.points) and not any(
            p.enqueued or p.runs for p in empty.points
        )

    async def test_pause_and_resume(self, broker: CoreBroker) -> None:
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

    async def test_delete_group_includes_ended_tasks(self, broker: CoreBroker) -> None:
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

    async def test_forget_an_empty_queue(self, broker: CoreBroker) -> None:
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
