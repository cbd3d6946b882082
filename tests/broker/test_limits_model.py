"""Model-based test of flow control on Redis: random operation sequences with limited tasks.

Operations: enqueue tasks with flows from a fixed set (concurrency limits with keys, rates
(slow, hourly, fast), fair keys, combinations, none) and priorities; a worker fetches (without
waiting) and finishes what it got; a running task is settled (success, retry now or later,
final failure) or handed back; a worker's leases expire and a claim reclaims them; a task
is cancelled or deleted; limited or pending tasks are purged; the queue's own limits are
set or cleared; time passes (a scheduled task becomes due, rate buckets fill up).

No reference model of which task a claim picks (that is the limits' decision): the test
knows where each of its tasks is up to "ready" (pending or limited), and checks after every
step that

- the audit passes (I1, I2, I8: no task lost or in two places, a slot is held by a running
  task, a limited task is in one lane), and every task is where the test's own operations
  put it (ready, scheduled, active under its worker, failed) or ended as they imply
  (succeeded, cancelled, deleted, purged);
- no concurrency limit is exceeded: a task limit's slots are exactly its running tasks, at
  most its most; the queue's own limit counts the tasks leased while it was set, and those
  leased since it was last set are at most its most (slots taken before stay with their
  tasks: set_limits.lua);
- no rate is exceeded: the starts of a rate that stops tasks (the lease's start, on the
  server clock) never outrun its bucket: n starts within d ms need
  n <= burst + d * count / period (until the test makes time pass for it);
- no lane is stuck: a lane with limited tasks is full (concurrency), has its next start
  in `limits_due` (rate), or one of its tasks is pending (the next claim considers it);
  and a claim that leased fewer tasks than asked for left nothing pending.

At the end of each run (teardown), liveness: the queue's own limits are cleared, and
fetching and settling must end every task, waiting for the slow rate's tokens on the
server clock (an hour passes for the hourly one at each round).

Time: a worker's leases expire by moving its holder's deadline into the past, a scheduled
task becomes due by moving its due time, and rate buckets fill up by moving a rate's
theoretical arrival time (and its lane's next start) into the past -- as in
test_model.py. Real time passes too (the slow rate refills between steps): every check
holds whatever it did, and hypothesis' choices never depend on it (see the rules); the
hourly rates stop tasks whatever the speed of the machine.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
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
    TaskState,
)
from rediq_core.flow import Flow, LimitUse, QueueFlow, QueueLimits, Rate
from rediq_core.records import Delivery
from rediq_core.testing.broker_contract import make_message
from rediq_redis import BrokerSettings, QueueKeys, RedisBroker
from rediq_redis.layout import parse_record
from rediq_redis.testing import RedisServer

from .audit import QueueState, audit_queue

T = TypeVar("T")

Q = "limited"
WORKERS = ("w1", "w2", "w3")
MAX_LOST = 2
FAR = 3_600_000
#: A rate that stops tasks and refills in real time (a token every 100 ms, two at once);
#: rates whose tokens come back only when the test makes time pass (one an hour; two an
#: hour, the queue's own); and one that never stops anything.
SLOW = Rate(10, 1000, 2)
HOURLY = Rate(1, 3_600_000, 1)
TWICE_HOURLY = Rate(2, 3_600_000, 2)
FAST = Rate(1000, 1000, 100)
#: The concurrency limits of the tasks, by name: each name always has the same most.
CONCURRENCY = {"c:a": 1, "c:b:x": 2, "c:b:y": 2}
FLOWS: tuple[Flow | None, ...] = (
    None,
    Flow(concurrency=(("c:a", 1),)),
    Flow(concurrency=(("c:b:x", 2),)),
    Flow(concurrency=(("c:b:y", 2),)),
    Flow(rates=(("r:slow", SLOW),)),
    Flow(rates=(("r:fast", FAST),)),
    Flow(fair="k1"),
    Flow(fair="k2"),
    Flow(concurrency=(("c:a", 1),), rates=(("r:slow", SLOW),)),
    Flow(rates=(("r:hourly", HOURLY),)),
    Flow(concurrency=(("c:a", 1),), rates=(("r:hourly", HOURLY),)),
    Flow(concurrency=(("c:b:x", 2),), rates=(("r:hourly", HOURLY),), fair="k2"),
    Flow(concurrency=(("c:a", 1), ("c:b:y", 2))),
    Flow(concurrency=(("c:b:x", 2),), rates=(("r:fast", FAST),), fair="k1"),
    Flow(concurrency=(("c:b:y", 2),), rates=(("r:slow", SLOW),), fair="k3"),
    Flow(rates=(("r:fast", FAST),), fair="k3"),
)
#: The names of the tasks' rates.
RATES = {name for flow in FLOWS if flow for name, _ in flow.rates}
QUEUE_LIMITS = (
    QueueLimits(),
    QueueLimits(concurrency=1),
    QueueLimits(concurrency=2),
    QueueLimits(concurrency=3),
    QueueLimits(rate=SLOW),
    QueueLimits(rate=FAST),
    QueueLimits(concurrency=2, rate=SLOW),
    QueueLimits(concurrency=3, rate=TWICE_HOURLY),
)
#: Enqueue only while fewer tasks are unfinished (contention, and a bounded drain).
MAX_UNFINISHED = 15
#: How a worker finishes a running task: settles it, or hands it back.
OUTCOMES = ("success", "retry-now", "retry-later", "fail", "release")
#: A batch to enqueue: (flow, priority, now or later) per task.
SPECS = st.lists(
    st.tuples(
        st.sampled_from(FLOWS),
        st.sampled_from([-1, 0, 3]),
        st.sampled_from(["now", "now", "now", "later"]),
    ),
    min_size=1,
    max_size=5,
)
#: Picks a task among those a rule may act on (modulo their number).
WHICH = st.integers(0, 63)
#: The task rates whose starts are checked against their bucket (and the queue's own, "r",
#: unless it is FAST: that one never stops any).
CHECKED_RATES = {"r:slow": SLOW, "r:hourly": HOURLY}
#: The drain fails when no task started or ended for this long (server clock): a slow
#: rate gives a token every 100 ms.
STUCK_MS = 5_000


@dataclass
class Task:
    id: str
    flow: Flow | None
    state: str  # ready (pending or limited) | scheduled | active | failed
    due: bool = False  # scheduled and made due: the next claim makes it ready
    owner: str = ""
    deliveries: int = 0
    lost: int = 0
    cancel_flag: bool = False
    #: Its lease took a slot of the queue's own concurrency limit (set when it was leased).
    queue_slot: bool = False
    #: The number of set_limits calls before its lease.
    generation: int = 0

    def concurrency(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.flow.concurrency) if self.flow else ()

    def rates(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.flow.rates) if self.flow else ()


def check_rate(starts: list[int], rate: Rate, name: str) -> None:
    """Generic cell rate: ``n`` starts within ``d`` ms need ``n <= burst + d / interval``."""
    times = sorted(starts)
    for i, first in enumerate(times):
        for j in range(i + rate.burst, len(times)):
            n = j - i + 1
            assert (n - rate.burst) * rate.period_ms <= (times[j] - first) * rate.count, (
                f"rate {name!r} exceeded: {n} starts within {times[j] - first} ms ({times})"
            )


class LimitsMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.namespace = f"l{uuid.uuid4().hex[:10]}"
        self.keys = QueueKeys(self.namespace, Q)
        self.broker = RedisBroker(
            BrokerOptions(url=self.url, namespace=self.namespace),
            BrokerSettings(max_deliveries=MAX_LOST),
        )
        self.redis = Redis.from_url(self.url)
        self.ids = itertools.count(1)
        self.tasks: dict[str, Task] = {}
        #: How tasks ended (id -> succeeded / cancelled / deleted / purged).
        self.ended: dict[str, str] = {}
        self.unchecked: list[str] = []  # ended since the last check
        self.queue_limits = QueueLimits()
        self.generation = 0
        #: The starts of each checked rate (server ms) since its bucket was last refilled.
        self.starts: dict[str, list[int]] = {name: [] for name in (*CHECKED_RATES, "r")}
        # steps begun / checked: teardown drains only after a run whose steps all passed
        self.begun = 0
        self.checked = -1

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            if self.checked == self.begun:
                self.drain()
        finally:
            self.run(self.broker.close())
            self.run(self.redis.aclose())
            self.loop.close()

    @initialize(specs=SPECS)
    def start(self, specs: list[tuple[Flow | None, int, str]]) -> None:
        """Connect and enqueue a first batch (whichever rules a run enables, it has tasks)."""
        self.begun += 1
        self.run(self.broker.connect())
        self.add(specs)

    # --- helpers ----------------------------------------------------------------------

    def in_state(self, state: str) -> list[Task]:
        return sorted((t for t in self.tasks.values() if t.state == state), key=lambda t: t.id)

    def pick(self, which: int, tasks: list[Task]) -> Task | None:
        return tasks[which % len(tasks)] if tasks else None

    def end(self, task: Task, how: str) -> None:
        del self.tasks[task.id]
        self.ended[task.id] = how
        self.unchecked.append(task.id)

    def now(self) -> int:
        seconds, micros = self.run(self.redis.time())
        return int(seconds * 1000 + micros // 1000)

    def limits_of(self, task: Task) -> set[str]:
        """The names of every limit that applies to ``task`` now (its own and the queue's)."""
        names = {*task.concurrency(), *task.rates()}
        if self.queue_limits.concurrency is not None:
            names.add("c")
        if self.queue_limits.rate is not None:
            names.add("r")
        return names

    def unfinished(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state != "failed"]

    def fetch_and_check(self, worker: str, limit: int) -> list[Delivery]:
        """Fetch (without waiting); the deliveries must be ready tasks, within ``limit``."""
        for task in self.in_state("scheduled"):
            if task.due:  # the claim promotes it first
                task.state, task.due = "ready", False
        batch = self.run(
            asyncio.wait_for(
                self.broker.fetch(Q, worker_id=worker, limit=limit, lease_ms=FAR, wait=False), 10
            )
        )
        assert not batch.rejected, batch.rejected
        assert len(batch.deliveries) <= limit
        for delivery in batch.deliveries:
            self.leased(worker, delivery)
        for name, starts in self.starts.items():
            rate = CHECKED_RATES.get(name, self.queue_limits.rate)
            if rate is not None:
                check_rate(starts, rate, name)
        return batch.deliveries

    def leased(self, worker: str, delivery: Delivery) -> None:
        task = self.tasks.get(delivery.message.id)
        assert task is not None and task.state == "ready", (delivery.message.id, task)
        assert delivery.message.flow == task.flow
        assert (delivery.deliveries, delivery.lost) == (task.deliveries + 1, task.lost)
        task.state, task.owner, task.deliveries = "active", worker, delivery.deliveries
        task.queue_slot = self.queue_limits.concurrency is not None
        task.generation = self.generation
        started = delivery.lease_deadline_ms - FAR  # the claim's `now`
        for name in task.rates():
            if name in CHECKED_RATES:
                self.starts[name].append(started)
        if self.queue_limits.rate not in (None, FAST):
            self.starts["r"].append(started)

    def settled(self, task: Task, outcome: str) -> None:
        """The model of a settlement the owner's lease accepted."""
        task.owner = ""
        if outcome == "success":
            self.end(task, "succeeded")
        elif task.cancel_flag:
            self.end(task, "cancelled")
        elif outcome == "fail":
            task.state = "failed"
        elif outcome == "retry-now":
            task.state = "ready"
        else:
            task.state, task.due = "scheduled", False

    # --- rules ------------------------------------------------------------------------
    # No precondition and no draw depends on what a step did: rate tokens come back in
    # real time, so what a claim leases may vary between two runs of one example, and
    # hypothesis must not see its choices change shape (a rule with nothing to act on
    # does nothing; ``which`` picks a task among those it may act on).

    @rule(specs=SPECS)
    def enqueue(self, specs: list[tuple[Flow | None, int, str]]) -> None:
        """Enqueue a batch, as far as fewer than MAX_UNFINISHED tasks are unfinished."""
        self.begun += 1
        self.add(specs[: max(0, MAX_UNFINISHED - len(self.unfinished()))])

    def add(self, specs: list[tuple[Flow | None, int, str]]) -> None:
        if not specs:
            return
        messages = [
            make_message(
                queue=Q,
                id=f"t{next(self.ids):04d}",  # deterministic: draws must not vary
                flow=flow,
                priority=priority,
                result_ttl_s=60,
                **({"delay_ms": FAR} if when == "later" else {}),
            )
            for flow, priority, when in specs
        ]
        outcomes = self.run(self.broker.enqueue(messages))
        for message, (_, _, when), outcome in zip(messages, specs, outcomes, strict=True):
            assert outcome.accepted, outcome
            state = "scheduled" if when == "later" else "ready"
            self.tasks[message.id] = Task(message.id, message.flow, state)

    @rule(
        worker=st.sampled_from(WORKERS),
        limit=st.integers(1, 4),
        then=st.lists(st.sampled_from(("keep", "keep", *OUTCOMES)), max_size=4),
    )
    def fetch(self, worker: str, limit: int, then: list[str]) -> None:
        """A worker fetches, then finishes the tasks it got as ``then`` says, in order (the
        others keep running)."""
        self.begun += 1
        leased = self.claim(worker, limit)
        for delivery, outcome in zip(leased, then, strict=False):
            if outcome != "keep":
                self.finish_task(self.tasks[delivery.message.id], outcome)

    @rule(which=WHICH, outcome=st.sampled_from(OUTCOMES), refill=st.integers(0, 2))
    def finish(self, which: int, outcome: str, refill: int) -> None:
        """The owner of a running task settles it (success, retry now or later, final
        failure) or hands it back (release), then fetches up to ``refill`` more."""
        self.begun += 1
        task = self.pick(which, self.in_state("active"))
        if not task:
            return
        owner = task.owner
        self.finish_task(task, outcome)
        if refill:
            self.claim(owner, refill)

    def claim(self, worker: str, limit: int) -> list[Delivery]:
        """Fetch; a claim that leased fewer than ``limit`` went through every ready task."""
        leased = self.fetch_and_check(worker, limit)
        if len(leased) < limit:
            stats = self.run(self.broker.queue_stats(Q))
            assert stats.pending == 0, f"a claim leased {len(leased)} of {limit}: {stats}"
        return leased

    def finish_task(self, task: Task, outcome: str) -> None:
        if outcome == "release":
            lease = Lease(task.id, task.deliveries)
            assert self.run(self.broker.release(task.owner, {Q: [lease]})) == 1
            task.owner = ""
            if task.cancel_flag:
                self.end(task, "cancelled")
            else:
                task.state = "ready"
            return
        error = TaskError("E", "boom")
        settlement = (
            Settlement(task.id, Q, result=b"r", delivery=task.deliveries)
            if outcome == "success"
            else Settlement(
                task.id,
                Q,
                error=error,
                retry_delay_ms={"retry-now": 0, "retry-later": FAR}.get(outcome),
                delivery=task.deliveries,
            )
        )
        assert self.run(self.broker.settle(task.owner, [settlement])) == [True]
        self.settled(task, outcome)

    @rule(which=WHICH, fetcher=st.sampled_from(WORKERS), limit=st.integers(1, 4))
    def expire_and_fetch(self, which: int, fetcher: str, limit: int) -> None:
        """The leases of a worker (that of running task ``which``) share its holder's
        deadline: they expire together, and the next claim reclaims them (their slots
        free), whoever claims."""
        self.begun += 1
        chosen = self.pick(which, self.in_state("active"))
        if not chosen:
            return
        mine = [t for t in self.in_state("active") if t.owner == chosen.owner]
        raw = self.run(self.redis.hget(self.keys.key("tasks"), chosen.id))
        record = parse_record(raw if isinstance(raw, bytes) else None)
        assert record is not None
        self.run(self.redis.zadd(self.keys.key("holders"), {record.fields["holder"]: 1}, xx=True))
        for task in mine:
            task.owner = ""
            if task.cancel_flag:
                self.end(task, "cancelled")
            elif task.lost + 1 >= MAX_LOST:
                task.state = "failed"
            else:
                task.lost += 1
                task.state = "ready"
        self.fetch_and_check(fetcher, limit)

    @rule(which=WHICH, how=st.sampled_from(["cancel", "delete"]), ready=st.booleans())
    def remove(self, which: int, how: str, ready: bool) -> None:
        """Cancel or delete a task; with ``ready``, a pending or limited one if any."""
        self.begun += 1
        every = sorted(self.tasks.values(), key=lambda t: t.id)
        task = self.pick(which, (ready and self.in_state("ready")) or every)
        if not task:
            return
        if how == "delete":
            deleted = self.run(self.broker.delete(task.id, Q))
            assert deleted == (task.state != "active"), (task, deleted)
            if deleted:
                self.end(task, "deleted")
            return
        outcome = self.run(self.broker.cancel(task.id, Q))
        if task.state in ("ready", "scheduled"):
            assert outcome is CancelOutcome.CANCELLED, (task, outcome)
            self.end(task, "cancelled")
        elif task.state == "active":
            assert outcome is CancelOutcome.REQUESTED, (task, outcome)
            task.cancel_flag = True
        else:
            assert outcome is CancelOutcome.FINISHED, (task, outcome)

    @rule(state=st.sampled_from([TaskState.LIMITED, TaskState.PENDING]))
    def purge(self, state: TaskState) -> None:
        """Purging pending tasks may purge limited ones too: a purged pending task passes
        its lane's chance on (its lane's next task becomes pending), and purge_tasks loops
        until a call purges nothing."""
        self.begun += 1
        before = self.run(audit_queue(self.redis, self.namespace, Q)).states
        purged = self.run(self.broker.purge_tasks(Q, [state]))
        after = self.run(audit_queue(self.redis, self.namespace, Q)).states
        gone = sorted(set(before) - set(after))
        assert purged == len(gone), (purged, gone)
        assert all(before[i] in ("pending", "limited") for i in gone), (before, gone)
        chosen = {i for i, s in before.items() if s == state.value}
        if state is TaskState.LIMITED:
            assert set(gone) == chosen, (gone, chosen)
        else:
            assert chosen <= set(gone), (gone, chosen)
        for task_id in gone:
            self.end(self.tasks[task_id], "purged")

    @rule(limits=st.sampled_from(QUEUE_LIMITS))
    def set_limits(self, limits: QueueLimits) -> None:
        self.begun += 1
        self.run(self.broker.set_limits(Q, limits))
        self.queue_limits = limits
        self.generation += 1
        self.starts["r"].clear()  # a changed rate starts with a full bucket

    @rule(which=WHICH, tokens=st.booleans())
    def time_passes(self, which: int, tokens: bool) -> None:
        """Time passes: scheduled task ``which`` becomes due, or (``tokens``, or none is
        left to make due) every rate's bucket fills up and every rate lane is due."""
        self.begun += 1
        task = self.pick(which, [t for t in self.in_state("scheduled") if not t.due])
        if task and not tokens:
            self.run(self.redis.zadd(self.keys.key("scheduled"), {task.id: 1}, xx=True))
            task.due = True
            return
        self.refill()

    def refill(self, *names: str) -> None:
        """Time passes for rates ``names`` (all if none): their buckets are full, their
        lanes due."""
        for key in (self.keys.key("rates"), self.keys.key("limits_due")):
            members = self.run(self.redis.zrange(key, 0, -1))
            past = {m: 1 for m in members if isinstance(m, bytes)}
            if names:
                past = {m: 1 for m in past if m.decode() in names}
            if past:
                self.run(self.redis.zadd(key, past, xx=True))
        for name in names or self.starts:
            self.starts[name].clear()

    # --- checks -----------------------------------------------------------------------

    @invariant()
    def limits_hold(self) -> None:
        state = self.run(audit_queue(self.redis, self.namespace, Q))
        self.check_places(state)
        flow = self.run(self.broker.limits(Q))
        assert flow.limits == self.queue_limits, flow
        self.check_concurrency(flow)
        self.check_lanes(flow, state)
        self.check_endings()
        self.checked = self.begun

    def check_places(self, state: QueueState) -> None:
        """Every task is where the test's operations put it (pending and limited: ready)."""
        found = {i: "ready" if s in ("pending", "limited") else s for i, s in state.states.items()}
        assert found == {t.id: t.state for t in self.tasks.values()}
        assert state.owners == {t.id: t.owner for t in self.in_state("active")}
        assert {i: state.deliveries[i] for i in self.tasks} == {
            t.id: t.deliveries for t in self.tasks.values()
        }
        states = list(state.states.values())
        stats = self.run(self.broker.queue_stats(Q))
        counts = (stats.pending, stats.limited, stats.scheduled, stats.active, stats.dead)
        assert counts == tuple(
            states.count(s) for s in ("pending", "limited", "scheduled", "active", "failed")
        ), stats

    def check_concurrency(self, flow: QueueFlow) -> None:
        running = {use.name: use.running for use in flow.uses}
        active = self.in_state("active")
        for name, most in CONCURRENCY.items():
            holders = [t.id for t in active if name in t.concurrency()]
            assert len(holders) <= most, f"{name}: {holders} running, at most {most}"
            assert running.get(name, 0) == len(holders), (name, running, holders)
        slot_holders = [t for t in active if t.queue_slot]
        assert running.get("c", 0) == len(slot_holders), (running, slot_holders)
        queue_most = self.queue_limits.concurrency
        if queue_most is not None:
            since = [t.id for t in slot_holders if t.generation == self.generation]
            assert len(since) <= queue_most, f"queue limit {queue_most}: {since} started under it"
        assert set(running) <= {*CONCURRENCY, "c", "r", *RATES}, running

    def blocked(self, use: LimitUse) -> bool:
        """Whether the limit of ``use`` stops its lane now (a rate: until its next start)."""
        if use.kind == "rate":
            return use.next_start_ms is not None
        most = self.queue_limits.concurrency if use.name == "c" else CONCURRENCY.get(use.name)
        return most is not None and use.running >= most

    def check_lanes(self, flow: QueueFlow, state: QueueState) -> None:
        """A lane with limited tasks waits for its limit, or one of its tasks is pending."""
        limited = [i for i, s in state.states.items() if s == "limited"]
        assert sum(use.limited for use in flow.uses) == len(limited), (flow, limited)
        pending = [self.tasks[i] for i in state.pending]
        for use in flow.uses:
            if use.limited and not self.blocked(use):
                assert any(use.name in self.limits_of(t) for t in pending), (
                    f"lane {use.name!r} is stuck: {use} with limits {self.queue_limits},"
                    f" pending {[t.id for t in pending]}"
                )

    def check_endings(self) -> None:
        for task_id in self.unchecked:
            how = self.ended[task_id]
            record = self.run(self.broker.get_task(task_id, Q))
            if how in ("deleted", "purged"):
                assert record is None, (task_id, how, record)
            else:
                assert record is not None and record.state is TaskState(how), (task_id, record)
        self.unchecked.clear()

    # --- liveness ---------------------------------------------------------------------

    def drain(self) -> None:
        """Clear the queue's own limits, then fetch and settle until every task ended (or
        is a dead letter): nothing may stay limited. The slow rate's tokens come back on
        the server clock: the drain waits for them as long as a task starts or ends every
        STUCK_MS."""
        self.set_limits(QueueLimits())
        moved_at, rounds = self.now(), 0  # when a task last started or ended (server ms)
        while self.unfinished():
            moved = self.drain_round()
            self.limits_hold()
            now, rounds = self.now(), rounds + 1
            if moved:
                moved_at = now
                continue
            assert now - moved_at < STUCK_MS, (
                f"tasks stuck: {self.tasks} after {rounds} rounds;"
                f" limits {self.run(self.broker.limits(Q))}"
            )
            self.run(asyncio.sleep(0.02))  # a slow rate's next token (bounded by STUCK_MS)
        state = self.run(audit_queue(self.redis, self.namespace, Q))
        assert set(state.states.values()) <= {"failed"}, state.states
        flow = self.run(self.broker.limits(Q))
        assert not any(use.running or use.limited for use in flow.uses), flow
        self.unchecked = list(self.ended)
        self.check_endings()

    def drain_round(self) -> bool:
        """Make scheduled tasks due, an hour pass for the hourly rate, settle the running
        tasks, fetch: whether any task moved."""
        self.refill("r:hourly")
        moved = False
        for task in self.in_state("scheduled"):
            if not task.due:
                self.run(self.redis.zadd(self.keys.key("scheduled"), {task.id: 1}, xx=True))
                task.due = moved = True
        for task in self.in_state("active"):
            settlement = Settlement(task.id, Q, result=b"r", delivery=task.deliveries)
            assert self.run(self.broker.settle(task.owner, [settlement])) == [True]
            self.settled(task, "success")
            moved = True
        return bool(self.fetch_and_check(WORKERS[0], 10)) or moved


@pytest.mark.timeout(150)
def test_limits_against_invariants(rediq_redis_server: RedisServer) -> None:
    LimitsMachine.url = rediq_redis_server.url()
    run_state_machine_as_test(
        LimitsMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
