"""The producer role: ``enqueue`` stores every field, in priority then FIFO order, once
per unfinished id, not ready before its due time (on the broker's clock), and wakes a
fetch that sleeps longer than the new task's due time."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rediq_core.message import now_ms
from rediq_core.records import TaskState
from rediq_core.roles import Role

from .helpers import (
    FAR_MS,
    LEASE_MS,
    QUEUE,
    WAKE_WAIT_S,
    WORKER,
    CoreBroker,
    RoleContract,
    broker_now,
    claim_beside_sentinel,
    enqueue_one,
    fetch,
    fetch_nothing,
    fetch_one,
    make_message,
    started_at,
    success,
)

__all__ = ["ProducerContract"]


class ProducerContract(RoleContract):
    role = Role.PRODUCER
    requires: ClassVar[frozenset[Role]] = frozenset({Role.CONSUMER, Role.RESULTS, Role.CONTROL})

    async def test_round_trip_keeps_every_field(self, broker: CoreBroker) -> None:
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

    async def test_priority_then_fifo_over_many_mixed_enqueues(self, broker: CoreBroker) -> None:
        messages = [make_message(priority=(i * 7919) % 13 - 6) for i in range(3000)]
        for start in range(0, len(messages), 500):
            await broker.enqueue(messages[start : start + 500])
        expected = [m.id for m in sorted(messages, key=lambda m: m.priority)]  # stable sort
        got: list[str] = []
        while len(got) < len(messages):
            got += [d.message.id for d in (await fetch(broker, limit=250)).deliveries]
        assert got == expected

    async def test_deduplication_while_unfinished(self, broker: CoreBroker) -> None:
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

    async def test_scheduled_task_is_not_ready_before_its_eta(self, broker: CoreBroker) -> None:
        message = await enqueue_one(broker, eta_ms=now_ms() + 60_000)
        record = await broker.get_task(message.id, QUEUE)
        assert record is not None and record.state is TaskState.SCHEDULED
        await fetch_nothing(broker)
        assert (await broker.queue_stats(QUEUE)).scheduled == 1

    async def test_delayed_task_ready_at_due_time(self, broker: CoreBroker) -> None:
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

    async def test_delay_counts_from_when_the_broker_stores_it(self, broker: CoreBroker) -> None:
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

    async def test_blocked_fetch_picks_up_new_task_at_once(self, broker: CoreBroker) -> None:
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

    async def test_delayed_enqueue_wakes_a_worker_sleeping_longer(self, broker: CoreBroker) -> None:
        await enqueue_one(broker, eta_ms=now_ms() + FAR_MS)
        waiting = asyncio.ensure_future(
            broker.fetch(QUEUE, worker_id=WORKER, limit=100, lease_ms=LEASE_MS)
        )
        await self.wait_until_blocked(broker, waiting)
        soon = await enqueue_one(broker, eta_ms=now_ms() + 200)
        batch = await asyncio.wait_for(waiting, WAKE_WAIT_S)  # a minute without the wake-up
        assert [d.message.id for d in batch.deliveries] == [soon.id]
