"""Hook implementations: count what this process enqueues and runs; serve /metrics.

prometheus_client is imported by the first event that counts something, or when the
worker starts with a metrics port: an idle worker without ``--metrics-port`` never
imports it (a producer process still counts its enqueues).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from rediq_core.errors import TaskCancelledError
from rediq_core.plugins import hookimpl
from rediq_core.shards import logical_queue
from rediq_core.waits import queue_wait_s

from . import settings

if TYPE_CHECKING:
    from rediq_core.broker import EnqueueOutcome
    from rediq_core.info import TaskInfo, WorkerInfo
    from rediq_core.message import TaskMessage
    from rediq_core.workflow_records import WorkflowRecord

    from .metrics import TaskMetrics

__all__ = [
    "rediq_after_task_attempt",
    "rediq_after_task_enqueue",
    "rediq_after_task_expired",
    "rediq_after_task_failure",
    "rediq_after_task_success",
    "rediq_after_worker_shutdown",
    "rediq_after_workflow_enqueue",
    "rediq_before_task_retry",
    "rediq_before_task_start",
    "rediq_before_worker_startup",
]


@functools.cache
def task_metrics() -> TaskMetrics:
    """The process's metrics in the default registry (imports prometheus_client once)."""
    from .metrics import task_metrics

    return task_metrics()


def _labels(task: TaskInfo) -> tuple[str, str]:
    return task.task_name, logical_queue(task.task_queue)


@hookimpl
def rediq_after_task_enqueue(message: TaskMessage, outcome: EnqueueOutcome) -> None:
    if outcome.accepted:
        task_metrics().enqueued.labels(message.name, logical_queue(message.queue)).inc()


@hookimpl
def rediq_after_workflow_enqueue(workflow: WorkflowRecord, error: BaseException | None) -> None:
    if error is None and workflow.steps:
        task_metrics().workflows_enqueued.labels(logical_queue(workflow.steps[0].queue)).inc()


@hookimpl
def rediq_before_task_start(task: TaskInfo) -> None:
    m = task_metrics()
    m.started.labels(*_labels(task)).inc()
    wait_s = queue_wait_s(task, time.time())
    m.queue_wait_seconds.labels(*_labels(task)).observe(wait_s)
    m.running.labels(*_labels(task)).inc()


@hookimpl
def rediq_before_task_retry(task: TaskInfo) -> None:
    m = task_metrics()
    m.retried.labels(*_labels(task)).inc()
    m.running.labels(*_labels(task)).inc()


@hookimpl
def rediq_after_task_attempt(
    task: TaskInfo, duration_s: float, exception: BaseException | None
) -> None:
    m = task_metrics()
    m.running.labels(*_labels(task)).dec()
    m.run_seconds.labels(*_labels(task)).observe(duration_s)
    if exception is not None and not isinstance(exception, TaskCancelledError):
        m.failed.labels(*_labels(task)).inc()


@hookimpl
def rediq_after_task_success(task: TaskInfo, result: Any) -> None:
    task_metrics().succeeded.labels(*_labels(task)).inc()


@hookimpl
def rediq_after_task_failure(task: TaskInfo, exception: BaseException) -> None:
    if isinstance(exception, TaskCancelledError):
        task_metrics().cancelled.labels(*_labels(task)).inc()
    else:
        task_metrics().dead_lettered.labels(*_labels(task)).inc()


@hookimpl
def rediq_after_task_expired(task_id: str, task_name: str, queue: str, reason: str) -> None:
    task_metrics().expired.labels(task_name, logical_queue(queue)).inc()


@hookimpl
def rediq_before_worker_startup(worker: WorkerInfo) -> None:
    if os.environ.get(settings.ENV_METRICS_PORT):  # else there is nothing to serve
        from .server import start_metrics_server

        start_metrics_server(worker)


@hookimpl
def rediq_after_worker_shutdown(worker: WorkerInfo) -> None:
    server = sys.modules.get(f"{__package__}.server")  # imported only if it started one
    if server is not None:
        server.stop_metrics_server(worker)
