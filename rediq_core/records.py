"""What a broker and the core exchange: task states, messages leased and settled, records.

These are plain data, shared by every role of the broker contract (``rediq_core.roles``)
and by the public API; this module imports no role, so brokers, the roles and the control
API's records (``rediq_core.inspection``) all build on it without an import circle.
``rediq_core.broker`` re-exports every name (``from rediq_core.broker import TaskState``
keeps working).

Times are epoch milliseconds; durations say their unit in their name.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .message import TaskMessage

__all__ = [
    "BrokerOptions",
    "CancelOutcome",
    "Delivery",
    "EnqueueOutcome",
    "Expired",
    "FailedAttempt",
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
    WAITING = "waiting"  # a workflow step whose earlier steps have not all succeeded
    LIMITED = "limited"  # ready, but a concurrency or rate limit stops it from starting now
    SCHEDULED = "scheduled"  # delayed, or waiting to retry
    ACTIVE = "active"  # leased by a worker
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retries exhausted or bad input: in the dead-letter set
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not started by its expiry, or no attempt could start by its deadline

    @property
    def unfinished(self) -> bool:
        return self in _UNFINISHED


_UNFINISHED = frozenset(
    (TaskState.PENDING, TaskState.WAITING, TaskState.LIMITED, TaskState.SCHEDULED, TaskState.ACTIVE)
)


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
    stale lease cannot settle, renew or hand back a newer one. ``token`` is the broker's
    own mark of the lease (``""`` if it has none): the Redis broker names the holder the
    lease belongs to, so renewing all the leases of a worker costs the same as one."""

    task_id: str
    delivery: int
    token: str = ""


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
    token: str = ""

    @property
    def lease(self) -> Lease:
        return Lease(self.message.id, self.deliveries, self.token)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A task that was dead-lettered during fetch because its data is unusable."""

    task_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Expired:
    """A task the fetch's claim ended ``expired`` (``reason`` says which time passed)."""

    task_id: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class FetchBatch:
    deliveries: list[Delivery]
    rejected: list[Rejected] = field(default_factory=list)
    #: Tasks this fetch's claim ended ``expired`` (the worker reports them to plugins).
    expired: list[Expired] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TaskError:
    """An exception as stored in Redis: importable type name, message, formatted traceback."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A failed attempt that was retried: its number (1 for the first attempt), when it
    failed, the worker it ran on and its error (message and traceback capped:
    ``defaults.ATTEMPT_MESSAGE_MAX``, ``defaults.ATTEMPT_TRACEBACK_MAX``, the traceback's
    end kept)."""

    number: int
    failed_at_ms: int | None
    worker: str | None
    error: TaskError


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
    answers as the first time and changes nothing. ``reported``: the attempt reported
    progress or logs (a broker with the reports role keeps them with the result).
    ``run_ms``: how long the attempt ran (None: it did not run, or nobody measured it);
    the broker adds it to the queue's run time of the minute (its metrics history).
    """

    task_id: str
    queue: str
    result: bytes | None = None
    error: TaskError | None = None
    retry_delay_ms: int | None = None
    delivery: int | None = None
    key: str = field(default_factory=lambda: os.urandom(8).hex())
    reported: bool = False
    run_ms: int | None = None


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
    #: The failed attempts that were retried, oldest first: the last
    #: ``defaults.ATTEMPT_ERRORS_KEPT`` of them (``error`` is the last error; a dead
    #: letter's final error is not among them).
    failed_attempts: tuple[FailedAttempt, ...] = ()


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
    #: Workflow steps waiting for earlier steps.
    waiting: int = 0
    #: Ready tasks a concurrency or rate limit stops from starting now.
    limited: int = 0
    #: Tasks that ended ``expired`` (lifetime counter).
    expired: int = 0


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: str
    name: str
    queues: tuple[str, ...]
    heartbeat_age_s: float
    info: Mapping[str, Any] = field(default_factory=dict)


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
    #: Events kept in each queue's event stream (brokers with the ``events`` role; trimmed
    #: approximately), and the queues that keep another number; 0: no stream at all.
    event_stream_length: int = 0
    event_stream_lengths: Mapping[str, int] = field(default_factory=dict)

    def event_length(self, queue: str) -> int:
        """Events kept in ``queue``'s event stream (0: none are recorded)."""
        return self.event_stream_lengths.get(queue, self.event_stream_length)
