"""Enqueueing a workflow, and following it: :class:`WorkflowHandle`.

A workflow is enqueued in three steps, each idempotent (the ids of the workflow's steps
are derived from its id): its record (:meth:`~rediq_core.roles.Workflows.store_workflow`),
then every step that waits for another, then the steps that start at once. A producer
that dies half-way therefore leaves at most waiting steps that nothing will release,
never a step that runs before the steps it waits for exist. Every step goes through the
producer pipeline as any task does (hooks, signing, size limit).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from . import defaults, roles
from .canvas import Feed, Plan, decode_feed, encode_feed
from .errors import TaskFailedError, TaskNotFoundError, WorkflowFailed
from .message import new_task_id, now_ms
from .records import TaskRecord, TaskState
from .workflow_records import (
    WORKFLOW_HEADER,
    StepLink,
    WorkflowRecord,
    WorkflowStep,
    cascade_cause,
    step_id,
)

if TYPE_CHECKING:
    from .app import Rediq
    from .task import TaskCall

__all__ = [
    "StepStatus",
    "WorkflowHandle",
    "enqueue_workflow",
    "feed_value",
    "workflow_handle",
    "workflow_state",
]

R = TypeVar("R")
T = TypeVar("T")

#: Steps read or cancelled concurrently by one call: a fraction of a connection pool.
_AT_ONCE = 16


@dataclass(frozen=True, slots=True)
class StepStatus:
    """One step of a workflow as the broker knows it now (``state`` None: its record is
    gone, its result expired)."""

    index: int
    id: str
    task_name: str
    queue: str
    state: TaskState | None
    record: TaskRecord | None


def workflow_state(steps: list[StepStatus]) -> str:
    """One word for a workflow from its steps now: ``failed`` (a step was dead-lettered
    or ended ``expired``),
    ``cancelled`` (a step was cancelled, none failed), ``succeeded`` (every step did),
    ``expired`` (some step's record is gone, none failed), else ``running``."""
    states = {s.state for s in steps}
    if TaskState.FAILED in states or TaskState.EXPIRED in states:
        return "failed"
    if TaskState.CANCELLED in states:
        return "cancelled"
    if states <= {TaskState.SUCCEEDED}:
        return "succeeded"
    if None in states:
        return "expired"
    return "running"


class WorkflowHandle(Generic[R]):
    """An enqueued workflow. ``R`` is its result's type: the last step's for a chain, a
    list for a group, the callback's for a chord."""

    __slots__ = ("_app", "record")

    def __init__(self, app: Rediq, record: WorkflowRecord) -> None:
        self._app = app
        self.record = record

    @property
    def id(self) -> str:
        return self.record.id

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.id} steps={len(self.record.steps)}>"

    def _step(self, index: int) -> tuple[str, str]:
        return step_id(self.id, index), self.record.steps[index].queue

    async def result(self, timeout: float | dt.timedelta | None = None) -> R:
        """Wait until every step the result is made of has succeeded, and return it.

        The steps are awaited in the order of the result; a step ended because an
        earlier one failed ends at once, so a failure is raised as soon as the wait
        reaches it. Raises :class:`WorkflowFailed` naming the step that did not succeed
        (for a step cut short, the step that failed first), :class:`TimeoutError` after
        ``timeout`` (seconds or a timedelta), and
        :class:`TaskNotFoundError` when a step's result is no longer kept.
        """
        timeout_s = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
        feed = decode_feed(self.record.result)
        values: dict[int, Any] = {}
        results = roles.results(self._app.get_broker())
        try:
            async with asyncio.timeout(timeout_s):
                for index in _leaves(feed):  # in order: each wait is one broker waiter
                    task_id, queue = self._step(index)
                    record = await results.wait_finished(task_id, queue, None)
                    assert record is not None
                    if record.state is not TaskState.SUCCEEDED:
                        raise await self._failure(index, record)
                    values[index] = self._app.decode_result(record)
        except TimeoutError:
            raise TimeoutError(f"workflow {self.id} did not finish within {timeout_s} s") from None
        return cast(R, _build(feed, values))

    def result_sync(self, timeout: float | dt.timedelta | None = None) -> R:
        """:meth:`result`, blocking: for code without an event loop (docs/sync.md)."""
        return self._app.sync_runner.call(self.result, timeout)

    def status_sync(self) -> list[StepStatus]:
        """:meth:`status`, blocking."""
        return self._app.sync_runner.call(self.status)

    def cancel_sync(self) -> None:
        """:meth:`cancel`, blocking."""
        self._app.sync_runner.call(self.cancel)

    async def _failure(self, index: int, record: TaskRecord) -> WorkflowFailed:
        cause = cascade_cause(record.error)
        if cause is not None:
            task_id, queue = self._step(cause)
            found = await roles.results(self._app.get_broker()).get_task(task_id, queue)
            if found is not None:
                index, record = cause, found
        error = record.error
        failed = (
            TaskFailedError(record.id, error.type, error.message, error.traceback)
            if error is not None
            else None
        )
        name = self.record.steps[index].name
        return WorkflowFailed(self.id, index, name, record.state.value, failed)

    async def status(self) -> list[StepStatus]:
        """Every step with its state now, in order."""
        results = roles.results(self._app.get_broker())
        steps = self.record.steps
        records = await results.get_tasks([self._step(n) for n in range(len(steps))])
        return [
            StepStatus(
                n,
                step_id(self.id, n),
                step.name,
                step.queue,
                record.state if record else None,
                record,
            )
            for n, (step, record) in enumerate(zip(steps, records, strict=True))
        ]

    async def cancel(self) -> None:
        """Cancel every step that has not ended: waiting and pending ones at once, running
        ones through their worker (they end as cancelled when it stops them). A step a
        running one releases meanwhile is cancelled too: every step is asked."""
        control = roles.control(self._app.get_broker())
        order = reversed(range(len(self.record.steps)))
        await _bounded([control.cancel(*self._step(n)) for n in order])


def _leaves(feed: Feed) -> list[int]:
    if isinstance(feed, int):
        return [feed]
    return [leaf for item in feed for leaf in _leaves(item)]


def _build(feed: Feed, values: dict[int, Any]) -> Any:
    if isinstance(feed, int):
        return values[feed]
    return [_build(item, values) for item in feed]


async def enqueue_workflow(app: Rediq, compiled: Plan) -> WorkflowHandle[Any]:
    """Enqueue a compiled workflow (see the module's docstring)."""
    broker = app.get_broker()
    store = roles.workflows(broker)
    producer = roles.producer(broker)
    workflow_id = new_task_id()
    calls = _step_calls(app, workflow_id, compiled)
    options = [call.resolved_options for call in calls]
    record = WorkflowRecord(
        workflow_id,
        tuple(
            WorkflowStep(o.queue, s.call.task.name)
            for o, s in zip(options, compiled.steps, strict=True)
        ),
        encode_feed(compiled.result),
        now_ms(),
        max((o.result_ttl_s for o in options), default=0) or defaults.DEFAULT_RESULT_TTL_S,
    )
    waiting = [call for step, call in zip(compiled.steps, calls, strict=True) if step.after]
    roots = [call for step, call in zip(compiled.steps, calls, strict=True) if not step.after]
    hooks = app.plugins.events
    await hooks.before_workflow_enqueue(record)
    error: BaseException | None = None
    try:
        await store.store_workflow(record)
        for batch in (waiting, roots):
            if batch:
                await app.producer.publish_calls(producer, batch)
    except BaseException as exc:
        error = exc
        raise
    finally:
        await hooks.after_workflow_enqueue(record, error)
    return WorkflowHandle(app, record)


def _deadlines(compiled: Plan) -> dict[int, int | None]:
    """Each step's deadline: its own, or else the earliest of the steps before it."""
    own = {s.index: s.call.resolved_options.flow.deadline_ms for s in compiled.steps}
    found = dict(own)
    changed = True
    while changed:  # steps form a DAG: this settles within as many passes as its depth
        changed = False
        for step in compiled.steps:
            if own[step.index] is not None:
                continue
            inherited = [d for d in (found[n] for n in step.after) if d is not None]
            earliest = min(inherited, default=None)
            if earliest != found[step.index]:
                found[step.index], changed = earliest, True
    return found


def _step_calls(app: Rediq, workflow_id: str, compiled: Plan) -> list[TaskCall[Any]]:
    """Each step's call: its id, its link to the steps after it and its queue (its shard,
    in a sharded queue, routed now so that the record and the links name it)."""
    queues = [
        app.producer.route(replace(step.call, task_id=step_id(workflow_id, step.index)))
        for step in compiled.steps
    ]
    calls = []
    deadlines = _deadlines(compiled)
    for step in compiled.steps:
        link = StepLink(
            workflow_id,
            step.index,
            len(step.after),
            tuple((queues[n], n) for n in step.then),
            None if step.feed is None else encode_feed(step.feed),
        )
        headers = {**step.call.headers, WORKFLOW_HEADER: link.to_header()}
        call = replace(step.call, task_id=step_id(workflow_id, step.index), headers=headers)
        options = call.resolved_options
        if queues[step.index] != options.queue:
            options = replace(options, queue=queues[step.index])
            call = replace(call, task_options=options)
        deadline = deadlines[step.index]
        if deadline != options.flow.deadline_ms:  # a deadline carried from the steps before
            flow = replace(options.flow, deadline_ms=deadline)
            call = replace(call, task_options=replace(options, flow=flow))
        calls.append(call)
    return calls


#: Workflow records a worker read lately (a record never changes): the steps of one
#: workflow read it once per process.
_KNOWN: dict[str, WorkflowRecord] = {}
_KNOWN_MAX = 1_024


async def feed_value(app: Rediq, link: StepLink) -> Any:
    """The first argument of a step: the results of the steps its feed names, as the
    feed arranges them. ``LookupError`` if one of them is no longer there to read."""
    record = _KNOWN.get(link.workflow)
    if record is None:
        record = await roles.workflows(app.get_broker()).get_workflow(link.workflow)
        if record is None:
            raise LookupError(f"workflow {link.workflow} is no longer stored (its record expired)")
        if len(_KNOWN) >= _KNOWN_MAX:
            del _KNOWN[next(iter(_KNOWN))]
        _KNOWN[link.workflow] = record
    feed = decode_feed(link.feed)
    results = roles.results(app.get_broker())
    leaves = _leaves(feed)
    found = await results.get_tasks(
        [(step_id(link.workflow, n), record.steps[n].queue) for n in leaves]
    )
    values: dict[int, Any] = {}
    for n, parent in zip(leaves, found, strict=True):
        if parent is None or parent.state is not TaskState.SUCCEEDED:
            raise LookupError(
                f"the result of step {n} of workflow {link.workflow} is not kept"
                f" ({'gone' if parent is None else parent.state.value})"
            )
        values[n] = app.decode_result(parent)
    return _build(feed, values)


async def _bounded(calls: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Await ``calls``, at most ``_AT_ONCE`` at a time; their results in order."""
    gate = asyncio.Semaphore(_AT_ONCE)

    async def one(call: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def workflow_handle(app: Rediq, workflow_id: str) -> WorkflowHandle[Any]:
    """The handle of a stored workflow; :class:`TaskNotFoundError` if there is none."""
    record = await roles.workflows(app.get_broker()).get_workflow(workflow_id)
    if record is None:
        raise TaskNotFoundError(f"no workflow {workflow_id} (never enqueued, or it expired)")
    return WorkflowHandle(app, record)
