"""Model-based test: random operation sequences against a reference model of the protocol.

Lease expiry and due times are produced by moving scores in Redis into the past (the
server clock cannot be advanced: a holder's deadline, which all the leases of its worker
share, and a scheduled task's due time); everything else goes through the broker's API. The
dimensions: several workers (leases, stale settlements), result TTLs with waiters that
must wake with the right ending, delays (relative, server clock) and ETAs (absolute),
lost leases mixed with retries, and calls re-sent with the same nonces (a lost reply)
that must answer as before and change nothing. After every step: no task is lost or in
two states, the protocol invariants hold, the counters agree with the model, and so does
the event stream (each task's latest event is the transition that put it where it is).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from rediq_core.broker import (
    BrokerOptions,
    CancelOutcome,
    Lease,
    Settlement,
    TaskError,
    TaskRecord,
    TaskState,
)
from rediq_core.testing.broker_contract import make_message
from rediq_redis import (
    BrokerSettings,
    QueueKeys,
    RedisBroker,
    control,
    keys,
    leasing,
    operate,
    producer,
)
from rediq_redis.layout import parse_record
from rediq_redis.testing import RedisServer

from .audit import audit_queue

Q = "model"
WORKERS = ("w1", "w2", "w3")
MAX_LOST = 2
FAR = 3_600_000


@dataclass
class Task:
    id: str
    priority: int
    state: str  # pending | scheduled | active | failed
    position: int = 0
    deliveries: int = 0
    retried: int = 0
    lost: int = 0
    owner: str = ""
    result_ttl_s: int = 0
    group: str = ""
    due_rank: int = 0  # order of promotion once made due (0: not due)
    expired: bool = False
    cancel_flag: bool = False


@dataclass
class Model:
    tasks: dict[str, Task] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    counters: dict[str, int] = field(
        default_factory=lambda: {"enqueued": 0, "succeeded": 0, "failed": 0, "retried": 0}
    )
    #: How tasks with a result TTL ended (id -> state), for waiters and lookups.
    ended: dict[str, str] = field(default_factory=dict)
    paused: bool = False

    def end(self, task: Task, state: str) -> None:
        del self.tasks[task.id]
        if task.result_ttl_s:
            self.ended[task.id] = state
        else:
            self.ended.pop(task.id, None)

    def in_state(self, state: str) -> list[Task]:
        return [t for t in self.tasks.values() if t.state == state]

    def pending_order(self) -> list[str]:
        return [
            t.id for t in sorted(self.in_state("pending"), key=lambda t: (t.priority, t.position))
        ]

    def make_pending(self, task: Task, fresh: bool) -> None:
        task.state = "pending"
        if fresh or not task.position:
            task.position = next(self.seq)

    def claim(self, limit: int, worker: str) -> list[str]:
        """What one claim step does: promote, reclaim, lease (returns leased ids)."""
        for task in sorted(
            (t for t in self.in_state("scheduled") if t.due_rank), key=lambda t: t.due_rank
        ):
            task.due_rank = 0
            self.make_pending(task, fresh=True)
        for task in [t for t in self.in_state("active") if t.expired]:
            task.expired, task.owner = False, ""
            if task.cancel_flag:
                self.end(task, "cancelled")
            elif task.lost + 1 >= MAX_LOST:
                task.lost += 1
                task.state = "failed"
                self.counters["failed"] += 1
                self.ended[task.id] = "failed"
            else:
                task.lost += 1
                self.make_pending(task, fresh=False)
        leased = [] if self.paused else self.pending_order()[:limit]
        for task_id in leased:
            task = self.tasks[task_id]
            task.state, task.deliveries, task.owner = "active", task.deliveries + 1, worker
        return leased


class ProtocolMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.namespace = f"m{uuid.uuid4().hex[:10]}"
        self.keys = QueueKeys(self.namespace, Q)
        self.broker = RedisBroker(
            BrokerOptions(url=self.url, namespace=self.namespace, event_stream_length=100_000),
            BrokerSettings(max_deliveries=MAX_LOST),
        )
        self.waiters: dict[str, asyncio.Task[TaskRecord | None]] = {}
        self.redis = Redis.from_url(self.url)
        self.model = Model()
        self.due_ranks = itertools.count(1)
        self.ids = itertools.count(1)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        for waiter in self.waiters.values():
            waiter.cancel()
            self.run(_settled(waiter))
        self.run(self.broker.close())
        self.run(self.redis.aclose())
        self.loop.close()

    @initialize()
    def start(self) -> None:
        self.run(self.broker.connect())

    def pick(self, data: st.DataObject, state: str) -> Task:
        return data.draw(st.sampled_from(sorted(self.model.in_state(state), key=lambda t: t.id)))

    # --- rules ------------------------------------------------------------------------

    @rule(
        priority=st.integers(0, 2),
        timing=st.sampled_from(["now", "delay", "eta", "past-eta"]),
        reuse=st.booleans(),
        ttl=st.sampled_from([0, 60]),
        resend=st.booleans(),
        group=st.sampled_from(["g", "h"]),
        data=st.data(),
    )
    def enqueue(
        self,
        priority: int,
        timing: str,
        reuse: bool,
        ttl: int,
        resend: bool,
        group: str,
        data: st.DataObject,
    ) -> None:
        task_id = f"task{next(self.ids):04d}"  # deterministic: draws must not vary
        if reuse and self.model.tasks:
            task_id = data.draw(st.sampled_from(sorted(self.model.tasks)))
        when = {
            "delay": {"delay_ms": FAR},
            "eta": {"eta_ms": self.now() + FAR},
            "past-eta": {"eta_ms": self.now() - FAR},
        }.get(timing, {})
        message = make_message(
            queue=Q, id=task_id, priority=priority, result_ttl_s=ttl, groups=(group,), **when
        )
        [outcome] = self.twice(resend, lambda: self.broker.enqueue([message]))
        existing = self.model.tasks.get(task_id)
        if existing and existing.state != "failed":
            assert not outcome.accepted and outcome.state == existing.state
            assert outcome.result_ttl_s == existing.result_ttl_s
            return
        assert outcome.accepted
        delayed = timing in ("delay", "eta")
        task = Task(
            task_id, priority, "scheduled" if delayed else "pending", result_ttl_s=ttl, group=group
        )
        if not delayed:
            task.position = next(self.model.seq)
        self.model.tasks[task_id] = task
        self.model.ended.pop(task_id, None)
        self.model.counters["enqueued"] += 1

    def twice(self, resend: bool, call):  # type: ignore[no-untyped-def]
        """Run a broker call; with ``resend``, send it again with the same nonces (a lost
        reply) and check that the second answer is the first."""
        if not resend:
            return self.run(call())
        nonce = uuid.uuid4().bytes[:4].translate(bytes.maketrans(b"|,", b"/."))
        users = [keys, producer, control, operate, leasing]  # every module that makes nonces
        real = keys.new_nonce
        for module in users:
            module.new_nonce = lambda: nonce  # type: ignore[attr-defined]
        try:
            first = self.run(call())
            assert self.run(call()) == first, "a re-sent call answered differently"
        finally:
            for module in users:
                module.new_nonce = real  # type: ignore[attr-defined]
        return first

    @rule(limit=st.integers(1, 4), worker=st.sampled_from(WORKERS))
    def fetch(self, limit: int, worker: str) -> None:
        expected = self.model.claim(limit, worker)
        if expected:
            batch = self.run(
                asyncio.wait_for(
                    self.broker.fetch(Q, worker_id=worker, limit=limit, lease_ms=FAR), 5
                )
            )
            assert [d.message.id for d in batch.deliveries] == expected
            for delivery in batch.deliveries:
                task = self.model.tasks[delivery.message.id]
                assert (delivery.deliveries, delivery.retried, delivery.lost) == (
                    task.deliveries,
                    task.retried,
                    task.lost,
                )
        else:
            self.run(self.fetch_nothing(worker))

    async def fetch_nothing(self, worker: str) -> None:
        fetching = asyncio.ensure_future(
            self.broker.fetch(Q, worker_id=worker, limit=1, lease_ms=FAR)
        )
        done, _ = await asyncio.wait({fetching}, timeout=0.05)
        assert not done, f"unexpected fetch result {fetching.result()}"
        fetching.cancel()
        await asyncio.gather(fetching, return_exceptions=True)

    @precondition(lambda self: self.model.in_state("scheduled"))
    @rule(data=st.data())
    def make_due(self, data: st.DataObject) -> None:
        task = self.pick(data, "scheduled")
        if not task.due_rank:
            task.due_rank = next(self.due_ranks)
            self.run(self.redis.zadd(self.keys.key("scheduled"), {task.id: task.due_rank}, xx=True))
            self.time_passed()

    @precondition(lambda self: self.model.in_state("active"))
    @rule(data=st.data())
    def expire_lease(self, data: st.DataObject) -> None:
        """A worker's leases in a queue share its holder's deadline: they expire together."""
        task = self.pick(data, "active")
        record = parse_record(self.run(self.redis.hget(self.keys.key("tasks"), task.id)))
        assert record is not None
        self.run(self.redis.zadd(self.keys.key("holders"), {record.fields["holder"]: 1}, xx=True))
        for other in self.model.in_state("active"):
            if other.owner == task.owner:
                other.expired = True
        self.time_passed()

    def time_passed(self) -> None:
        """A deadline moved into the past stands for time passing: a worker that found its
        queue drained waits only until the next deadline its claim reported, so its next
        fetch would claim by then. Forget those waits (the broker's memo of them)."""
        self.run(self.broker._ready()).drained.clear()

    @precondition(lambda self: self.model.in_state("active"))
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["success", "retry-now", "retry-later", "fail"]),
        holder=st.sampled_from(["owner", "other-worker", "stale-lease"]),
        resend=st.booleans(),
    )
    def settle(self, data: st.DataObject, outcome: str, holder: str, resend: bool) -> None:
        task = self.pick(data, "active")
        error = TaskError("E", "boom")
        delay = {"retry-now": 0, "retry-later": FAR}.get(outcome)
        worker, delivery = task.owner, task.deliveries
        if holder == "other-worker":
            worker = next(w for w in WORKERS if w != task.owner)
        elif holder == "stale-lease":
            delivery -= 1
        settlement = (
            Settlement(task.id, Q, result=b"r", delivery=delivery)
            if outcome == "success"
            else Settlement(task.id, Q, error=error, retry_delay_ms=delay, delivery=delivery)
        )
        [ok] = self.twice(resend, lambda: self.broker.settle(worker, [settlement]))
        assert ok == (holder == "owner")
        if not ok:
            return
        task.expired, task.owner = False, ""
        if outcome == "success":
            self.model.end(task, "succeeded")
            self.model.counters["succeeded"] += 1
        elif task.cancel_flag:
            self.model.end(task, "cancelled")
        elif outcome == "fail":
            task.state = "failed"
            self.model.counters["failed"] += 1
            self.model.ended[task.id] = "failed"
        else:
            task.retried += 1
            self.model.counters["retried"] += 1
            if outcome == "retry-now":
                self.model.make_pending(task, fresh=True)
            else:
                task.state = "scheduled"

    @precondition(lambda self: self.model.in_state("active"))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        task = self.pick(data, "active")
        lease = Lease(task.id, task.deliveries)
        assert self.run(self.broker.release(task.owner, {Q: [lease]})) == 1
        task.expired, task.owner = False, ""
        if task.cancel_flag:
            self.model.end(task, "cancelled")
        else:
            self.model.make_pending(task, fresh=False)

    @precondition(lambda self: self.model.tasks)
    @rule(data=st.data(), resend=st.booleans())
    def cancel(self, data: st.DataObject, resend: bool) -> None:
        task = data.draw(st.sampled_from(sorted(self.model.tasks.values(), key=lambda t: t.id)))
        self.model_cancel(task, self.twice(resend, lambda: self.broker.cancel(task.id, Q)))

    def model_cancel(self, task: Task, outcome: CancelOutcome) -> None:
        if task.state in ("pending", "scheduled") or (task.state == "active" and task.expired):
            assert outcome is CancelOutcome.CANCELLED
            self.model.end(task, "cancelled")
        elif task.state == "active":
            assert outcome is CancelOutcome.REQUESTED
            task.cancel_flag = True
        else:
            assert outcome is CancelOutcome.FINISHED

    @precondition(lambda self: self.model.in_state("failed"))
    @rule(data=st.data())
    def requeue(self, data: st.DataObject) -> None:
        task = self.pick(data, "failed")
        assert self.run(self.broker.requeue_dead(Q, [task.id])) == 1
        task.retried = task.lost = 0  # lease numbers (deliveries) go on
        task.cancel_flag = False
        self.model.ended.pop(task.id, None)
        self.model.make_pending(task, fresh=True)

    @precondition(lambda self: self.model.tasks)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        task = data.draw(st.sampled_from(sorted(self.model.tasks.values(), key=lambda t: t.id)))
        deleted = self.run(self.broker.delete(task.id, Q))
        assert deleted == (task.state != "active")
        if deleted:
            del self.model.tasks[task.id]
            self.model.ended.pop(task.id, None)

    @rule(group=st.sampled_from(["g", "h"]))
    def cancel_group(self, group: str) -> None:
        outcomes = self.run(self.broker.cancel_group(group, Q))
        members = sorted(
            (t for t in self.model.tasks.values() if t.group == group), key=lambda t: t.id
        )
        assert set(outcomes) == {t.id for t in members}
        for task in members:
            self.model_cancel(task, outcomes[task.id])

    @rule()
    def pause(self) -> None:
        assert self.run(self.broker.pause(Q)) == (not self.model.paused)
        self.model.paused = True

    @rule()
    def resume(self) -> None:
        assert self.run(self.broker.resume(Q)) == self.model.paused
        self.model.paused = False

    @rule(state=st.sampled_from(["pending", "scheduled", "failed"]))
    def purge(self, state: str) -> None:
        doomed = self.model.in_state(state)
        assert self.run(self.broker.purge_tasks(Q, [TaskState(state)])) == len(doomed)
        for task in doomed:
            del self.model.tasks[task.id]
            self.model.ended.pop(task.id, None)

    @precondition(lambda self: self.model.in_state("failed"))
    @rule(data=st.data())
    def delete_dead(self, data: st.DataObject) -> None:
        task = self.pick(data, "failed")
        assert self.run(self.broker.delete_dead(Q, [task.id, "no-such-task"])) == 1
        del self.model.tasks[task.id]
        self.model.ended.pop(task.id, None)

    @precondition(lambda self: any(t.result_ttl_s for t in self.model.tasks.values()))
    @rule(data=st.data())
    def wait(self, data: st.DataObject) -> None:
        """A waiter blocks on a task with a result TTL; it must wake with its ending."""
        task = data.draw(
            st.sampled_from(
                sorted((t for t in self.model.tasks.values() if t.result_ttl_s), key=lambda t: t.id)
            )
        )
        if task.id not in self.waiters:
            self.waiters[task.id] = self.loop.create_task(self.broker.wait_finished(task.id, Q, 30))

    # --- invariants -------------------------------------------------------------------

    def now(self) -> int:
        seconds, micros = self.run(self.redis.time())
        return int(seconds * 1000 + micros // 1000)

    @invariant()
    def redis_matches_model(self) -> None:
        state = self.run(audit_queue(self.redis, self.namespace, Q))
        model = self.model
        assert state.pending == model.pending_order()
        assert state.scheduled == {t.id for t in model.in_state("scheduled")}
        assert state.active == {t.id for t in model.in_state("active")}
        assert state.dead == {t.id for t in model.in_state("failed")}
        assert state.deliveries == {t.id: t.deliveries for t in model.tasks.values()}
        assert state.retried == {t.id: t.retried for t in model.tasks.values()}
        assert state.lost == {t.id: t.lost for t in model.tasks.values() if t.lost}
        assert state.owners == {t.id: t.owner for t in model.in_state("active")}
        self.check_endings()
        stats = self.run(self.broker.queue_stats(Q))
        assert (stats.enqueued, stats.succeeded, stats.failed, stats.retried) == tuple(
            model.counters[k] for k in ("enqueued", "succeeded", "failed", "retried")
        )
        overview = self.run(self.broker.queue_overview(Q, minutes=60))
        assert overview.paused == model.paused
        for name, total in model.counters.items():  # every event is in a minute bucket
            assert sum(getattr(m, name) for m in overview.minutes) == total, name
        index = {m.decode() for m in self.run(self.redis.zrange(self.keys.key("groups"), 0, -1))}
        assert index == {f"{t.group}\n{t.id}" for t in model.tasks.values()}

    @invariant()
    def events_match_model(self) -> None:
        """I11: each task's latest event is the step that put it in its model state."""
        latest: dict[str, dict[bytes, bytes]] = {}
        for _, fields in self.run(self.redis.xrange(self.keys.key("events"))):
            latest[fields[b"t"].decode()] = fields
        allowed = {
            "pending": {"enqueued", "retried", "started"},  # started: released or lost since
            "scheduled": {"enqueued", "retried"},
            "active": {"started"},
            "failed": {"failed"},
        }
        for task in self.model.tasks.values():
            event = latest[task.id]
            kind = event[b"k"].decode()
            assert kind in allowed[task.state], (task, event)
            if task.state == "active":
                assert event[b"d"].decode() == task.owner, (task, event)
                assert int(event[b"a"]) == task.retried + 1, (task, event)
        for task_id, ending in self.model.ended.items():
            assert latest[task_id][b"k"].decode() == ending, (task_id, latest[task_id])

    def check_endings(self) -> None:
        """Waiters of ended tasks wake with the ending; lookups agree with the model."""
        for task_id, waiter in list(self.waiters.items()):
            ending = self.model.ended.get(task_id)
            if task_id in self.model.tasks and self.model.tasks[task_id].state != "failed":
                assert not waiter.done(), f"a waiter of unfinished {task_id} woke"
                continue
            del self.waiters[task_id]
            if ending is None:  # deleted, or ended without a result kept
                waiter.cancel()
                self.run(_settled(waiter))
                continue
            record = self.run(asyncio.wait_for(waiter, 5))
            assert record is not None and record.state is TaskState(ending), (task_id, record)
        for task_id, ending in self.model.ended.items():
            record = self.run(self.broker.get_task(task_id, Q))
            assert record is not None and record.state is TaskState(ending), (task_id, record)


async def _settled(task: asyncio.Task[object]) -> None:
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.timeout(150)
def test_protocol_against_model(rediq_redis_server: RedisServer) -> None:
    ProtocolMachine.url = rediq_redis_server.url()
    run_state_machine_as_test(
        ProtocolMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
