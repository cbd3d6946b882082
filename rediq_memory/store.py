"""The state behind ``memory://``: one store per (URL, namespace), shared by every broker
of the process that names it (an app, its in-process worker and the worker's lease-keeper
thread), guarded by one lock.

Nothing polls: a caller that must wait registers a future and sleeps until a change is
announced or the earliest deadline it knows of passes. Changes are announced across
event loops and threads with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rediq_core.broker import FailedAttempt, TaskError, TaskState, WorkerRecord
from rediq_core.flow import QueueLimits
from rediq_core.history import HISTORY_RETENTION_MS, MINUTE_MS
from rediq_core.message import TaskMessage, now_ms
from rediq_core.task_events import TaskEvent
from rediq_core.workflow_records import StepLink, WorkflowRecord

if TYPE_CHECKING:
    from .reports import Trail

__all__ = ["QueueState", "Store", "TaskEntry", "due_of", "run_order", "store_for"]


@dataclass(slots=True)
class TaskEntry:
    """Everything known of one task (a row of the broker's task table)."""

    message: TaskMessage
    state: TaskState
    seq: int
    retried: int = 0
    deliveries: int = 0
    lost: int = 0
    worker: str | None = None
    due_ms: int | None = None
    lease_deadline_ms: int | None = None
    started_at_ms: int | None = None
    finished_at_ms: int | None = None
    result: bytes | None = None
    error: TaskError | None = None
    #: The last failed attempts that were retried (defaults.ATTEMPT_ERRORS_KEPT).
    failed_attempts: list[FailedAttempt] = field(default_factory=list)
    cancel_requested: bool = False
    expires_at_ms: int | None = None
    #: A workflow step's link, and the parents that succeeded so far (while waiting).
    link: StepLink | None = None
    joined: set[int] = field(default_factory=set)
    #: The concurrency limits it holds a slot of (while active), and the limit that
    #: stopped it first (while limited).
    slots: tuple[str, ...] = ()
    stopped_by: str | None = None
    #: Flow times (limits.py): when it must start by (until it starts), its deadline (no
    #: attempt starts after it), and when a debounced call is due (set at its enqueue).
    start_by_ms: int | None = None
    deadline_ms: int | None = None
    not_before_ms: int | None = None
    #: Progress and log lines reported while it ran (reports.py); None: none.
    trail: Trail | None = None


def due_of(message: TaskMessage, now: int) -> int | None:
    """When a task made ready now is due by its ETA or delay (None: at once)."""
    if message.eta_ms is not None:
        return message.eta_ms
    return now + message.delay_ms if message.delay_ms else None


def run_order(t: TaskEntry) -> tuple[int, int, str]:
    """The order ready (pending and limited) tasks start in: priority, position, id."""
    return (t.message.priority, t.seq, t.message.id)


@dataclass(slots=True)
class QueueState:
    name: str
    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    paused: bool = False
    totals: Counter[str] = field(default_factory=Counter)
    minutes: dict[int, Counter[str]] = field(default_factory=dict)
    dead_order: dict[str, int] = field(default_factory=dict)  # id -> when dead-lettered
    #: Rate name -> theoretical arrival time (ms) of its next token (limits.py).
    tats: dict[str, float] = field(default_factory=dict)
    #: Fair order: set once a task with a fair key was made ready here; the largest
    #: position leased so far (the service clock); each tenant's last position.
    fair: bool = False
    fair_clock: int = 0
    fair_last: dict[str, int] = field(default_factory=dict)
    #: Unique key -> the id of the task holding it; debounce key -> its last call's id.
    unique: dict[str, str] = field(default_factory=dict)
    debounce: dict[str, str] = field(default_factory=dict)
    #: The event stream (event_stream.py) and the position of its last event (ms, seq).
    events: deque[TaskEvent] = field(default_factory=deque)
    last_event: tuple[int, int] = (0, 0)

    def count(self, counter: str, n: int = 1) -> None:
        self.totals[counter] += n
        self._minute()[counter] += n

    def count_run(self, run_ms: int | None) -> None:
        """An attempt ran ``run_ms`` (None: not measured, not counted)."""
        if run_ms is not None:
            minute = self._minute()
            minute["runs"] += 1
            minute["run_ms"] += max(0, run_ms)

    def _minute(self) -> Counter[str]:
        """The current minute's counts; a new minute drops those past the history's
        retention (14 days)."""
        minute = now_ms() // MINUTE_MS * MINUTE_MS
        if minute not in self.minutes:
            for old in [m for m in self.minutes if m <= minute - HISTORY_RETENTION_MS]:
                del self.minutes[old]
            self.minutes[minute] = Counter()
        return self.minutes[minute]

    def in_state(self, state: TaskState) -> list[TaskEntry]:
        return [t for t in self.tasks.values() if t.state is state]


class Store:
    """Queues, the worker registry, and the announcements waiters sleep on."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.queues: dict[str, QueueState] = {}
        self.workers: dict[str, tuple[WorkerRecord, float, int]] = {}  # record, beat, ttl
        self.stop_requests: Counter[str] = Counter()
        self.cancellations: list[str] = []
        self.settled: dict[str, tuple[bool, int]] = {}  # settlement key -> answer, expiry
        self.workflows: dict[str, tuple[WorkflowRecord, int]] = {}  # id -> record, expiry
        #: The queues' own limits (kept when a queue is forgotten, as on Redis).
        self.queue_limits: dict[str, QueueLimits] = {}
        self.seq = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def queue(self, name: str) -> QueueState:
        if name not in self.queues:
            self.queues[name] = QueueState(name)
        return self.queues[name]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def position(self, q: QueueState, message: TaskMessage) -> int:
        """The position of a task made ready in ``q``: the next sequence number, or, once
        a task with a fair key reached the queue, its place in the fair order (start-time
        fair queueing: the later of the service clock and one past its tenant's last
        position; a task without a fair key is of tenant "")."""
        tenant = message.flow.fair if message.flow is not None else None
        q.fair = q.fair or tenant is not None
        if not q.fair:
            return self.next_seq()
        tenant = tenant or ""
        position = max(q.fair_clock, q.fair_last.get(tenant, -1) + 1)
        q.fair_last[tenant] = position
        return position

    def note_start(self, q: QueueState, position: int) -> None:
        """A task at ``position`` was leased: the service clock moves on, and tenants
        behind it are forgotten (their next task starts from the clock anyway)."""
        if position > q.fair_clock:
            q.fair_clock = position
            q.fair_last = {t: p for t, p in q.fair_last.items() if p >= position}

    # --- waiting ----------------------------------------------------------------------

    def changed(self) -> None:
        """Wake every waiter (each re-checks what it waits for). Call with the lock held."""
        waiters, self._waiters = self._waiters, set()
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)

    def waiter(self) -> asyncio.Future[None]:
        """A future resolved at the next change. Create it with the lock held, then
        release the lock and await it (with a timeout: the next deadline)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.add((loop, future))
        return future

    def forget(self, future: asyncio.Future[None]) -> None:
        with self.lock:
            self._waiters = {(lp, f) for lp, f in self._waiters if f is not future}


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def sleep_until_change(
    store: Store, future: asyncio.Future[None], timeout_s: float | None
) -> None:
    """Await ``future`` (from :meth:`Store.waiter`) for at most ``timeout_s``."""
    try:
        await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        pass
    finally:
        store.forget(future)


_STORES: dict[tuple[str, str], Store] = {}
_STORES_LOCK = threading.Lock()


def store_for(url: str, namespace: str) -> Store:
    """The process-wide store of ``url`` (``memory://`` or ``memory://name``) and
    ``namespace``."""
    key = (url.rstrip("/"), namespace)
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = Store()
        return _STORES[key]


def drop_stores(url: str | None = None) -> None:
    """Forget every store (or those of ``url``): a fresh, empty broker next time."""
    with _STORES_LOCK:
        for key in [k for k in _STORES if url is None or k[0] == url.rstrip("/")]:
            del _STORES[key]
