"""Read-only views of a running task and a running worker, handed to handlers and hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .control import Control

__all__ = ["TaskInfo", "WorkerInfo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskInfo:
    """What ``current_task_info()`` returns: the task id and every option it runs with."""

    task_id: str
    task_name: str
    task_queue: str
    task_priority: int
    task_retries: int
    task_timeout: int | None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    retried: int = 0
    deliveries: int = 1
    enqueued_at_ms: int = 0
    eta_ms: int | None = None
    delay_ms: int | None = None
    worker_name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """The worker as event hooks see it."""

    worker_id: str
    worker_name: str
    queues: tuple[str, ...]
    task_concurrency: int
    queue_size: int
    executor_pool_name: str
    executor_pool_size: int | None
    #: The control API of the worker's app (for plugins that report on queues).
    control: Control | None = field(default=None, repr=False, compare=False)
