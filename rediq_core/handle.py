"""What ``enqueue()`` returns: the task id, and a way to follow the task."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from . import roles
from .errors import (
    ResultNotKeptError,
    TaskCancelledError,
    TaskExpiredError,
    TaskFailedError,
)
from .records import CancelOutcome, TaskRecord, TaskState
from .tasklogs import TaskLogs, TaskProgress

if TYPE_CHECKING:
    from .app import Rediq

__all__ = ["TaskHandle"]

R = TypeVar("R")


class TaskHandle(Generic[R]):
    """A published task. ``accepted`` is False when an unfinished task with the same id
    already existed (deduplication): the handle then follows that task.

    ``R`` is the task's result type (``TaskHandle[Any]`` for a handle found by id alone
    with :meth:`Rediq.handle <rediq_core.app.Rediq.handle>`)."""

    __slots__ = ("_app", "accepted", "id", "queue", "result_ttl_s")

    def __init__(
        self, app: Rediq, task_id: str, queue: str, *, accepted: bool, result_ttl_s: int
    ) -> None:
        self._app = app
        self.id = task_id
        self.queue = queue
        self.accepted = accepted
        self.result_ttl_s = result_ttl_s

    def hex(self) -> str:
        """The task id (the original rediq API returned a UUID; this keeps its spelling)."""
        return self.id

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id} queue={self.queue!r} accepted={self.accepted}>"

    async def info(self) -> TaskRecord | None:
        """Everything the broker knows of the task, or None once its record expired."""
        return await roles.results(self._app.get_broker()).get_task(self.id, self.queue)

    async def state(self) -> TaskState | None:
        record = await self.info()
        return record.state if record else None

    async def progress(self) -> TaskProgress | None:
        """The task's last reported progress (``set_progress``), or None if it never
        reported any (or its result expired)."""
        report = await roles.reports(self._app.get_broker()).get_report(self.id, self.queue)
        return report.progress if report else None

    async def logs(self) -> TaskLogs:
        """The log lines the task emitted while it ran (every attempt; the last ones
        within the worker's bounds), readable while it runs and as long as its result."""
        report = await roles.reports(self._app.get_broker()).get_report(self.id, self.queue)
        return report.logs if report else TaskLogs()

    async def cancel(self) -> CancelOutcome:
        """Remove the task if it has not started; ask its worker to cancel it if running."""
        return await roles.control(self._app.get_broker()).cancel(self.id, self.queue)

    # The blocking twins, for code without an event loop (docs/sync.md).

    def info_sync(self) -> TaskRecord | None:
        """:meth:`info`, blocking."""
        return self._app.sync_runner.call(self.info)

    def state_sync(self) -> TaskState | None:
        """:meth:`state`, blocking."""
        return self._app.sync_runner.call(self.state)

    def cancel_sync(self) -> CancelOutcome:
        """:meth:`cancel`, blocking."""
        return self._app.sync_runner.call(self.cancel)

    def result_sync(self, timeout: float | dt.timedelta | None = None) -> R:
        """:meth:`result`, blocking: the same errors, :class:`TimeoutError` after
        ``timeout`` included."""
        return self._app.sync_runner.call(self.result, timeout)

    async def result(self, timeout: float | dt.timedelta | None = None) -> R:
        """Wait for the task to end (no polling: the broker announces it; any number of
        waiters share a fixed number of connections) and return its result.

        Raises :class:`TimeoutError` after ``timeout`` (seconds or a timedelta),
        :class:`TaskFailedError` if it failed, :class:`TaskCancelledError` if it was cancelled, and
        :class:`TaskNotFoundError` if the broker has no record of it (purged, deleted, or
        its result expired).
        """
        if self.result_ttl_s == 0:
            raise ResultNotKeptError(
                f"task {self.id} was enqueued with result_ttl=0, so its result is not kept;"
                " enqueue it with a positive result_ttl to await it"
            )
        timeout_s = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
        record = await roles.results(self._app.get_broker()).wait_finished(
            self.id, self.queue, timeout_s
        )
        if record is None:
            raise TimeoutError(f"task {self.id} did not finish within {timeout_s} s")
        return cast(R, self._app.decode_result(record))


def raise_for_record(record: TaskRecord) -> None:
    """Raise the error a finished-but-unsuccessful record stands for."""
    if record.state is TaskState.CANCELLED:
        raise TaskCancelledError(f"task {record.id} was cancelled")
    if record.state in (TaskState.FAILED, TaskState.EXPIRED):
        error = record.error
        kind = TaskExpiredError if record.state is TaskState.EXPIRED else TaskFailedError
        raise kind(
            record.id,
            error.type if error else "UnknownError",
            error.message if error else "",
            error.traceback if error else "",
        )
