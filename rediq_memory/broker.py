"""``MemoryBroker``: producing, consuming, leases, settlement and results in memory.

It declares the core roles (producer, consumer, results, control, registry), workflows,
limits, reports and events; the control and registry ones (listing, purging, pausing,
the worker registry) live in :mod:`rediq_memory.operate`, the rules of the limits in
:mod:`rediq_memory.limits`, task progress and logs in :mod:`rediq_memory.reports`, the
event stream in :mod:`rediq_memory.event_stream`.
It declares no cron role (a worker logs that its schedules will not fire) and no
diagnosis role (``rediq doctor`` says it has no checks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

from rediq_core import defaults
from rediq_core.broker import (
    BrokerOptions,
    CancelOutcome,
    Delivery,
    EnqueueOutcome,
    Expired,
    FailedAttempt,
    FetchBatch,
    Lease,
    Settlement,
    TaskError,
    TaskRecord,
    TaskState,
)
from rediq_core.errors import TaskNotFoundError
from rediq_core.flow import EXPIRED_ERROR_TYPE, SUPERSEDED_ERROR_TYPE, QueueFlow, QueueLimits
from rediq_core.message import TaskMessage, now_ms
from rediq_core.roles import CORE_ROLES, Role
from rediq_core.task_events import TaskEventKind
from rediq_core.workflow_records import StepLink, WorkflowRecord, cascade_cause, cascade_error

from . import limits as flow
from .event_stream import EventsMixin, error_detail
from .operate import OperateMixin
from .reports import ReportsMixin
from .store import QueueState, TaskEntry, due_of, run_order, sleep_until_change, store_for

__all__ = ["MemoryBroker"]

LOST_REASON = (
    f"lost its lease {defaults.MAX_DELIVERIES} times: its worker died or stalled"
    " while running it each time"
)


class MemoryBroker(EventsMixin, OperateMixin, ReportsMixin):
    """An in-process broker for tests and notebooks (URL ``memory://`` or
    ``memory://name``). Every broker of one process with the same URL and namespace sees
    the same queues; nothing outlives the process."""

    roles = CORE_ROLES | {Role.WORKFLOWS, Role.LIMITS, Role.REPORTS, Role.EVENTS}

    def __init__(self, options: BrokerOptions) -> None:
        self.options = options
        self.url = options.url
        self.namespace = options.namespace
        self.store = store_for(options.url, options.namespace)

    async def close(self) -> None:
        """Nothing to release: the store stays for the other brokers of the process."""

    # --- producer ---------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[TaskMessage]) -> list[EnqueueOutcome]:
        outcomes = []
        with self.store.lock:
            now = now_ms()
            for message in messages:
                q = self.store.queue(message.queue)
                self.maintain(q, now)
                outcomes.append(self._enqueue_one(q, message, now))
            self.store.changed()
        return outcomes

    def _enqueue_one(self, q: QueueState, message: TaskMessage, now: int) -> EnqueueOutcome:
        """Store one task, unless a task with its id is unfinished, or a task holding its
        unique key is (the answer names that task). A debounced call replaces the last
        one with its key if that one has not started."""
        old = q.tasks.get(message.id)
        if old is not None and old.state.unfinished:
            return EnqueueOutcome(message.id, False, old.state, old.message.result_ttl_s)
        holder = flow.unique_holder(q, message)
        if holder is not None:
            return EnqueueOutcome(
                holder.message.id, False, holder.state, holder.message.result_ttl_s
            )
        entry = TaskEntry(message, TaskState.PENDING, self.store.next_seq())
        entry.link = _link(message)
        flow.note_times(entry, now)
        replaced = flow.take_keys(q, entry, now)
        if replaced is not None:
            replaced.error = TaskError(
                SUPERSEDED_ERROR_TYPE,
                f"task {replaced.message.id} was debounced: task {message.id} replaced it",
            )
            self.finish(q, replaced, TaskState.CANCELLED, now)
        if entry.link is not None and entry.link.wait > 0:
            entry.state = TaskState.WAITING
        else:
            self._make_ready(q, entry, now)
        q.tasks[message.id] = entry
        self.emit(q, TaskEventKind.ENQUEUED, entry, entry.state.value)
        q.count("enqueued")
        return EnqueueOutcome(message.id, True, entry.state)

    def _make_ready(self, q: QueueState, entry: TaskEntry, now: int) -> None:
        """Pending (at a fresh position), or scheduled when its delay or ETA (or, for a
        debounced call, the time set at its enqueue) is still ahead (it takes its position
        when it is due)."""
        m = entry.message
        due = entry.not_before_ms if entry.not_before_ms is not None else due_of(m, now)
        if due is not None and due > now:
            entry.state, entry.seq, entry.due_ms = TaskState.SCHEDULED, self.store.next_seq(), due
        else:
            entry.state, entry.seq = TaskState.PENDING, self.store.position(q, m)

    # --- workflows --------------------------------------------------------------------

    async def store_workflow(self, workflow: WorkflowRecord) -> None:
        with self.store.lock:
            expires = now_ms() + workflow.ttl_s * 1000
            self.store.workflows.setdefault(workflow.id, (workflow, expires))

    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        with self.store.lock:
            now = now_ms()
            self.store.workflows = {k: v for k, v in self.store.workflows.items() if v[1] > now}
            found = self.store.workflows.get(workflow_id)
            return found[0] if found else None

    def steps_after(self, entry: TaskEntry, state: str, now: int) -> None:
        """A workflow step ended in ``state``: release the steps waiting for it when it
        succeeded, else end them (and theirs) as cancelled, naming the step that failed
        first."""
        link = entry.link
        if link is None:
            return
        cause = cascade_cause(entry.error)
        for queue, task_id in link.successors:
            q = self.store.queues.get(queue)
            successor = q.tasks.get(task_id) if q else None
            if q is None or successor is None or successor.state is not TaskState.WAITING:
                continue
            assert successor.link is not None
            if state == TaskState.SUCCEEDED:
                successor.joined.add(link.index)
                if len(successor.joined) >= successor.link.wait:
                    self._make_ready(q, successor, now)
                continue
            if cause is not None:  # this step was itself cut short: pass the cause on
                error = entry.error
            else:
                why = entry.error.message if entry.error else "no error recorded"
                error = cascade_error(link.workflow, link.index, state, why)
            successor.error = error
            self.finish(q, successor, TaskState.CANCELLED, now)

    # --- worker -----------------------------------------------------------------------

    async def fetch(
        self, queue: str, *, worker_id: str, limit: int, lease_ms: int, wait: bool = True
    ) -> FetchBatch:
        while True:
            with self.store.lock:
                now = now_ms()
                q = self.store.queues.get(queue) or QueueState(queue)
                self.maintain(q, now)
                expired = self._expire_due(q, now)
                deliveries = [] if q.paused else self._claim(q, worker_id, limit, lease_ms, now)
                if deliveries or expired:
                    self.store.changed()
                if deliveries or expired or not wait:
                    return FetchBatch(deliveries, expired=expired)
                deadline = self._next_deadline(q, now)
                future = self.store.waiter()
            timeout = None if deadline is None else max(0.0, (deadline - now_ms()) / 1000)
            await sleep_until_change(self.store, future, timeout)

    def _claim(
        self, q: QueueState, worker_id: str, limit: int, lease_ms: int, now: int
    ) -> list[Delivery]:
        """Lease up to ``limit`` ready tasks that may start, in run order. The limited and
        pending tasks are considered together: one that may start now is leased, one that
        may not is limited (and never holds back the tasks behind it)."""
        ready = [t for t in q.tasks.values() if t.state in (TaskState.PENDING, TaskState.LIMITED)]
        own = self.store.queue_limits.get(q.name, QueueLimits())
        flow.forget_idle_rates(q, now)
        held = flow.running(q)
        deliveries: list[Delivery] = []
        for entry in sorted(ready, key=run_order):
            if len(deliveries) >= limit:
                break
            entry.stopped_by = flow.blocker(q, own, entry, held, now)
            if entry.stopped_by is not None:
                entry.state = TaskState.LIMITED
                continue
            flow.start(q, own, entry, held, now)
            entry.state, entry.worker = TaskState.ACTIVE, worker_id
            entry.deliveries += 1
            entry.lease_deadline_ms, entry.started_at_ms = now + lease_ms, now
            deliveries.append(
                Delivery(entry.message, entry.retried, entry.deliveries, now + lease_ms, entry.lost)
            )
            self.store.note_start(q, entry.seq)
            flow.started(q, entry)
            self.emit(q, TaskEventKind.STARTED, entry, worker_id)
        return deliveries

    def _expire_due(self, q: QueueState, now: int) -> list[Expired]:
        """End the tasks not running whose expiry or deadline came, ``expired`` (the
        steps after a workflow step follow); the worker reports them."""
        expired = []
        for entry in [t for t in q.tasks.values() if t.state in flow.NOT_STARTED]:
            reason = flow.past_time(entry, now)
            if reason is None or entry.state not in flow.NOT_STARTED:  # a step ended above
                continue
            task_id = entry.message.id
            entry.error = TaskError(EXPIRED_ERROR_TYPE, f"task {task_id} expired: {reason}")
            q.count("expired")
            entry.trail = None  # an end decided without a worker keeps no trail
            self.finish(q, entry, TaskState.EXPIRED, now)
            expired.append(Expired(task_id, entry.message.name, reason))
        return expired

    def _next_deadline(self, q: QueueState, now: int) -> int | None:
        """The earliest time something changes in ``q`` without a call: a scheduled task
        is due, a lease expires, a rate that stopped a limited task has a token, or a task
        that has not started expires (times already past are left out: the claim at
        ``now`` handled them)."""
        times = [
            t.due_ms
            for t in q.tasks.values()
            if t.state is TaskState.SCHEDULED and t.due_ms is not None
        ]
        times += [
            t.lease_deadline_ms
            for t in q.tasks.values()
            if t.state is TaskState.ACTIVE and t.lease_deadline_ms is not None
        ]
        own = self.store.queue_limits.get(q.name, QueueLimits())
        times += [
            t for t in (flow.next_token(q, own, now), flow.next_time(q, now)) if t is not None
        ]
        return min(times, default=None)

    def maintain(self, q: QueueState, now: int) -> None:
        """Promote due scheduled tasks, finish expired leases, drop expired results."""
        changed = False
        for entry in sorted(q.tasks.values(), key=lambda t: (t.due_ms or 0, t.seq)):
            if (
                entry.state is TaskState.SCHEDULED
                and entry.due_ms is not None
                and entry.due_ms <= now
            ):
                entry.state, entry.due_ms = TaskState.PENDING, None
                entry.seq = self.store.position(q, entry.message)
                changed = True
            elif (
                entry.state is TaskState.ACTIVE
                and entry.lease_deadline_ms is not None
                and entry.lease_deadline_ms <= now
            ):
                self._lease_expired(q, entry, now)
                changed = True
        for task_id in [
            i for i, t in q.tasks.items() if t.expires_at_ms is not None and t.expires_at_ms <= now
        ]:
            del q.tasks[task_id]
            q.dead_order.pop(task_id, None)
        if changed:
            self.store.changed()

    def _lease_expired(self, q: QueueState, entry: TaskEntry, now: int) -> None:
        entry.lost += 1
        entry.worker, entry.lease_deadline_ms = None, None
        if entry.cancel_requested:
            self.finish(q, entry, TaskState.CANCELLED, now)
        elif entry.lost >= defaults.MAX_DELIVERIES:
            self.dead_letter(q, entry, TaskError("LeaseExpiredError", LOST_REASON), now)
        else:
            entry.state = TaskState.PENDING  # at its old position

    def finish(self, q: QueueState, entry: TaskEntry, state: TaskState, now: int) -> None:
        flow.release_keys(q, entry)
        entry.state, entry.finished_at_ms = state, now
        entry.worker, entry.lease_deadline_ms, entry.due_ms = None, None, None
        self.emit(q, TaskEventKind(state.value), entry, error_detail(entry.error))
        ttl_s = entry.message.result_ttl_s
        if ttl_s == 0:
            entry.trail = None
            del q.tasks[entry.message.id]
        else:
            entry.expires_at_ms = now + ttl_s * 1000
        self.steps_after(entry, state.value, now)

    def dead_letter(self, q: QueueState, entry: TaskEntry, error: TaskError, now: int) -> None:
        flow.release_keys(q, entry)
        entry.state, entry.error, entry.finished_at_ms = TaskState.FAILED, error, now
        entry.worker, entry.lease_deadline_ms, entry.due_ms = None, None, None
        entry.expires_at_ms = now + defaults.DEAD_LETTER_TTL_S * 1000
        if entry.message.result_ttl_s == 0:
            entry.trail = None  # kept as long as the result: none
        q.dead_order[entry.message.id] = self.store.next_seq()
        self.emit(q, TaskEventKind.FAILED, entry, error_detail(error))
        q.count("failed")
        self.steps_after(entry, TaskState.FAILED.value, now)
        while len(q.dead_order) > defaults.DEAD_LETTER_MAX:
            oldest = min(q.dead_order, key=q.dead_order.__getitem__)
            del q.dead_order[oldest]
            q.tasks.pop(oldest, None)

    def held(self, q: QueueState | None, worker_id: str, lease: Lease) -> TaskEntry | None:
        entry = q.tasks.get(lease.task_id) if q else None
        if (
            entry is None
            or entry.state is not TaskState.ACTIVE
            or entry.worker != worker_id
            or entry.deliveries != lease.delivery
        ):
            return None
        return entry

    async def extend_leases(
        self, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
    ) -> set[Lease]:
        stop = set()
        with self.store.lock:
            now = now_ms()
            for queue, held in leases.items():
                q = self.store.queues.get(queue)
                for lease in held:
                    entry = self.held(q, worker_id, lease)
                    if entry is None or entry.cancel_requested:
                        stop.add(lease)
                    else:
                        entry.lease_deadline_ms = now + lease_ms
        return stop

    async def settle(self, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
        answers = []
        with self.store.lock:
            now = now_ms()
            self.store.settled = {k: v for k, v in self.store.settled.items() if v[1] > now}
            for s in settlements:
                if s.key in self.store.settled:
                    answers.append(self.store.settled[s.key][0])
                    continue
                answer = self._settle_one(worker_id, s, now)
                self.store.settled[s.key] = (answer, now + defaults.REPLAY_WINDOW_MS)
                answers.append(answer)
            self.store.changed()
        return answers

    def _settle_one(self, worker_id: str, s: Settlement, now: int) -> bool:
        q = self.store.queues.get(s.queue)
        entry = q.tasks.get(s.task_id) if q else None
        if (
            q is None
            or entry is None
            or entry.state is not TaskState.ACTIVE
            or entry.worker != worker_id
            or (s.delivery is not None and s.delivery != entry.deliveries)
        ):
            return False
        q.count_run(s.run_ms)
        if s.error is None:
            entry.result = s.result
            q.count("succeeded")
            self.finish(q, entry, TaskState.SUCCEEDED, now)
        elif entry.cancel_requested:
            entry.error = s.error
            self.finish(q, entry, TaskState.CANCELLED, now)
        elif s.retry_delay_ms is not None:
            self.emit(q, TaskEventKind.RETRIED, entry, error_detail(s.error))
            entry.state, entry.error, entry.retried = (
                TaskState.SCHEDULED,
                s.error,
                entry.retried + 1,
            )
            note_attempt(entry, s.error, now)
            delay = s.retry_delay_ms
            if entry.deadline_ms is not None:  # due at the deadline at the latest, when the
                delay = max(0, min(delay, entry.deadline_ms - now))  # claim ends it expired
            entry.due_ms, entry.worker, entry.lease_deadline_ms = now + delay, None, None
            q.count("retried")
        else:
            self.dead_letter(q, entry, s.error, now)
        return True

    async def release(self, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int:
        released = 0
        with self.store.lock:
            for queue, held in leases.items():
                q = self.store.queues.get(queue)
                for lease in held:
                    entry = self.held(q, worker_id, lease)
                    if entry is not None:  # back to pending at its old position
                        entry.state, entry.worker, entry.lease_deadline_ms = (
                            TaskState.PENDING,
                            None,
                            None,
                        )
                        released += 1
            self.store.changed()
        return released

    async def cancellations(self) -> AsyncIterator[str]:
        with self.store.lock:
            seen = len(self.store.cancellations)
        while True:
            with self.store.lock:
                fresh = self.store.cancellations[seen:]
                seen += len(fresh)
                future = None if fresh else self.store.waiter()
            for task_id in fresh:
                yield task_id
            if future is not None:
                await sleep_until_change(self.store, future, None)

    # --- limits -----------------------------------------------------------------------

    async def set_limits(self, queue: str, limits: QueueLimits) -> None:
        with self.store.lock:
            q = self.store.queue(queue)
            if limits.rate != self.store.queue_limits.get(queue, QueueLimits()).rate:
                q.tats.pop(flow.QUEUE_RATE, None)  # a changed rate starts with a full bucket
            if limits.empty:
                self.store.queue_limits.pop(queue, None)
            else:
                self.store.queue_limits[queue] = limits
            for entry in q.in_state(TaskState.LIMITED):  # the next claim reconsiders them
                if entry.stopped_by in (flow.QUEUE_CONCURRENCY, flow.QUEUE_RATE):
                    entry.state, entry.stopped_by = TaskState.PENDING, None
            self.store.changed()

    async def limits(self, queue: str) -> QueueFlow:
        with self.store.lock:
            now = now_ms()
            q = self.store.queues.get(queue) or QueueState(queue)
            self.maintain(q, now)
            own = self.store.queue_limits.get(queue, QueueLimits())
            return flow.queue_flow(q, own, now)

    # --- results ----------------------------------------------------------------------

    def find(self, task_id: str, queue: str | None) -> tuple[QueueState, TaskEntry] | None:
        names = [queue] if queue is not None else list(self.store.queues)
        now = now_ms()
        for name in names:
            q = self.store.queues.get(name)
            if q is None:
                continue
            self.maintain(q, now)
            if task_id in q.tasks:
                return q, q.tasks[task_id]
        return None

    async def get_task(self, task_id: str, queue: str | None = None) -> TaskRecord | None:
        with self.store.lock:
            found = self.find(task_id, queue)
            return record_of(found[0], found[1]) if found else None

    async def get_tasks(self, tasks: Sequence[tuple[str, str]]) -> list[TaskRecord | None]:
        with self.store.lock:
            found = [self.find(task_id, queue) for task_id, queue in tasks]
            return [record_of(*f) if f else None for f in found]

    async def wait_finished(
        self, task_id: str, queue: str, timeout_s: float | None
    ) -> TaskRecord | None:
        deadline = None if timeout_s is None else now_ms() + timeout_s * 1000
        while True:
            with self.store.lock:
                found = self.find(task_id, queue)
                if found is None:
                    raise TaskNotFoundError(f"no task {task_id} in queue {queue!r}")
                if not found[1].state.unfinished:
                    return record_of(*found)
                q = found[0]
                wake = [t for t in (deadline, self._next_deadline(q, now_ms())) if t is not None]
                future = self.store.waiter()
            if deadline is not None and now_ms() >= deadline:
                self.store.forget(future)
                return None
            timeout = max(0.0, (min(wake) - now_ms()) / 1000) if wake else None
            await sleep_until_change(self.store, future, timeout)

    async def cancel(self, task_id: str, queue: str | None = None) -> CancelOutcome:
        with self.store.lock:
            found = self.find(task_id, queue)
            outcome = self.cancel_found(found)
            self.store.changed()
            return outcome

    def cancel_found(self, found: tuple[QueueState, TaskEntry] | None) -> CancelOutcome:
        if found is None:
            return CancelOutcome.NOT_FOUND
        q, entry = found
        if entry.state in (
            TaskState.PENDING,
            TaskState.WAITING,
            TaskState.LIMITED,
            TaskState.SCHEDULED,
        ):
            entry.trail = None  # an end decided without a worker keeps no trail
            self.finish(q, entry, TaskState.CANCELLED, now_ms())
            return CancelOutcome.CANCELLED
        if entry.state is TaskState.ACTIVE:
            entry.cancel_requested = True
            self.store.cancellations.append(entry.message.id)
            return CancelOutcome.REQUESTED
        return CancelOutcome.FINISHED


def record_of(q: QueueState, entry: TaskEntry) -> TaskRecord:
    m = entry.message
    return TaskRecord(
        id=m.id,
        queue=q.name,
        state=entry.state,
        message=m,
        retried=entry.retried,
        deliveries=entry.deliveries,
        worker=entry.worker,
        result=entry.result,
        error=entry.error,
        serializer=m.serializer,
        finished_at_ms=entry.finished_at_ms,
        name=m.name,
        priority=m.priority,
        groups=m.groups,
        enqueued_at_ms=m.enqueued_at_ms,
        started_at_ms=entry.started_at_ms,
        due_at_ms=entry.due_ms,
        lease_deadline_ms=entry.lease_deadline_ms,
        failed_attempts=tuple(entry.failed_attempts),
    )


def _capped(text: str, most: int, *, keep_end: bool = False) -> str:
    data = text.encode()
    if len(data) <= most:
        return text
    return (data[-most:] if keep_end else data[:most]).decode("utf-8", "replace")


def note_attempt(entry: TaskEntry, error: TaskError, now: int) -> None:
    """Keep the error of the attempt that failed and is retried (the last few, capped),
    as the Redis broker's settle does."""
    kept = TaskError(
        error.type,
        _capped(error.message, defaults.ATTEMPT_MESSAGE_MAX),
        _capped(error.traceback, defaults.ATTEMPT_TRACEBACK_MAX, keep_end=True),
    )
    entry.failed_attempts.append(FailedAttempt(entry.retried, now, entry.worker, kept))
    del entry.failed_attempts[: -defaults.ATTEMPT_ERRORS_KEPT]


def _link(message: TaskMessage) -> StepLink | None:
    """The message's workflow link; None for a plain task, and for a malformed link (the
    worker dead-letters that step, saying why)."""
    try:
        return StepLink.of(message)
    except ValueError:
        return None
