"""The event dispatcher: app handlers in registration order, then plugin hooks.

Each event runs inside the context the availability table allows (``context.using``);
an exception in a handler is logged with its traceback and never reaches the worker.
Events are :class:`~rediq_core.plugins.events.Event` members and the plugin hooks are
called through the typed ``app.plugins.events``, so a misspelt event is a type error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Literal, assert_never

from .. import context
from ..plugins.events import Event

if TYPE_CHECKING:
    from ..app import Rediq
    from ..info import TaskInfo, WorkerInfo

__all__ = ["EventDispatcher", "TaskEvent", "WorkerEvent"]

log = logging.getLogger("rediq.events")
_UNSET: Any = ...

TaskEvent = Literal[
    Event.BEFORE_TASK_START,
    Event.BEFORE_TASK_RETRY,
    Event.AFTER_TASK_SUCCESS,
    Event.AFTER_TASK_FAILURE,
]
WorkerEvent = Literal[Event.BEFORE_WORKER_STARTUP, Event.AFTER_WORKER_SHUTDOWN]


class EventDispatcher:
    def __init__(self, app: Rediq, executor: Executor) -> None:
        self.app = app
        self.executor = executor
        self.hooks = app.plugins.events

    async def _handlers(self, event: Event) -> None:
        for handler in self.app.handlers[event]:
            try:
                await handler()
            except Exception:
                log.exception(
                    "%s handler %s raised", event, getattr(handler, "__qualname__", handler)
                )

    async def task_event(
        self,
        event: TaskEvent,
        info: TaskInfo,
        *,
        result: Any = _UNSET,
        exception: BaseException | None = None,
    ) -> None:
        """Fire a task event with ``current_task_info()`` (and result/exception) set."""
        if not self.app.handlers[event] and not self.hooks.listens(event):
            return  # nobody listens: no context to set up
        with context.using(executor=self.executor, task=info, result=result, exception=exception):
            await self._handlers(event)
            await self._task_hook(event, info, result, exception)

    def _task_hook(
        self, event: TaskEvent, info: TaskInfo, result: Any, exception: BaseException | None
    ) -> Awaitable[None]:
        match event:
            case Event.BEFORE_TASK_START:
                return self.hooks.before_task_start(info)
            case Event.BEFORE_TASK_RETRY:
                return self.hooks.before_task_retry(info)
            case Event.AFTER_TASK_SUCCESS:
                return self.hooks.after_task_success(info, result)
            case Event.AFTER_TASK_FAILURE:
                assert exception is not None, "after_task_failure needs the exception"
                return self.hooks.after_task_failure(info, exception)
            case _:
                assert_never(event)

    async def attempt_ended(
        self, info: TaskInfo, duration_s: float, exception: BaseException | None
    ) -> None:
        """Fire the plugin hook ``rediq_after_task_attempt`` (no app handlers exist)."""
        if not self.hooks.listens(self.hooks.after_task_attempt):
            return
        with context.using(executor=self.executor, task=info):
            await self.hooks.after_task_attempt(info, duration_s, exception)

    async def worker_event(self, event: WorkerEvent, worker: WorkerInfo) -> None:
        """Fire ``before_worker_startup`` / ``after_worker_shutdown`` (executor only)."""
        with context.using(executor=self.executor):
            await self._handlers(event)
            match event:
                case Event.BEFORE_WORKER_STARTUP:
                    await self.hooks.before_worker_startup(worker)
                case Event.AFTER_WORKER_SHUTDOWN:
                    await self.hooks.after_worker_shutdown(worker)
                case _:
                    assert_never(event)
