"""What the control API reads back: pages of tasks, queue overviews and worker status.

These records are part of the broker contract (``rediq_core.roles``) and of the public
API (``app.control``); their fields are also the ``--json`` schema of the control CLI
(docs/control.md). Times are epoch milliseconds unless a name says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import TaskRecord

__all__ = [
    "COUNTER_NAMES",
    "HistoryPoint",
    "MinuteCounts",
    "QueueHistory",
    "QueueOverview",
    "TaskPage",
    "WorkerStatus",
]

#: The per-queue counters kept in Redis, lifetime totals and per-minute buckets.
#: ``failed`` counts tasks that were dead-lettered (retries exhausted or unusable data);
#: ``expired`` tasks that ended by their expiry or deadline without (another) attempt.
COUNTER_NAMES = ("enqueued", "succeeded", "failed", "retried", "expired")


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of a listing; pass ``next_cursor`` back for the next (None: the last page).

    The cursor is an offset into the state's order: while workers change the queue, a
    page may repeat or skip a task (a listing is a view, not a snapshot).
    """

    tasks: list[TaskRecord]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """The counters of one minute (``minute_ms``: the start of that minute)."""

    minute_ms: int
    enqueued: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    expired: int = 0
    #: Attempts whose run time was recorded (settled by a worker) and their summed run
    #: time in milliseconds: ``run_ms / runs`` is the minute's mean run time.
    runs: int = 0
    run_ms: int = 0

    @property
    def mean_run_s(self) -> float | None:
        """The mean run time of the minute's recorded attempts (None: none ran)."""
        return self.run_ms / self.runs / 1000 if self.runs else None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The counters of one step of a history: ``[start_ms, start_ms + step_ms)``.

    Counts are sums over the step; ``runs``/``run_ms`` sum the recorded attempts.
    """

    start_ms: int
    step_ms: int
    enqueued: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    expired: int = 0
    runs: int = 0
    run_ms: int = 0

    @property
    def mean_run_s(self) -> float | None:
        """The mean run time of the step's recorded attempts (None: none ran)."""
        return self.run_ms / self.runs / 1000 if self.runs else None

    def per_minute(self, counter: str) -> float:
        """``counter`` per minute over the step."""
        return int(getattr(self, counter)) * 60_000 / self.step_ms


@dataclass(frozen=True, slots=True)
class QueueHistory:
    """A queue's counters from ``since_ms`` to ``until_ms`` in steps of ``step_ms``, oldest
    first; the last point may be the current, partial step. Minutes are kept for a day,
    hours for 14 days (docs/observability.md, "History")."""

    queue: str
    since_ms: int
    until_ms: int
    step_ms: int
    points: tuple[HistoryPoint, ...]


@dataclass(frozen=True, slots=True)
class QueueOverview:
    """Counts per state, the oldest ready task's wait, counters and recent minutes.

    ``minutes`` lists the last minutes, oldest first, the current (partial) minute last.
    ``consumers`` counts the live (not stale) registered workers that consume the queue;
    the control API fills it in (None where it was not read, as in a broker's answer).
    """

    name: str
    paused: bool
    pending: int
    scheduled: int
    active: int
    dead: int
    oldest_pending_age_s: float | None
    totals: Mapping[str, int]
    minutes: tuple[MinuteCounts, ...] = ()
    consumers: int | None = None
    #: Workflow steps waiting for earlier steps.
    waiting: int = 0
    #: Ready tasks a concurrency or rate limit stops from starting now.
    limited: int = 0

    @property
    def no_consumer(self) -> bool:
        """Tasks are pending and no live worker consumes the queue: they wait for nothing
        (a worker started without this ``--queue-name``, usually)."""
        return self.pending > 0 and self.consumers == 0

    def rate_per_minute(self, counter: str, minutes: int = 5) -> float:
        """Mean count of ``counter`` per minute over the last *complete* ``minutes``."""
        complete = self.minutes[:-1][-minutes:]
        if not complete:
            return 0.0
        return sum(int(getattr(m, counter)) for m in complete) / len(complete)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatus:
    """A worker's registry entry. ``stale``: its heartbeat is overdue (it may be gone)."""

    id: str
    name: str
    host: str
    pid: int | None
    queues: tuple[str, ...]
    concurrency: int | None
    running: int
    running_ids: tuple[str, ...] = ()
    processed: int = 0
    failed: int = 0
    started_at_ms: int | None = None
    heartbeat_age_s: float = 0.0
    version: str = ""
    stale: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)
