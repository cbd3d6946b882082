"""Flow control measured with 3 real worker processes against a real redis-server.

- **Rate**: 1,200 tasks of a ``rate_limit="50/s"`` task. Over the 20 s from the first
  start the starts number 1,000 ± 5 %, and no 1-s window holds more than 50 + the
  bucket (``Rate.burst``) claims.
- **Concurrency under SIGKILL**: ``concurrency_limit=2`` per tenant, 4 tenants, while
  busy workers are SIGKILLed (at most one a second) and replaced. No task starts while two
  others of its tenant run on live workers; every task runs; the slots a killed worker
  held come back (after its lease).
- **Fairness**: ``fair_key`` tenants with skewed backlogs (2,000 / 200 / 50 / 10) take
  turns (Jain's index of the starts while every tenant has tasks left), and a tenant's one
  task starts within a few claims although another tenant has 1,000+ tasks pending.

Every time is the Redis server's clock (``TIME`` in a task body, or the claim's own clock:
a task record's ``started_at_ms``); the assertions count recorded events, the measured
times are printed (``[measure]`` lines).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from rediq import TaskState
from rediq_core.flow import Rate

from ..worker.conftest import Harness, WorkerProcess

pytestmark = pytest.mark.slow

WORKERS = 3

#: The task bodies' clients: ``counter`` in the tasks module (the test uses it too).
CLIENT = """
import redis.asyncio as redis_asyncio

NS = os.environ["REDIQ_TEST_NAMESPACE"]
counter = redis_asyncio.from_url(os.environ["REDIQ_REDIS_URL"])

async def server_us():
    seconds, micros = await counter.time()
    return seconds * 1_000_000 + micros
"""


def _start_workers(harness: Harness, count: int, *args: str) -> list[WorkerProcess]:
    """``count`` workers started together, each waited for until it consumes."""
    workers = [harness.start(*args, ready=False) for _ in range(count)]
    for worker in workers:
        worker.wait_for(r"ready: consuming", timeout=30)
    return workers


async def _wait_until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    timeout_s: float,
    state: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """A bounded wait: poll ``check`` until it holds; fail naming ``what`` (and the
    ``state`` then) otherwise."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() >= deadline:
            seen = await state() if state is not None else ""
            raise AssertionError(f"waited {timeout_s} s for {what}; {seen}")
        await asyncio.sleep(0.05)  # the pacing of this bounded wait


async def _queue_state(m: Any, key: str) -> str:
    """What a stalled wait reports: the starts recorded under ``key``, the queue's counts
    and the use of its limits (a rate's limited tasks and its next start)."""
    stats = await m.app.get_broker().queue_stats("default")
    (flow,) = await m.app.control.limits("default")
    return (
        f"{await m.counter.llen(key)} starts recorded; queue: pending {stats.pending},"
        f" limited {stats.limited}, active {stats.active}; limits: {flow.as_json()['uses']}"
    )


def _busiest(times: Sequence[int], width: int) -> int:
    """The most ``times`` (sorted) in any closed window ``[t, t + width]``."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] < at - width:
            first += 1
        most = max(most, last - first + 1)
    return most


# --- rate ------------------------------------------------------------------------------

RATE_APP = (
    CLIENT
    + """
@app.task(rate_limit="50/s")
async def tick(n):
    await counter.rpush(NS + ":starts", await server_us())
    return n
"""
)

RATE_TEXT, RATE_TASKS, WINDOW_S = "50/s", 1_200, 20
#: The hang guard of the rate test: 1,200 starts at 50/s take 24 s.
RATE_WAIT_S = 90


@pytest.mark.timeout(120)
async def test_rate_limit_holds_across_three_workers(harness: Harness) -> None:
    m = harness.write_app(RATE_APP)
    rate = Rate.parse(RATE_TEXT)
    starts_key = f"{harness.namespace}:starts"
    handles = await m.app.enqueue_many([m.tick(n) for n in range(RATE_TASKS)])
    _start_workers(harness, WORKERS)

    async def all_started() -> bool:
        return int(await m.counter.llen(starts_key)) >= RATE_TASKS

    await _wait_until(
        all_started,
        f"all {RATE_TASKS} tasks to start",
        RATE_WAIT_S,
        lambda: _queue_state(m, starts_key),
    )
    results = [await h.result(timeout=30) for h in handles]

    starts = sorted(int(v) for v in await m.counter.lrange(starts_key, 0, -1))
    records = await m.app.get_broker().get_tasks([(h.id, h.queue) for h in handles])
    claims = sorted(r.started_at_ms for r in records)  # the claim's clock: admission times
    window_us = WINDOW_S * 1_000_000
    in_window = sum(1 for t in starts if t < starts[0] + window_us)
    claims_in_window = sum(1 for t in claims if t < claims[0] + WINDOW_S * 1_000)
    expected = rate.per_second * WINDOW_S
    busiest_claims = _busiest(claims, 1_000)
    busiest_starts = _busiest(starts, 1_000_000)
    print(
        f"\n[measure] rate {RATE_TEXT} (bucket {rate.burst}), {RATE_TASKS} tasks on {WORKERS}"
        f" workers: {in_window} starts in the {WINDOW_S} s from the first"
        f" ({in_window / WINDOW_S:.1f}/s; {claims_in_window} claims by the claim's clock),"
        f" expected {expected:.0f} ± 5 %; the busiest 1-s window held {busiest_claims} claims"
        f" ({busiest_starts} body starts), at most {rate.count + rate.burst} allowed"
    )
    await m.counter.aclose()
    assert results == list(range(RATE_TASKS))
    assert len(starts) == RATE_TASKS
    assert abs(in_window - expected) <= 0.05 * expected, (in_window, expected)
    assert busiest_claims <= rate.count + rate.burst


# --- concurrency under SIGKILL -----------------------------------------------------------

#: Each body adds ``<task id> <pid>`` to its tenant's ``holders`` and counts the holders
#: whose process is alive (itself included): a task of a SIGKILLed worker stays a member
#: but no longer counts. A holder leaves before its outcome is stored (before the broker
#: frees its slot), so a count above the limit means the broker let one start too many.
#: ``running:<pid>`` holds ``<tenant> <task id>`` of the tasks started there whose outcome
#: is not stored yet (after_task_success fires once it is).
CONCURRENCY_APP = (
    CLIENT
    + """
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

@app.task(concurrency_limit=2, concurrency_key="tenant")
async def job(tenant, n):
    task_id, pid = current_task_info().task_id, os.getpid()
    holders, member = f"{NS}:holders:{tenant}", f"{task_id} {pid}"
    async with counter.pipeline(transaction=False) as pipe:
        pipe.sadd(f"{NS}:running:{pid}", f"{tenant} {task_id}")
        pipe.sadd(holders, member)
        pipe.smembers(holders)
        pipe.time()
        _, _, members, (seconds, micros) = await pipe.execute()
    live = sum(alive(int(m.split()[1])) for m in members)
    start = f"{seconds * 1_000_000 + micros} {tenant} {live} {pid} {task_id}"
    await counter.rpush(NS + ":starts", start)
    try:
        await asyncio.sleep(0.2)
    finally:
        await counter.srem(holders, member)
    return n

@app.event
async def after_task_success():
    info = current_task_info()
    await counter.srem(f"{NS}:running:{os.getpid()}", f"{info.args[0]} {info.task_id}")
"""
)

TENANTS, PER_TENANT, LIMIT, KILLS = ("t0", "t1", "t2", "t3"), 150, 2, 4


@dataclass(frozen=True)
class Kill:
    at_us: int  # the server's clock just before the SIGKILL
    pid: int
    #: What the victim was running (started there, outcome not stored): task id -> tenant
    running: dict[str, str]
    #: Of those, the tasks the broker still had active: their slots stay taken until their
    #: leases expire. ``held``: how many per tenant.
    active: frozenset[str]
    held: Counter[str]


@dataclass(frozen=True, order=True)
class Start:
    at_us: int
    tenant: str
    live: int  # the tenant's tasks running on live workers at this start (this one included)
    pid: int
    task_id: str


async def _kill_a_busy_worker_a_second(
    harness: Harness, workers: list[WorkerProcess], m: Any, kills: int, seed: int
) -> list[Kill]:
    """chaos.kill_one_a_second, but each victim is a random worker among those running
    tasks (waiting for one if none is: a kill can stop every task until its leases
    expire), and each kill notes when it happened (the server's clock) and what the
    victim held."""
    rng = random.Random(seed)
    broker, ns, done = m.app.get_broker(), harness.namespace, []
    busy: list[WorkerProcess] = []

    async def some_busy() -> bool:
        busy[:] = [w for w in workers if await m.counter.scard(f"{ns}:running:{w.proc.pid}")]
        return bool(busy)

    for _ in range(kills):
        await asyncio.sleep(1.0)  # the chaos schedule: at most one kill a second
        await _wait_until(some_busy, "a worker running tasks (to kill)", 30)
        victim = rng.choice(busy)
        workers.remove(victim)
        at_us = await m.server_us()
        victim.proc.send_signal(signal.SIGKILL)
        victim.wait_exit(10)
        members = await m.counter.smembers(f"{ns}:running:{victim.proc.pid}")
        running = {task_id: tenant for tenant, task_id in (r.decode().split() for r in members)}
        records = await broker.get_tasks([(task_id, "default") for task_id in running])
        active = frozenset(r.id for r in records if r is not None and r.state is TaskState.ACTIVE)
        held = Counter(running[task_id] for task_id in active)
        done.append(Kill(at_us, victim.proc.pid, running, active, held))
        workers.append(harness.start(ready=False))
    return done


def _slots_back_us(kill: Kill, tenant: str, starts: Sequence[Start]) -> int | None:
    """How long after ``kill`` the tenant ran at its limit again although the victim had
    held ``held`` of its slots: the first later start of the tenant with more live tasks
    running than could be while any of them stayed taken (``live > LIMIT - held``; an
    upper bound when another kill took more of the tenant's slots meanwhile). None if no
    such start came."""
    return next(
        (
            start.at_us - kill.at_us
            for start in starts
            if start.tenant == tenant
            and start.at_us > kill.at_us
            and start.live > LIMIT - kill.held[tenant]
        ),
        None,
    )


def _restarted_us(kill: Kill, task_id: str, starts: Sequence[Start]) -> int | None:
    """How long after ``kill`` the victim's active task ``task_id`` started again (its
    lease expired: its slot was freed and the task went back to pending at its old
    position, so it takes that slot); None if it never did."""
    return next(
        (s.at_us - kill.at_us for s in starts if s.task_id == task_id and s.at_us > kill.at_us),
        None,
    )


def _seconds(figures: Sequence[int | None]) -> str:
    """``min-max s (n)`` of durations in µs (``never`` counted apart)."""
    seen = sorted(us for us in figures if us is not None)
    spread = f"{seen[0] / 1e6:.1f}-{seen[-1] / 1e6:.1f} s" if seen else "-"
    missing = len(figures) - len(seen)
    return f"{spread} ({len(seen)}" + (f", {missing} never)" if missing else ")")


@pytest.mark.timeout(150)
async def test_concurrency_limit_per_tenant_under_sigkill(harness: Harness) -> None:
    m = harness.write_app(CONCURRENCY_APP)
    calls = [m.job(t, n) for n in range(PER_TENANT) for t in TENANTS]
    handles = await m.app.enqueue_many(calls)
    workers = _start_workers(harness, WORKERS)  # default settings: lease 5 s
    kills = await _kill_a_busy_worker_a_second(harness, workers, m, KILLS, seed=7)
    results = [await h.result(timeout=90) for h in handles]

    raw = await m.counter.lrange(f"{harness.namespace}:starts", 0, -1)
    starts = sorted(
        Start(int(at), tenant, int(live), int(pid), task_id)
        for at, tenant, live, pid, task_id in (r.decode().split() for r in raw)
    )
    most = {t: max(s.live for s in starts if s.tenant == t) for t in TENANTS}
    runs = Counter(s.task_id for s in starts)
    exposed = frozenset().union(*(k.running for k in kills))
    twice = {task_id for task_id, count in runs.items() if count > 1}
    back = {(i, t): _slots_back_us(k, t, starts) for i, k in enumerate(kills) for t in k.held}
    restarted = {
        (i, task_id): _restarted_us(k, task_id, starts)
        for i, k in enumerate(kills)
        for task_id in sorted(k.active)
    }
    print(
        f"\n[measure] concurrency_limit={LIMIT} per tenant, {len(TENANTS)} tenants x"
        f" {PER_TENANT} tasks of 0.2 s on {WORKERS} workers (lease 5 s), {KILLS} SIGKILLs"
        f" (1/s) of busy workers holding {[sum(k.held.values()) for k in kills]} slots: most"
        f" running per tenant on live workers {most}; {len(runs)} tasks ran, {len(twice)}"
        f" more than once ({len(exposed)} were running at a kill); after a kill, its active"
        f" tasks started again in {_seconds(list(restarted.values()))} and their tenants"
        f" ran {LIMIT} at once again in {_seconds(list(back.values()))}"
    )
    await m.counter.aclose()
    assert results == [c.args[1] for c in calls]
    assert set(runs) == {h.id for h in handles}
    assert twice <= exposed, (
        f"ran more than once without being exposed to a kill: {twice - exposed}"
    )
    assert all(count <= LIMIT for count in most.values()), f"limit exceeded: {most}"
    assert all(count == LIMIT for count in most.values()), f"limit never reached: {most}"
    assert back, "no victim held a slot at its kill: the kills measured nothing"
    never = [key for key, us in {**back, **restarted}.items() if us is None]
    assert not never, f"slots a killed worker held never came back: {never}"


# --- fairness ---------------------------------------------------------------------------

FAIR_APP = (
    CLIENT
    + """
@app.task(fair_key="tenant")
async def visit(tenant, n):
    await counter.rpush(NS + ":order", tenant)
    return n
"""
)

BACKLOGS = {"A": 2_000, "B": 200, "C": 50, "D": 10}
TASK_CONCURRENCY = 4  # runners per worker: a claim takes at most this many tasks


def _jain(counts: Sequence[int]) -> float:
    """Jain's fairness index: 1 when all are equal, 1/n when one has everything."""
    return sum(counts) ** 2 / (len(counts) * sum(c * c for c in counts))


def _until_last(order: Sequence[str], tenant: str) -> Counter[str]:
    """Starts per tenant of ``order`` up to the last start of ``tenant``."""
    return Counter(order[: len(order) - list(reversed(order)).index(tenant)])


@pytest.mark.timeout(150)
async def test_fair_key_takes_turns_with_skewed_backlogs(harness: Harness) -> None:
    """The order that counts is the claims' (``started_at_ms`` of the task records, the
    server's clock at the claim that leased each task): the broker decides it. The order
    the bodies recorded (``order``) is printed too; it adds the workers' scheduling (a
    freshly started worker runs its first tasks late)."""
    m = harness.write_app(FAIR_APP)
    handles: list[Any] = []
    tenant_of: dict[str, str] = {}
    for tenant, backlog in BACKLOGS.items():  # A first
        sent = await m.app.enqueue_many([m.visit(tenant, n) for n in range(backlog)])
        handles += sent
        tenant_of.update((h.id, tenant) for h in sent)
    order_key, broker = f"{harness.namespace}:order", m.app.get_broker()
    _start_workers(harness, WORKERS, "--worker-task-concurrency", str(TASK_CONCURRENCY))

    async def started(count: int) -> bool:
        return int(await m.counter.llen(order_key)) >= count

    async def idle() -> bool:
        return int((await broker.queue_stats("default")).active) == 0

    # B's 200 end near start 460 (4 tenants x 10, 3 x 40, 2 x 150): then A alone is left
    await _wait_until(lambda: started(500), "500 starts", 60, lambda: _queue_state(m, order_key))
    # E's enqueue happens while the queue is paused (its running tasks drained), so that
    # every claim after `paused_ms` comes after E was in the queue
    await m.app.control.pause("default")
    await _wait_until(idle, "the paused queue's running tasks to end", 30)
    paused_ms = await m.server_us() // 1_000
    a_pending = (await broker.queue_stats("default")).pending
    before = int(await m.counter.llen(order_key))
    newcomer = (await m.app.enqueue_many([m.visit("E", 0)]))[0]
    tenant_of[newcomer.id] = "E"
    await m.app.control.resume("default")
    assert await newcomer.result(timeout=60) == 0
    results = [await h.result(timeout=90) for h in handles]

    records = await broker.get_tasks([(h.id, h.queue) for h in [*handles, newcomer]])
    claims = sorted((r.started_at_ms, tenant_of[r.id]) for r in records)
    d_last_ms = max(ms for ms, tenant in claims if tenant == "D")
    counts = Counter(tenant for ms, tenant in claims if ms <= d_last_ms)
    jain = _jain([counts[t] for t in BACKLOGS])
    e_ms = next(ms for ms, tenant in claims if tenant == "E")
    a_first = sum(1 for ms, tenant in claims if tenant == "A" and paused_ms <= ms < e_ms)

    order = [t.decode() for t in await m.counter.lrange(order_key, 0, -1)]
    body_counts = _until_last(order, "D")
    body_jain = _jain([body_counts[t] for t in BACKLOGS])
    body_a_first = order[before : order.index("E")].count("A")
    print(
        f"\n[measure] fair_key, backlogs {BACKLOGS} enqueued before {WORKERS} workers x"
        f" {TASK_CONCURRENCY} runners started: claims until D's last"
        f" {dict(sorted(counts.items()))}, Jain's index {jain:.3f} (as the bodies recorded"
        f" their starts: {dict(sorted(body_counts.items()))}, {body_jain:.3f}); E's one task,"
        f" enqueued with {a_pending} A tasks pending, was claimed after {a_first} more A"
        f" claims ({body_a_first} A bodies started between E's enqueue and its start)"
    )
    await m.counter.aclose()
    assert results == [n for count in BACKLOGS.values() for n in range(count)]
    assert a_pending >= 1_000, f"A's backlog was not in the thousands: {a_pending}"
    assert jain >= 0.95, f"claims per tenant until D's last: {counts}"
    assert a_first < 3 * TASK_CONCURRENCY, f"E waited behind {a_first} claims of A"
