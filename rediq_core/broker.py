"""The broker contract: what the worker, the handles and the control API need from a broker.

``rediq_redis`` implements it for Redis; a third-party broker implements the same ABC and
registers it for its URL schemes with ``rediq_register_brokers``. ``rediq_core.testing.
broker_contract`` is a test suite any implementation can run against itself.

Times are epoch milliseconds; durations say their unit in their name.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cron_records import CronEntry, CronFire, CronRegistration
from .message import TaskMessage

__all__ = [
    "Broker",
    "BrokerOptions",
    "CancelOutcome",
    "Delivery",
    "EnqueueOutcome",
    "FetchBatch",
    "QueueStats",
    "Rejected",
    "Settlement",
    "TaskError",
    "TaskRecord",
    "TaskState",
    "WorkerRecord",
]


class TaskState(enum.StrEnum):
    PENDING = "pending"  # ready to run
    SCHEDULED = "scheduled"  # delayed, or waiting to retry
    ACTIVE = "active"  # leased by a worker
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries exhausted or bad input: in the dead-letter set
    CANCELLED = "cancelled"

    @property
    def unfinished(self) -> bool:
        return self in (TaskState.PENDING, TaskState.SCHEDULED, TaskState.ACTIVE)


@dataclass(frozen=True, slots=True)
class EnqueueOutcome:
    """``accepted`` is False when a task with the same id is pending, scheduled or active."""

    task_id: str
    accepted: bool
    state: TaskState


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased task. ``retried`` is 0 on the first attempt; ``deliveries`` counts leases."""

    message: TaskMessage
    retried: int
    deliveries: int
    lease_deadline_ms: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """A task that was dead-lettered during fetch because its data is unusable."""

    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class FetchBatch:
    deliveries: list[Delivery]
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TaskError:
    """An exception as stored in Redis: importable type name, message, formatted traceback."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Settlement:
    """How one attempt ended.

    - ``error is None``: success; ``result`` is the serialized return value.
    - ``error`` and ``retry_at_ms``: the attempt failed and the task runs again then.
    - ``error`` and no ``retry_at_ms``: final failure, the task is dead-lettered.
    """

    task_id: str
    queue: str
    result: bytes | None = None
    error: TaskError | None = None
    retry_at_ms: int | None = None


class CancelOutcome(enum.StrEnum):
    CANCELLED = "cancelled"  # was pending or scheduled; removed
    REQUESTED = "requested"  # is running; its worker was told to cancel it
    FINISHED = "finished"  # already ended; nothing to do
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """What the broker knows of a task (``message`` is None once only its result is kept)."""

    id: str
    queue: str
    state: TaskState
    message: TaskMessage | None = None
    retried: int = 0
    deliveries: int = 0
    worker: str | None = None
    result: bytes | None = None
    error: TaskError | None = None
    serializer: str | None = None
    finished_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    name: str
    pending: int
    scheduled: int
    active: int
    dead: int
    enqueued: int
    succeeded: int
    failed: int
    retried: int


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    name: str
    queues: tuple[str, ...]
    heartbeat_age_s: float
    info: Mapping[str, Any] = field(default_factory=dict)


class Broker(abc.ABC):
    """A task store with atomic state transitions. Every method is safe to call concurrently."""

    url: str

    # --- lifecycle --------------------------------------------------------------------

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections and check the server; called once before first use."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""

    # --- producer ---------------------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(self, messages: Sequence[TaskMessage]) -> list[EnqueueOutcome]:
        """Store tasks (one atomic step each); wake a worker if one is due sooner than
        anything the workers sleep for."""

    # --- worker -----------------------------------------------------------------------

    @abc.abstractmethod
    async def fetch(self, queue: str, *, worker_id: str, limit: int, lease_ms: int) -> FetchBatch:
        """Lease up to ``limit`` ready tasks of ``queue``, highest priority first.

        Blocks without polling until at least one task is leased or rejected, sleeping
        exactly until the next known deadline (a scheduled task or a lease expiry).
        Cancelling the coroutine loses nothing. Never raises because of bad task data.
        """

    @abc.abstractmethod
    async def extend_leases(
        self, worker_id: str, leases: Mapping[str, Sequence[str]], lease_ms: int
    ) -> set[str]:
        """Extend the leases of ``{queue: [task_id, ...]}`` held by ``worker_id``.

        Returns the ids the worker must stop: lease lost, or cancellation requested.
        """

    @abc.abstractmethod
    async def settle(self, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
        """Record how attempts ended (pipelined). False where the lease was no longer held."""

    @abc.abstractmethod
    async def release(self, worker_id: str, leases: Mapping[str, Sequence[str]]) -> int:
        """Hand leased tasks back to pending at once (not counted as a failure)."""

    @abc.abstractmethod
    def cancellations(self) -> AsyncIterator[str]:
        """Task ids whose cancellation was requested, as announcements arrive."""

    # --- results and control ----------------------------------------------------------

    @abc.abstractmethod
    async def get_task(self, task_id: str, queue: str | None = None) -> TaskRecord | None:
        """The task's record, looked up in ``queue`` or, if None, in every known queue."""

    @abc.abstractmethod
    async def wait_finished(
        self, task_id: str, queue: str, timeout_s: float | None
    ) -> TaskRecord | None:
        """Block (in the broker, no polling) until the task ends; None on timeout.

        Raises :class:`~rediq_core.errors.TaskNotFoundError` when the broker holds no
        record of the task (never enqueued, purged, deleted, or its result expired).
        """

    @abc.abstractmethod
    async def cancel(self, task_id: str, queue: str | None = None) -> CancelOutcome:
        """Cancel a pending/scheduled task, or ask its worker to cancel a running one."""

    @abc.abstractmethod
    async def delete(self, task_id: str, queue: str | None = None) -> bool:
        """Forget a task that is not running (pending, scheduled, dead or finished)."""

    @abc.abstractmethod
    async def purge(self, queue: str) -> int:
        """Remove every pending and scheduled task of ``queue``; return how many."""

    @abc.abstractmethod
    async def requeue_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Move dead-lettered tasks (all, or these) back to pending with fresh counters."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[TaskRecord]:
        """The newest dead-lettered tasks of ``queue``."""

    @abc.abstractmethod
    async def queues(self) -> list[str]:
        """Every queue that has ever received a task (bounded by the namespace)."""

    @abc.abstractmethod
    async def queue_stats(self, queue: str) -> QueueStats:
        """Counts and counters of one queue."""

    # --- worker registry --------------------------------------------------------------

    @abc.abstractmethod
    async def heartbeat(self, worker: WorkerRecord, ttl_s: int) -> None:
        """Create or refresh a worker's registry entry (expires after ``ttl_s``)."""

    @abc.abstractmethod
    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registry entry."""

    @abc.abstractmethod
    async def workers(self) -> list[WorkerRecord]:
        """Live workers, with the age of their last heartbeat."""

    # --- cron schedules (docs/cron.md); optional for third-party brokers --------------

    async def cron_register(
        self, queue: str, specs: Mapping[str, str], *, replace: bool = True
    ) -> CronRegistration:
        """Store the specs (``{name: spec JSON}``) of ``queue``'s schedules served by a live
        worker and mark them seen now; announce the names whose stored spec changed.

        ``replace=False`` (a running worker's refresh) stores only missing specs and
        reports, without touching them, the names whose stored spec differs."""
        raise NotImplementedError(f"{type(self).__name__} does not support cron schedules")

    async def cron_fire(
        self, message: TaskMessage, schedule: str, tick_ms: int | None
    ) -> CronFire:
        """Fire a tick: in one atomic step, advance the schedule's last fired tick to
        ``tick_ms`` if it is older (compare-and-set) and enqueue ``message`` unless the
        schedule is paused. ``tick_ms`` None (trigger now) enqueues without the CAS."""
        raise NotImplementedError(f"{type(self).__name__} does not support cron schedules")

    async def cron_entries(self, queue: str | None = None) -> list[CronEntry]:
        """Every stored schedule (of ``queue``, or of every queue) with its state."""
        raise NotImplementedError(f"{type(self).__name__} does not support cron schedules")

    async def cron_set_paused(self, queue: str, schedule: str, paused: bool) -> bool:
        """Pause or resume a stored schedule; False if no such schedule is stored."""
        raise NotImplementedError(f"{type(self).__name__} does not support cron schedules")

    async def cron_forget(self, queue: str, schedule: str) -> bool:
        """Remove a stored schedule and its state (an orphan, usually)."""
        raise NotImplementedError(f"{type(self).__name__} does not support cron schedules")

    def cron_changes(self) -> AsyncIterator[str]:
        """Names of schedules whose stored spec changed, as announcements arrive."""
        raise NotImplementedError(f"{type(self).__name__} does not support cron schedules")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOptions:
    """Everything a broker factory receives: the app's URL, its ``redis_config`` (passed
    through to the client library) and the key namespace."""

    url: str
    config: Mapping[str, Any] = field(default_factory=dict)
    namespace: str = "rediq"
