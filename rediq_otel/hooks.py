"""Hook implementations: a producer span per enqueue, a consumer span per attempt.

A span lives from one hook to another (before/after enqueue, before start or retry/after
attempt); open spans are kept by task id, one per task at a time in a process.

OpenTelemetry is imported by the first event, not with this module: a process that
enqueues or runs nothing (an idle worker) never imports it.
"""

from __future__ import annotations

import functools
from contextvars import Token
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rediq_core.errors import TaskCancelledError
from rediq_core.plugins import hookimpl

from .attributes import consumer_attributes, producer_attributes

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.context import Context

    from rediq_core.broker import EnqueueOutcome
    from rediq_core.info import TaskInfo
    from rediq_core.message import TaskMessage
    from rediq_core.workflow_records import WorkflowRecord

__all__ = [
    "rediq_after_task_attempt",
    "rediq_after_task_enqueue",
    "rediq_after_workflow_enqueue",
    "rediq_before_task_enqueue",
    "rediq_before_task_retry",
    "rediq_before_task_start",
    "rediq_before_workflow_enqueue",
]


@dataclass(slots=True)
class Open:
    span: trace.Span
    token: Token[Context] | None = None


#: Producer spans whose enqueue has not answered yet, oldest first (bounded).
MAX_OPEN_PRODUCER_SPANS = 10_000
_producing: dict[str, Open] = {}
_workflows: dict[str, Open] = {}
_consuming: dict[str, Open] = {}


@functools.cache
def _tracer() -> trace.Tracer:
    """rediq's tracer (a proxy until a tracer provider is set, then that provider's)."""
    from opentelemetry import trace

    from rediq_core import __version__

    return trace.get_tracer("rediq", __version__)


@hookimpl
def rediq_before_task_enqueue(message: TaskMessage) -> None:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    span = _tracer().start_span(
        f"send {message.queue}", kind=SpanKind.PRODUCER, attributes=producer_attributes(message)
    )
    propagate.inject(message.headers, context=trace.set_span_in_context(span))
    _producing[message.id] = Open(span)
    if len(_producing) > MAX_OPEN_PRODUCER_SPANS:  # enqueues that raised never end theirs
        stale = _producing.pop(next(iter(_producing)))
        stale.span.set_status(Status(StatusCode.ERROR, "the enqueue did not complete"))
        stale.span.end()


@hookimpl
def rediq_after_task_enqueue(message: TaskMessage, outcome: EnqueueOutcome) -> None:
    opened = _producing.pop(message.id, None)
    if opened is not None:
        opened.span.set_attribute("rediq.enqueue.accepted", outcome.accepted)
        opened.span.end()


@hookimpl
def rediq_before_workflow_enqueue(workflow: WorkflowRecord) -> None:
    """A span around the workflow's enqueue, current while its steps are sent: their
    producer spans are its children, and the steps' attempts theirs (one trace)."""
    from opentelemetry import context, trace

    span = _tracer().start_span(
        "enqueue workflow",
        attributes={"rediq.workflow.id": workflow.id, "rediq.workflow.steps": len(workflow.steps)},
    )
    _workflows[workflow.id] = Open(span, context.attach(trace.set_span_in_context(span)))


@hookimpl
def rediq_after_workflow_enqueue(workflow: WorkflowRecord, error: BaseException | None) -> None:
    opened = _workflows.pop(workflow.id, None)
    if opened is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    if error is not None:
        opened.span.record_exception(error)
        opened.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    opened.span.end()
    if opened.token is not None:
        context.detach(opened.token)


def _start_attempt(task: TaskInfo) -> None:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(task.headers)
    span = _tracer().start_span(
        f"process {task.task_queue}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=consumer_attributes(task),
    )
    if task.retried:
        span.add_event("rediq.retry", {"rediq.task.retried": task.retried})
    # Current for the task function: the worker creates the attempt after this hook.
    token = context.attach(trace.set_span_in_context(span))
    _consuming[task.task_id] = Open(span, token)


@hookimpl
def rediq_before_task_start(task: TaskInfo) -> None:
    _start_attempt(task)


@hookimpl
def rediq_before_task_retry(task: TaskInfo) -> None:
    _start_attempt(task)


@hookimpl
def rediq_after_task_attempt(
    task: TaskInfo, duration_s: float, exception: BaseException | None
) -> None:
    opened = _consuming.pop(task.task_id, None)
    if opened is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    span = opened.span
    if exception is not None:
        span.record_exception(exception)
        span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
        retrying = (
            not isinstance(exception, TaskCancelledError) and task.retried < task.task_retries
        )
        span.set_attribute("rediq.task.will_retry", retrying)
    span.end()
    if opened.token is not None:
        context.detach(opened.token)
