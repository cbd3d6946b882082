"""Flow control of ``memory://`` (:mod:`rediq_core.flow`), with the numbers of the Redis
broker (docs/broker.md, "Limits").

A task may start when each of its concurrency limits has fewer running tasks than its
most (running: active tasks holding a slot of that name) and each of its rates has a
token (generic cell rate: per rate name a theoretical arrival time, ``QueueState.tats``).
The queue's own limits apply to every task of the queue as the concurrency limit
:data:`QUEUE_CONCURRENCY` and the rate :data:`QUEUE_RATE`. A task that may not start is
``limited``; each claim considers the limited and pending tasks together, in run order.

Expiry and deadlines are absolute times on the entry (``start_by_ms`` until the task
starts, ``deadline_ms`` until it ends); a claim ends the tasks not running whose time came
(:func:`past_time`). A unique key (``QueueState.unique``) is held by its task until it ends
(``until_started``: until it starts); a debounce key (``QueueState.debounce``) names its
last call until that call starts.
"""

from __future__ import annotations

import math
from collections import Counter

from rediq_core.broker import TaskState
from rediq_core.flow import LimitUse, QueueFlow, QueueLimits, Rate
from rediq_core.message import TaskMessage

from .store import QueueState, TaskEntry, due_of

__all__ = [
    "NOT_STARTED",
    "QUEUE_CONCURRENCY",
    "QUEUE_RATE",
    "blocker",
    "limits_of",
    "next_time",
    "next_token",
    "note_times",
    "past_time",
    "queue_flow",
    "release_keys",
    "running",
    "start",
    "started",
    "take_keys",
    "unique_holder",
]

#: The names of the queue's own limits (as on Redis: ``rediq_redis.layout``).
QUEUE_CONCURRENCY = "c"
QUEUE_RATE = "r"

#: The states of a task that has not started (or waits to start again).
NOT_STARTED = (TaskState.PENDING, TaskState.WAITING, TaskState.LIMITED, TaskState.SCHEDULED)
#: Why a task ended ``expired`` (the same words as on Redis).
NOT_STARTED_BY_EXPIRY = "not started by its expiry"
PAST_DEADLINE = "its deadline passed before an attempt could start"

Concurrency = tuple[tuple[str, int], ...]
Rates = tuple[tuple[str, Rate], ...]


def limits_of(own: QueueLimits, message: TaskMessage) -> tuple[Concurrency, Rates]:
    """The concurrency limits and rates of a task: its own, then the queue's (``own``)."""
    flow = message.flow
    concurrency: Concurrency = flow.concurrency if flow else ()
    rates: Rates = flow.rates if flow else ()
    if own.concurrency is not None:
        concurrency += ((QUEUE_CONCURRENCY, own.concurrency),)
    if own.rate is not None:
        rates += ((QUEUE_RATE, own.rate),)
    return concurrency, rates


def running(q: QueueState) -> Counter[str]:
    """How many active tasks hold a slot of each concurrency limit (a task that left
    ``active`` holds none, whatever it recorded)."""
    return Counter(name for t in q.in_state(TaskState.ACTIVE) for name in t.slots)


def token_at(q: QueueState, name: str, rate: Rate, now: int) -> int:
    """When rate ``name`` has its next token (``now`` if it has one now)."""
    tat = q.tats.get(name, 0.0)
    return max(now, math.ceil(tat - (rate.period_ms / rate.count) * (rate.burst - 1)))


def blocker(
    q: QueueState, own: QueueLimits, entry: TaskEntry, held: Counter[str], now: int
) -> str | None:
    """The first limit that stops ``entry`` from starting now (concurrency limits before
    rates, each its own before the queue's), or None if it may start."""
    if entry.message.flow is None and own.empty:
        return None
    concurrency, rates = limits_of(own, entry.message)
    for name, most in concurrency:
        if held[name] >= most:
            return name
    for name, rate in rates:
        if token_at(q, name, rate, now) > now:
            return name
    return None


def start(q: QueueState, own: QueueLimits, entry: TaskEntry, held: Counter[str], now: int) -> None:
    """``entry`` starts: it takes a slot of each concurrency limit and a token of each rate."""
    concurrency, rates = limits_of(own, entry.message)
    entry.slots = tuple(name for name, _ in concurrency)
    held.update(entry.slots)
    for name, rate in rates:
        q.tats[name] = max(q.tats.get(name, 0.0), now) + rate.period_ms / rate.count


def forget_idle_rates(q: QueueState, now: int) -> None:
    """Drop the rates idle since ``now`` (a full bucket: the same as no state at all)."""
    for name in [n for n, tat in q.tats.items() if tat <= now]:
        del q.tats[name]


def _rate_named(own: QueueLimits, entry: TaskEntry, name: str) -> Rate | None:
    return dict(limits_of(own, entry.message)[1]).get(name)


def _next_starts(q: QueueState, own: QueueLimits, now: int) -> dict[str, int]:
    """For each rate that stopped a limited task: when it has its next token."""
    starts: dict[str, int] = {}
    for entry in q.in_state(TaskState.LIMITED):
        name = entry.stopped_by
        rate = None if name is None or name in starts else _rate_named(own, entry, name)
        if name is not None and rate is not None:
            starts[name] = token_at(q, name, rate, now)
    return starts


def next_token(q: QueueState, own: QueueLimits, now: int) -> int | None:
    """The earliest time after ``now`` a rate that stopped a limited task has a token."""
    return min((t for t in _next_starts(q, own, now).values() if t > now), default=None)


def queue_flow(q: QueueState, own: QueueLimits, now: int) -> QueueFlow:
    """The queue's own limits and the use of every limit its tasks hold or wait for."""
    held = running(q)
    waiting = Counter(t.stopped_by for t in q.in_state(TaskState.LIMITED) if t.stopped_by)
    starts = _next_starts(q, own, now)
    uses = tuple(
        LimitUse(
            name=name, running=held[name], limited=waiting[name], next_start_ms=starts.get(name)
        )
        for name in sorted({*held, *waiting, *starts})
    )
    return QueueFlow(queue=q.name, limits=own, uses=uses)


# --- expiry and deadlines ----------------------------------------------------------------


def note_times(entry: TaskEntry, now: int) -> None:
    """A new task: its expiry and deadline (durations in its flow) as times from ``now``."""
    flow = entry.message.flow
    if flow is not None and flow.expires_ms is not None:
        entry.start_by_ms = now + flow.expires_ms
    if flow is not None and flow.deadline_ms is not None:
        entry.deadline_ms = now + flow.deadline_ms


def past_time(entry: TaskEntry, now: int) -> str | None:
    """Why ``entry`` (not running) may not start now, so ends expired; None: it may."""
    if entry.start_by_ms is not None and entry.start_by_ms <= now:
        return NOT_STARTED_BY_EXPIRY
    if entry.deadline_ms is not None and entry.deadline_ms <= now:
        return PAST_DEADLINE
    return None


def next_time(q: QueueState, now: int) -> int | None:
    """The earliest expiry or deadline after ``now`` of a task that has not started."""
    times = [
        at
        for t in q.tasks.values()
        if t.state in NOT_STARTED
        for at in (t.start_by_ms, t.deadline_ms)
        if at is not None and at > now
    ]
    return min(times, default=None)


# --- unique tasks and debounce -----------------------------------------------------------


def unique_holder(q: QueueState, message: TaskMessage) -> TaskEntry | None:
    """The task holding the unique key of new task ``message`` (None: it may be stored):
    an unfinished one (``until_started``: one that has not started either)."""
    if message.flow is None or message.flow.unique is None:
        return None
    key, mode = message.flow.unique
    holder_id = q.unique.get(key)
    holder = q.tasks.get(holder_id) if holder_id and holder_id != message.id else None
    if holder is None or not holder.state.unfinished:
        return None
    if mode == "s" and holder.deliveries > 0:
        return None  # it started
    return holder


def take_keys(q: QueueState, entry: TaskEntry, now: int) -> TaskEntry | None:
    """New task ``entry`` takes its unique and debounce keys; a debounced one is due a
    debounce after ``now`` at the earliest (``not_before_ms``). Returns the call it
    replaces (if that one has not started; the caller ends it cancelled), else None."""
    flow, task_id = entry.message.flow, entry.message.id
    if flow is None:
        return None
    if flow.unique is not None:
        q.unique[flow.unique[0]] = task_id
    if flow.debounce is None:
        return None
    key, debounce_ms = flow.debounce
    previous_id = q.debounce.get(key)
    previous = q.tasks.get(previous_id) if previous_id and previous_id != task_id else None
    q.debounce[key] = task_id
    entry.not_before_ms = max(due_of(entry.message, now) or now, now + debounce_ms)
    if previous is not None and previous.deliveries == 0 and previous.state in NOT_STARTED:
        return previous
    return None


def _release(keys: dict[str, str], key: str, task_id: str) -> None:
    if keys.get(key) == task_id:
        del keys[key]


def started(q: QueueState, entry: TaskEntry) -> None:
    """``entry`` was leased: it no longer expires, holds an ``until_started`` unique key,
    or is debounced."""
    entry.start_by_ms = None
    flow, task_id = entry.message.flow, entry.message.id
    if flow is not None and flow.unique is not None and flow.unique[1] == "s":
        _release(q.unique, flow.unique[0], task_id)
    if flow is not None and flow.debounce is not None:
        _release(q.debounce, flow.debounce[0], task_id)


def release_keys(q: QueueState, entry: TaskEntry) -> None:
    """``entry`` ended (or was dead-lettered, or removed): its keys are free."""
    flow, task_id = entry.message.flow, entry.message.id
    if flow is not None and flow.unique is not None:
        _release(q.unique, flow.unique[0], task_id)
    if flow is not None and flow.debounce is not None:
        _release(q.debounce, flow.debounce[0], task_id)
