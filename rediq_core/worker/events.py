"""The event dispatcher: app handlers in registration order, then plugin hooks.

Each event runs inside the context the availability table allows (``context.using``);
an exception in a handler is logged with its traceback and never reaches the worker.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from .. import context

if TYPE_CHECKING:
    from ..app import Rediq
    from ..info import TaskInfo, WorkerInfo

__all__ = ["EventDispatcher"]

log = logging.getLogger("rediq.events")
_UNSET: Any = ...


class EventDispatcher:
    def __init__(self, app: Rediq, executor: Executor) -> None:
        self.app = app
        self.executor = executor

    async def _handlers(self, event: str) -> None:
        for handler in self.app.handlers[event]:
            try:
                await handler()
            except Exception:
                log.exception(
                    "%s handler %s raised", event, getattr(handler, "__qualname__", handler)
                )

    async def task_event(
        self,
        event: str,
        info: TaskInfo,
        *,
        result: Any = _UNSET,
        exception: BaseException | None = None,
    ) -> None:
        """Fire a task event with ``current_task_info()`` (and result/exception) set."""
        hook = f"rediq_{event}"
        if not self.app.handlers[event] and not self.app.plugins.listens(hook):
            return  # nobody listens: no context to set up
        with context.using(executor=self.executor, task=info, result=result, exception=exception):
            await self._handlers(event)
            kwargs: dict[str, Any] = {"task": info}
            if event == "after_task_success":
                kwargs["result"] = result
            elif event == "after_task_failure":
                kwargs["exception"] = exception
            await self.app.plugins.notify(hook, **kwargs)

    async def attempt_ended(
        self, info: TaskInfo, duration_s: float, exception: BaseException | None
    ) -> None:
        """Fire the plugin hook ``rediq_after_task_attempt`` (no app handlers exist)."""
        if not self.app.plugins.listens("rediq_after_task_attempt"):
            return
        with context.using(executor=self.executor, task=info):
            await self.app.plugins.notify(
                "rediq_after_task_attempt", task=info, duration_s=duration_s, exception=exception
            )

    async def worker_event(self, event: str, worker: WorkerInfo) -> None:
        """Fire ``before_worker_startup`` / ``after_worker_shutdown`` (executor only)."""
        with context.using(executor=self.executor):
            await self._handlers(event)
            await self.app.plugins.notify(f"rediq_{event}", worker=worker)
