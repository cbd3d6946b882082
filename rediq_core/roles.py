"""The broker contract, role by role: small protocols a broker declares it implements.

A broker is a lifecycle (:class:`~rediq_core.broker.Broker`: ``url``, ``roles``,
``connect()``, ``close()``) plus the roles it lists in ``roles``. Each operation belongs to
exactly one role, and each core component is typed against the role(s) it uses and gets
them with the accessors below (:func:`producer`, :func:`consumer`, ...), which raise
:class:`MissingRoleError` naming the broker and the role when the broker does not declare
it. :func:`supports` asks without raising (``rediq plugins`` shows the roles; the cron
scheduler and ``rediq doctor`` skip a broker without theirs).

=========  ===================================================  ===========================
role       operations                                           used by
=========  ===================================================  ===========================
producer   enqueue                                              producer pipeline
consumer   fetch, extend_leases, settle, release, cancellations worker
results    get_task, get_tasks, wait_finished                   task handles, app, workflows
control    cancel, delete, requeue_dead, delete_dead,           control API, CLI, handles,
           purge_tasks, cancel_group, delete_group, queues,     worker (burst: queue_stats)
           queue_known, forget_queue, queue_stats,
           queue_overview, queue_history, list_tasks, pause,
           resume
registry   heartbeat, unregister_worker, workers,               worker, control API
           stop_workers, stop_requests
cron       cron_register, cron_fire, cron_entries,              worker cron, cron control
           cron_set_paused, cron_forget, cron_changes
diagnosis  diagnose, namespaces                                 ``rediq doctor``, CLI
workflows  store_workflow, get_workflow                         workflow handles, worker
reports    report, get_report                                   worker, task handles, CLI
events     events                                               ``Rediq.events()``,
                                                                ``rediq events``
=========  ===================================================  ===========================

``cancel`` is control (it changes a task; a handle's ``cancel()`` uses the control role),
``queue_stats`` too (it reads a queue, not a task's result); the stop requests a worker
listens to belong with the registry that lists the workers a stop is addressed to, as the
cancellations a worker hears belong to the consumer that holds the leases.

Adding a role (workflows, limits, ...) is one :class:`Role` member, one protocol and one
row of :data:`PROTOCOLS` (plus an accessor, if the core calls it): the test that brokers
implement exactly what they declare, and the contract suite's picking of test classes,
follow the table. ``docs/plugins.md`` ("Writing a broker") documents each role.

Times are epoch milliseconds; durations say their unit in their name.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from .errors import RediqError
from .urls import redact_url

if TYPE_CHECKING:
    from .cron_records import CronEntry, CronFire, CronRegistration
    from .diagnosis import Check
    from .flow import QueueFlow, QueueLimits
    from .inspection import QueueHistory, QueueOverview, TaskPage
    from .message import TaskMessage
    from .records import (
        CancelOutcome,
        EnqueueOutcome,
        FetchBatch,
        Lease,
        QueueStats,
        Settlement,
        TaskRecord,
        TaskState,
        WorkerRecord,
    )
    from .task_events import TaskEvent
    from .tasklogs import LogBounds, TaskReport, TrailUpdate
    from .workflow_records import WorkflowRecord

__all__ = [
    "CORE_ROLES",
    "PROTOCOLS",
    "Consumer",
    "Control",
    "Cron",
    "Diagnosis",
    "Events",
    "Limits",
    "MissingRoleError",
    "Producer",
    "Registry",
    "Reports",
    "Results",
    "Role",
    "Workflows",
    "consumer",
    "control",
    "cron",
    "diagnosis",
    "events",
    "limits",
    "producer",
    "registry",
    "reports",
    "results",
    "supports",
    "workflows",
]


class Role(enum.StrEnum):
    PRODUCER = "producer"  # store tasks
    CONSUMER = "consumer"  # lease, renew, settle, hand back, hear cancellations
    RESULTS = "results"  # look a task up, wait for its end
    CONTROL = "control"  # inspect and operate tasks and queues (the control API)
    REGISTRY = "registry"  # worker heartbeats, the list of workers, stop requests
    CRON = "cron"  # periodic schedules (optional)
    DIAGNOSIS = "diagnosis"  # rediq doctor's server checks (optional)
    WORKFLOWS = "workflows"  # chains, groups and chords (optional)
    LIMITS = "limits"  # rate and concurrency limits, fair order (optional)
    REPORTS = "reports"  # a running task's progress and log lines (optional)
    EVENTS = "events"  # the task event stream (optional)


#: The roles of a broker that does not list its own (every broker had them before roles).
CORE_ROLES = frozenset({Role.PRODUCER, Role.CONSUMER, Role.RESULTS, Role.CONTROL, Role.REGISTRY})


class MissingRoleError(RediqError, NotImplementedError):
    """A component needs a role the broker does not declare (e.g. cron on ``memory://``)."""

    def __init__(self, broker: object, role: Role) -> None:
        url = getattr(broker, "url", "")
        where = f" ({redact_url(url)})" if isinstance(url, str) and url else ""
        super().__init__(
            f"the broker {type(broker).__name__}{where} does not support the {role} role"
            f" ({_WHAT[role]}); use a broker that declares it (`rediq plugins` lists them)"
        )
        self.broker, self.role = broker, role


_WHAT = {
    Role.PRODUCER: "storing tasks",
    Role.CONSUMER: "leasing tasks to workers",
    Role.RESULTS: "task results",
    Role.CONTROL: "inspecting and operating queues",
    Role.REGISTRY: "the worker registry",
    Role.CRON: "cron schedules",
    Role.DIAGNOSIS: "rediq doctor's checks",
    Role.WORKFLOWS: "workflows: chain, group and chord",
    Role.LIMITS: "rate and concurrency limits and fair order",
    Role.REPORTS: "task progress and logs",
    Role.EVENTS: "the task event stream",
}


# --- the roles --------------------------------------------------------------------------


@runtime_checkable
class Producer(Protocol):
    async def enqueue(self, messages: Sequence[TaskMessage]) -> list[EnqueueOutcome]:
        """Store tasks (one atomic step each); wake a worker if one is due sooner than
        anything the workers sleep for. A task with the id of an unfinished one is not
        stored (``accepted`` False)."""
        ...


@runtime_checkable
class Consumer(Protocol):
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
        ...

    async def extend_leases(
        self, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
    ) -> set[Lease]:
        """Extend ``{queue: [lease, ...]}`` held by ``worker_id``.

        Returns the leases the worker must stop: lost, or cancellation requested.
        """
        ...

    async def settle(self, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
        """Record how attempts ended (pipelined). False where the lease was no longer held.

        Safe to re-send: a settlement stored once and sent again (a lost reply) answers
        True again and changes nothing.
        """
        ...

    async def release(self, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int:
        """Hand leased tasks back to pending at once (not counted as lost or failed)."""
        ...

    def cancellations(self) -> AsyncIterator[str]:
        """Task ids whose cancellation was requested, as announcements arrive."""
        ...


@runtime_checkable
class Results(Protocol):
    async def get_task(self, task_id: str, queue: str | None = None) -> TaskRecord | None:
        """The task's record, looked up in ``queue`` or, if None, in every known queue."""
        ...

    async def get_tasks(self, tasks: Sequence[tuple[str, str]]) -> list[TaskRecord | None]:
        """The records of many tasks, each ``(task id, queue)``, in order (None where the
        broker holds none): a workflow step's parents, a workflow's steps. Cheap for
        thousands: one round trip per few hundred on Redis."""
        ...

    async def wait_finished(
        self, task_id: str, queue: str, timeout_s: float | None
    ) -> TaskRecord | None:
        """Block (in the broker, no polling) until the task ends; None on timeout.

        Raises :class:`~rediq_core.errors.TaskNotFoundError` when the broker holds no
        record of the task (never enqueued, purged, deleted, or its result expired).
        """
        ...


@runtime_checkable
class Control(Protocol):
    async def cancel(self, task_id: str, queue: str | None = None) -> CancelOutcome:
        """Cancel a pending/scheduled task, or ask its worker to cancel a running one."""
        ...

    async def delete(self, task_id: str, queue: str | None = None) -> bool:
        """Forget a task that is not running (pending, scheduled, dead or finished)."""
        ...

    async def requeue_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Move dead-lettered tasks (all, or these) back to pending with fresh counters."""
        ...

    async def delete_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Delete dead-lettered tasks (all, or these); return how many."""
        ...

    async def purge_tasks(self, queue: str, states: Sequence[TaskState]) -> int:
        """Remove every task of ``queue`` in these states (pending, scheduled, failed);
        ValueError for another state."""
        ...

    async def cancel_group(self, group: str, queue: str | None = None) -> dict[str, CancelOutcome]:
        """Cancel every unfinished task tagged ``group`` (in ``queue`` or in every queue):
        each is one atomic cancel. Returns the outcome per task id."""
        ...

    async def delete_group(self, group: str, queue: str | None = None) -> int:
        """Delete every task tagged ``group`` that is not running (waiting, dead, or ended
        with its result still kept); return how many."""
        ...

    async def queues(self) -> list[str]:
        """Every queue that has ever received a task (bounded by the namespace)."""
        ...

    async def queue_known(self, queue: str) -> bool:
        """Whether ``queue`` was ever seen: it is in the queue set (it received a task or
        was paused) or the broker holds anything of it."""
        ...

    async def forget_queue(self, queue: str) -> bool:
        """Forget an empty queue: its name leaves the queue set, its pause flag and its
        counters go. False, changing nothing, while it holds a pending, scheduled, active
        or dead task. Its next task brings it back."""
        ...

    async def queue_stats(self, queue: str) -> QueueStats:
        """Counts and counters of one queue."""
        ...

    async def queue_overview(self, queue: str, minutes: int = 15) -> QueueOverview:
        """Counts, the oldest pending task's wait, counters and the last ``minutes``."""
        ...

    async def queue_history(
        self, queue: str, since_ms: int, until_ms: int, step_ms: int
    ) -> QueueHistory:
        """``queue``'s counters in steps of ``step_ms`` from ``since_ms`` to ``until_ms``
        (a window checked by ``rediq_core.history.history_window``: minutes within the
        last day, whole hours further back, 14 days at most). Minutes without counts are
        zero points."""
        ...

    async def list_tasks(
        self, queue: str, state: TaskState, *, limit: int = 100, cursor: str | None = None
    ) -> TaskPage:
        """A page of ``queue``'s tasks in ``state`` (pending, scheduled, active or failed):
        pending in run order, scheduled by due time, active by lease deadline, dead letters
        newest first; ValueError for another state."""
        ...

    async def pause(self, queue: str) -> bool:
        """Stop workers from leasing tasks of ``queue`` (running ones finish); False if it
        was already paused. The pause is stored in the broker and outlives workers."""
        ...

    async def resume(self, queue: str) -> bool:
        """Undo :meth:`pause`; False if the queue was not paused."""
        ...


@runtime_checkable
class Registry(Protocol):
    async def heartbeat(self, worker: WorkerRecord, ttl_s: int) -> None:
        """Create or refresh a worker's registry entry (expires after ``ttl_s``)."""
        ...

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registry entry."""
        ...

    async def workers(self) -> list[WorkerRecord]:
        """Live workers, with the age of their last heartbeat."""
        ...

    async def stop_workers(self, worker_ids: Sequence[str]) -> int:
        """Ask these workers to shut down gracefully; return how many are registered."""
        ...

    def stop_requests(self, worker_id: str) -> AsyncIterator[None]:
        """Yields once each time ``worker_id`` is asked to stop (including a request made
        before the subscription started)."""
        ...


@runtime_checkable
class Cron(Protocol):
    async def cron_register(
        self, queue: str, specs: Mapping[str, str], *, replace: bool = True
    ) -> CronRegistration:
        """Store the specs (``{name: spec JSON}``) of ``queue``'s schedules served by a live
        worker and mark them seen now; announce the names whose stored spec changed.

        ``replace=False`` (a running worker's refresh) stores only missing specs and
        reports, without touching them, the names whose stored spec differs."""
        ...

    async def cron_fire(self, message: TaskMessage, schedule: str, tick_ms: int | None) -> CronFire:
        """Fire a tick: in one atomic step, advance the schedule's last fired tick to
        ``tick_ms`` if it is older (compare-and-set) and enqueue ``message`` unless the
        schedule is paused. ``tick_ms`` None (trigger now) enqueues without the CAS."""
        ...

    async def cron_entries(self, queue: str | None = None) -> list[CronEntry]:
        """Every stored schedule (of ``queue``, or of every queue) with its state."""
        ...

    async def cron_set_paused(self, queue: str, schedule: str, paused: bool) -> bool:
        """Pause or resume a stored schedule; False if no such schedule is stored."""
        ...

    async def cron_forget(self, queue: str, schedule: str) -> bool:
        """Remove a stored schedule and its state (an orphan, usually)."""
        ...

    def cron_changes(self) -> AsyncIterator[str]:
        """Names of schedules whose stored spec changed, as announcements arrive."""
        ...


@runtime_checkable
class Diagnosis(Protocol):
    async def diagnose(self) -> list[Check]:
        """Check the server this broker uses (version, memory policy, persistence, clock,
        latency, permissions, topology) for ``rediq doctor``."""
        ...

    async def namespaces(self) -> list[str]:
        """The namespaces holding data of this broker kind on its server (sorted): the
        control commands name them when the one asked for holds nothing (a typo)."""
        ...


@runtime_checkable
class Workflows(Protocol):
    """Workflows (:mod:`rediq_core.workflow_records`). Their steps are stored by
    :meth:`Producer.enqueue` and released by :meth:`Consumer.settle`: a broker that
    declares this role stores a step whose link says ``wait > 0`` as waiting, makes it
    pending in the same atomic step as its last parent's successful settlement (each
    parent counted once), and ends the steps that wait for a step that ended otherwise
    (dead-lettered, cancelled), transitively, as cancelled with a cascade error."""

    async def store_workflow(self, workflow: WorkflowRecord) -> None:
        """Store the workflow's record for ``workflow.ttl_s`` (storing it again is a
        no-op)."""
        ...

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        """The workflow's record, or None if it was never stored or has expired."""
        ...


@runtime_checkable
class Limits(Protocol):
    """Flow control (:mod:`rediq_core.flow`). A broker that declares this role applies a
    message's ``flow`` when a worker claims it: a task whose concurrency limit is full or
    whose rate has no token is ``limited`` (it starts when a slot frees or a token comes,
    without polling, and never holds back a task behind it that may start); tasks with a
    fair key take turns by key. The queue's own limits apply to each of its tasks."""

    async def set_limits(self, queue: str, limits: QueueLimits) -> None:
        """Set the queue's own limits (``QueueLimits()`` clears them); tasks a raised or
        cleared limit lets start are made pending at once."""
        ...

    async def limits(self, queue: str) -> QueueFlow:
        """The queue's own limits, and the use of every limit its tasks hold or wait for."""
        ...


@runtime_checkable
class Reports(Protocol):
    """A running task's progress and log lines (:mod:`rediq_core.tasklogs`), kept with
    the task as long as its result. The worker writes them (the consumer side: only
    under a lease it holds); handles, the CLI and the dashboard read them.

    A broker that declares this role keeps them beside the task, bounded by the
    ``bounds`` each write carries (the last lines within a byte cap, counting what it
    drops); a settlement whose :attr:`~rediq_core.records.Settlement.reported` is set,
    or of a task leased before, keeps them for the result TTL (drops them with TTL 0);
    every step that forgets a task forgets them, and a new run of the id starts empty."""

    async def report(
        self, worker_id: str, updates: Sequence[TrailUpdate], bounds: LogBounds
    ) -> list[bool]:
        """Store each update (latest progress, more log lines) of a task whose lease
        ``worker_id`` still holds, under the update's lease number; False where it does
        not (lease lost or expired, task ended): nothing is written then."""
        ...

    async def get_report(self, task_id: str, queue: str) -> TaskReport | None:
        """The task's progress and logs, or None if it has none (never reported, or
        forgotten, or expired with its result)."""
        ...


@runtime_checkable
class Events(Protocol):
    """The task event stream (:mod:`rediq_core.task_events`). A broker that declares this
    role records each task transition, in the same atomic step as the transition, in a
    stream per queue bounded by the writer's configured length (``BrokerOptions``
    ``event_stream_length`` / ``event_stream_lengths``; 0: nothing is recorded)."""

    def events(self, cursors: Mapping[str, str], *, follow: bool) -> AsyncIterator[TaskEvent]:
        """The events of each queue of ``cursors`` after its cursor: a position
        (``"<ms>-<seq>"``; ``"0-0"``: from the oldest kept) or ``"$"`` (only events recorded
        after the call began). In order within a queue; queues interleave as events
        come. With ``follow`` it waits for new events without polling, until the caller
        stops iterating; without, it ends once every stream was read to its end."""
        ...


#: Each role's protocol: the one table a new role is added to.
PROTOCOLS: Mapping[Role, type] = {
    Role.PRODUCER: Producer,
    Role.CONSUMER: Consumer,
    Role.RESULTS: Results,
    Role.CONTROL: Control,
    Role.REGISTRY: Registry,
    Role.CRON: Cron,
    Role.DIAGNOSIS: Diagnosis,
    Role.WORKFLOWS: Workflows,
    Role.LIMITS: Limits,
    Role.REPORTS: Reports,
    Role.EVENTS: Events,
}


# --- asking a broker for a role -----------------------------------------------------------


def declared(broker: object) -> frozenset[Role]:
    """The roles ``broker`` declares (a broker without ``roles``: the core ones)."""
    roles: frozenset[Role] = getattr(broker, "roles", CORE_ROLES)
    return roles


def supports(broker: object, role: Role) -> bool:
    """Whether ``broker`` declares ``role``."""
    return role in declared(broker)


def _checked(broker: object, role: Role) -> object:
    if role not in declared(broker):
        raise MissingRoleError(broker, role)
    return broker


def producer(broker: object) -> Producer:
    """``broker`` as a :class:`Producer`; :class:`MissingRoleError` if it is not one."""
    return cast(Producer, _checked(broker, Role.PRODUCER))


def consumer(broker: object) -> Consumer:
    """``broker`` as a :class:`Consumer`; :class:`MissingRoleError` if it is not one."""
    return cast(Consumer, _checked(broker, Role.CONSUMER))


def results(broker: object) -> Results:
    """``broker`` as :class:`Results`; :class:`MissingRoleError` if it has not the role."""
    return cast(Results, _checked(broker, Role.RESULTS))


def control(broker: object) -> Control:
    """``broker`` as :class:`Control`; :class:`MissingRoleError` if it has not the role."""
    return cast(Control, _checked(broker, Role.CONTROL))


def registry(broker: object) -> Registry:
    """``broker`` as a :class:`Registry`; :class:`MissingRoleError` if it is not one."""
    return cast(Registry, _checked(broker, Role.REGISTRY))


def cron(broker: object) -> Cron:
    """``broker`` as :class:`Cron`; :class:`MissingRoleError` if it has not the role."""
    return cast(Cron, _checked(broker, Role.CRON))


def diagnosis(broker: object) -> Diagnosis:
    """``broker`` as :class:`Diagnosis`; :class:`MissingRoleError` if it has not the role."""
    return cast(Diagnosis, _checked(broker, Role.DIAGNOSIS))


def workflows(broker: object) -> Workflows:
    """``broker`` as :class:`Workflows`; :class:`MissingRoleError` if it has not the role."""
    return cast(Workflows, _checked(broker, Role.WORKFLOWS))


def limits(broker: object) -> Limits:
    """``broker`` as :class:`Limits`; :class:`MissingRoleError` if it has not the role."""
    return cast(Limits, _checked(broker, Role.LIMITS))


def reports(broker: object) -> Reports:
    """``broker`` as :class:`Reports`; :class:`MissingRoleError` if it has not the role."""
    return cast(Reports, _checked(broker, Role.REPORTS))


def events(broker: object) -> Events:
    """``broker`` as :class:`Events`; :class:`MissingRoleError` if it has not the role."""
    return cast(Events, _checked(broker, Role.EVENTS))
