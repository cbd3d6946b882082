"""The events rediq fires, typed: the names app handlers use, and one method per event hook.

Call sites say ``await app.plugins.events.before_task_start(info)``, never a hook name in
a string, so a misspelt event or a wrong argument is a type error (tox's
``tox/plugin/manager.py`` keeps one method per hook for the same reason). Each method
calls its ``rediq_*`` hookspec through :func:`~rediq_core.plugins.calling.call_event`,
which awaits async listeners and isolates failures. A test checks that the methods and
the event hookspecs match one to one, parameter for parameter.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pluggy

from .calling import call_event

if TYPE_CHECKING:
    from ..broker import EnqueueOutcome
    from ..info import TaskInfo, WorkerInfo
    from ..message import TaskMessage
    from ..workflow_records import WorkflowRecord

__all__ = ["Event", "Events"]


class Event(enum.StrEnum):
    """The events an app can handle with ``@app.event``, in the order a task meets them.
    Each value is also the name of a plugin hook without its ``rediq_`` prefix."""

    BEFORE_WORKER_STARTUP = "before_worker_startup"
    BEFORE_TASK_START = "before_task_start"
    BEFORE_TASK_RETRY = "before_task_retry"
    AFTER_TASK_SUCCESS = "after_task_success"
    AFTER_TASK_FAILURE = "after_task_failure"
    AFTER_WORKER_SHUTDOWN = "after_worker_shutdown"


class Events:
    """One awaitable method per event hook of one plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._hook = pm.hook

    def listens(self, event: Callable[..., Awaitable[None]] | Event) -> bool:
        """Whether any plugin implements an event, given as one of these methods
        (``events.listens(events.after_task_attempt)``) or an :class:`Event`; callers skip
        setting up a context for an event nobody listens to."""
        name = event.value if isinstance(event, Event) else event.__name__
        return bool(getattr(self._hook, f"rediq_{name}").get_hookimpls())

    async def _call(self, name: str, **kwargs: Any) -> None:
        await call_event(getattr(self._hook, f"rediq_{name}"), kwargs)

    # --- producer ---------------------------------------------------------------------

    async def before_task_enqueue(self, message: TaskMessage) -> None:
        await self._call("before_task_enqueue", message=message)

    async def after_task_enqueue(self, message: TaskMessage, outcome: EnqueueOutcome) -> None:
        await self._call("after_task_enqueue", message=message, outcome=outcome)

    async def before_workflow_enqueue(self, workflow: WorkflowRecord) -> None:
        await self._call("before_workflow_enqueue", workflow=workflow)

    async def after_workflow_enqueue(
        self, workflow: WorkflowRecord, error: BaseException | None
    ) -> None:
        await self._call("after_workflow_enqueue", workflow=workflow, error=error)

    # --- tasks ------------------------------------------------------------------------

    async def before_task_start(self, task: TaskInfo) -> None:
        await self._call("before_task_start", task=task)

    async def before_task_retry(self, task: TaskInfo) -> None:
        await self._call("before_task_retry", task=task)

    async def after_task_attempt(
        self, task: TaskInfo, duration_s: float, exception: BaseException | None
    ) -> None:
        await self._call(
            "after_task_attempt", task=task, duration_s=duration_s, exception=exception
        )

    async def after_task_success(self, task: TaskInfo, result: Any) -> None:
        await self._call("after_task_success", task=task, result=result)

    async def after_task_failure(self, task: TaskInfo, exception: BaseException) -> None:
        await self._call("after_task_failure", task=task, exception=exception)

    async def after_task_expired(
        self, task_id: str, task_name: str, queue: str, reason: str
    ) -> None:
        await self._call(
            "after_task_expired", task_id=task_id, task_name=task_name, queue=queue, reason=reason
        )

    # --- workers ----------------------------------------------------------------------

    async def before_worker_startup(self, worker: WorkerInfo) -> None:
        await self._call("before_worker_startup", worker=worker)

    async def after_worker_shutdown(self, worker: WorkerInfo) -> None:
        await self._call("after_worker_shutdown", worker=worker)
