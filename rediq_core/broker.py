"""The broker contract: what the worker, the handles and the control API need from a broker.

``rediq_redis`` implements it for Redis; a third-party broker implements the same ABC and
registers it for its URL schemes with ``rediq_register_brokers``. ``rediq_core.testing.
broker_contract`` is a test suite any implementation can run against itself.

Times are epoch milliseconds; durations say their unit in their name.
"""

from __future__ import annotations

import abc
import enum
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

from .cron_records import CronEntry, CronFire, CronRegistration
from .diagnosis import Check
from .inspection import QueueOverview, TaskPage
from .message import TaskMessage
from .roles import CORE_ROLES, Role

__all__ = [
    "Broker",
    "BrokerOptions",
    "CancelOutcome",
    "Delivery",
    "EnqueueOutcome",
    "FetchBatch",
    "Lease",
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
    """``accepted`` is False when a task with the same id is pending, scheduled or active;
    ``result_ttl_s`` is then that task's, which is what a waiter of the id depends on."""

    task_id: str
    accepted: bool
    state: TaskState
    result_ttl_s: int | None = None


class Lease(NamedTuple):
    """One lease of a task: its id and its delivery number (the ``deliveries`` count when
    it was leased). Two leases of one task never share a number, so a worker that holds a
    stale lease cannot settle, renew or hand back a newer one."""

    task_id: str
    delivery: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased task. ``retried`` is 0 on the first attempt (failed attempts so far);
    ``deliveries`` counts leases, this one included (it is the lease's number); ``lost``
    counts earlier leases that expired unsettled (the worker died or stalled)."""

    message: TaskMessage
    retried: int
    deliveries: int
    lease_deadline_ms: int
    lost: int = 0

    @property
    def lease(self) -> Lease:
        return Lease(self.message.id, self.deliveries)


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
    - ``error`` and ``retry_delay_ms``: the attempt failed and the task runs again that
      long after the broker stored this (counted on the broker's clock, never the
      worker's).
    - ``error`` and no ``retry_delay_ms``: final failure, the task is dead-lettered.

    ``delivery`` names the lease being settled (:attr:`Delivery.deliveries`); ``None``
    accepts whichever lease the worker holds (tools and tests; the worker always names it).
    ``key`` identifies this settlement: sending it again (a retry after a lost reply)
    answers as the first time and changes nothing.
    """

    task_id: str
    queue: str
    result: bytes | None = None
    error: TaskError | None = None
    retry_delay_ms: int | None = None
    delivery: int | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:16])


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
    name: str | None = None
    priority: int | None = None
    groups: tuple[str, ...] = ()
    enqueued_at_ms: int | None = None
    #: When its current (or last) lease began.
    started_at_ms: int | None = None
    #: Scheduled tasks: when they become ready.
    due_at_ms: int | None = None
    #: Active tasks: when the lease expires unless the worker extends it.
    lease_deadline_ms: int | None = None


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
    """A task store with atomic state transitions. Every method is safe to call concurrently.

    It is the sum of the core roles of ``rediq_core.roles`` (producer, consumer, results,
    control, registry); ``roles`` lists what this broker supports, optional roles (cron,
    diagnosis) included when it implements them.
    """

    url: str
    roles: ClassVar[frozenset[Role]] = CORE_ROLES

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
    async def fetch(
        self, queue: str, *, worker_id: str, limit: int, lease_ms: int, wait: bool = True
    ) -> FetchBatch:
        """Lease up to ``limit`` ready tasks of ``queue``, highest priority first.

        Blocks without polling until at least one task is leased or rejected, sleeping
        exactly until the next known deadline (a scheduled task or a lease expiry).
        With ``wait=False`` it claims what is ready now and returns at once, possibly
        with nothing (a worker claims so with the slots it reserved for a queue that had
        more due tasks, so that no slot stays reserved while a fetch blocks).
        Cancelling the coroutine at any instant loses nothing: a claim already sent is
        awaited and what it leased handed back. Never raises because of bad task data.
        """

    @abc.abstractmethod
    async def extend_leases(
        self, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
    ) -> set[Lease]:
        """Extend ``{queue: [lease, ...]}`` held by ``worker_id``.

        Returns the leases the worker must stop: lost, or cancellation requested.
        """

    @abc.abstractmethod
    async def settle(self, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
        """Record how attempts ended (pipelined). False where the lease was no longer held.

        Safe to re-send: a settlement stored once and sent again (a lost reply) answers
        True again and changes nothing.
        """

    @abc.abstractmethod
    async def release(self, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int:
        """Hand leased tasks back to pending at once (not counted as lost or failed)."""

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

    # --- operating (the control API) ---------------------------------------------------

    @abc.abstractmethod
    async def list_tasks(
        self, queue: str, state: TaskState, *, limit: int = 100, cursor: str | None = None
    ) -> TaskPage:
        """A page of ``queue``'s tasks in ``state`` (pending, scheduled, active or failed):
        pending in run order, scheduled by due time, active by lease deadline, dead letters
        newest first."""

    @abc.abstractmethod
    async def cancel_group(self, group: str, queue: str | None = None) -> dict[str, CancelOutcome]:
        """Cancel every unfinished task tagged ``group`` (in ``queue`` or in every queue):
        each is one atomic cancel. Returns the outcome per task id."""

    @abc.abstractmethod
    async def delete_group(self, group: str, queue: str | None = None) -> int:
        """Delete every task tagged ``group`` that is not running (waiting, dead, or ended
        with its result still kept); return how many."""

    @abc.abstractmethod
    async def purge_tasks(self, queue: str, states: Sequence[TaskState]) -> int:
        """Remove every task of ``queue`` in these states (pending, scheduled, failed)."""

    @abc.abstractmethod
    async def delete_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Delete dead-lettered tasks (all, or these); return how many."""

    @abc.abstractmethod
    async def queue_overview(self, queue: str, minutes: int = 15) -> QueueOverview:
        """Counts, the oldest pending task's wait, counters and the last ``minutes``."""

    @abc.abstractmethod
    async def pause(self, queue: str) -> bool:
        """Stop workers from leasing tasks of ``queue`` (running ones finish); False if it
        was already paused. The pause is stored in the broker and outlives workers."""

    @abc.abstractmethod
    async def resume(self, queue: str) -> bool:
        """Undo :meth:`pause`; False if the queue was not paused."""

    async def queue_known(self, queue: str) -> bool:
        """Whether ``queue`` was ever seen: it is in the queue set (it received a task or
        was paused) or the broker holds anything of it. This default asks :meth:`queues`."""
        return queue in await self.queues()

    async def forget_queue(self, queue: str) -> bool:
        """Forget an empty queue: its name leaves the queue set, its pause flag and its
        counters go. False, changing nothing, while it holds a pending, scheduled, active
        or dead task. Its next task brings it back."""
        raise NotImplementedError(f"{type(self).__name__} cannot forget queues")

    @abc.abstractmethod
    async def stop_workers(self, worker_ids: Sequence[str]) -> int:
        """Ask these workers to shut down gracefully; return how many are registered."""

    @abc.abstractmethod
    def stop_requests(self, worker_id: str) -> AsyncIterator[None]:
        """Yields once each time ``worker_id`` is asked to stop (including a request made
        before the subscription started)."""

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

    # --- diagnosis (rediq doctor); optional for third-party brokers ----------------------

    async def diagnose(self) -> list[Check]:
        """Check the server this broker uses (version, memory policy, persistence, clock,
        latency, permissions, topology) for ``rediq doctor``."""
        raise NotImplementedError(f"{type(self).__name__} has no diagnosis")

    async def namespaces(self) -> list[str]:
        """The namespaces holding data of this broker kind on its server (sorted): the
        control commands name them when the one asked for holds nothing (a typo)."""
        raise NotImplementedError(f"{type(self).__name__} has no diagnosis")

    # --- cron schedules (docs/cron.md); optional for third-party brokers --------------

    async def cron_register(
        self, queue: str, specs: Mapping[str, str], *, replace: bool = True
    ) -> CronRegistration:
        """Store the specs (``{name: spec JSON}``) of ``queue``'s schedules served by a live
        worker and mark them seen now; announce the names whose stored spec changed.

        ``replace=False`` (a running worker's refresh) stores only missing specs and
        reports, without touching them, the names whose stored spec differs."""
        raise NotImplementedError(f"{type(self).__name__} does not support cron schedules")

    async def cron_fire(self, message: TaskMessage, schedule: str, tick_ms: int | None) -> CronFire:
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
    through to the client library), the key namespace, and how long an enqueue keeps
    retrying while the broker is unreachable (0: fail at once with
    :class:`~rediq_core.errors.BrokerUnavailableError`)."""

    url: str
    config: Mapping[str, Any] = field(default_factory=dict)
    namespace: str = "rediq"
    enqueue_retry_s: float = 0.0
