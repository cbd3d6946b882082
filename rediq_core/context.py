"""The Flask-style context API: ``current_task_*()`` and ``run_in_current_executor``.

One private ``ContextVar`` per concept. The worker sets them for exactly the places the
availability table allows (docs/context.md) and resets them by token; an accessor called
anywhere else raises :class:`~rediq_core.errors.ContextUnavailableError` saying where it
works.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

from .errors import ContextUnavailableError
from .info import TaskInfo
from .tasklogs import TaskTrail, check_progress

__all__ = [
    "current_task_exception",
    "current_task_groups",
    "current_task_info",
    "current_task_result",
    "current_task_retried",
    "current_trail",
    "run_in_current_executor",
    "set_progress",
    "using",
]

T = TypeVar("T")

_TASK_PLACES = "in a task function and in the before_task_start, before_task_retry,"
_TASK_PLACES += " after_task_success and after_task_failure handlers"

_task_info: ContextVar[TaskInfo] = ContextVar("rediq_task_info")
_task_result: ContextVar[Any] = ContextVar("rediq_task_result")
_task_exception: ContextVar[BaseException] = ContextVar("rediq_task_exception")
_executor: ContextVar[Executor] = ContextVar("rediq_executor")
#: The running attempt's progress and log lines (set by the worker around the attempt).
_trail: ContextVar[TaskTrail | None] = ContextVar("rediq_task_trail", default=None)


def _get(var: ContextVar[T], accessor: str, where: str) -> T:
    try:
        return var.get()
    except LookupError:
        raise ContextUnavailableError(
            f"{accessor}() is only available {where}; it was called outside of them"
        ) from None


def current_task_info() -> TaskInfo:
    """The running task's id and options."""
    return _get(_task_info, "current_task_info", _TASK_PLACES)


def current_task_groups() -> tuple[str, ...]:
    """The groups the running task was enqueued with."""
    return _get(_task_info, "current_task_groups", _TASK_PLACES).groups


def current_task_retried() -> int:
    """How many times the running task has been retried: 0 on the first attempt."""
    return _get(_task_info, "current_task_retried", _TASK_PLACES).retried


def current_task_result() -> Any:
    """The task's return value, in ``after_task_success`` handlers."""
    return _get(_task_result, "current_task_result", "in after_task_success handlers")


def current_task_exception() -> BaseException:
    """The task's exception, in ``after_task_failure`` handlers."""
    return _get(_task_exception, "current_task_exception", "in after_task_failure handlers")


async def set_progress(fraction: float, message: str = "") -> None:
    """Report how far the running task is: ``fraction`` in [0, 1] and a short message
    (at most 200 characters). The last report is kept with the task, shown by ``rediq
    task``, ``rediq top`` and the dashboard, and read with ``TaskHandle.progress()``;
    the worker sends it with its next lease renewal (about once a second) and when the
    task ends, never once per call.

    Bad arguments raise at once (:class:`TypeError`, :class:`ValueError`); outside a task
    function (and the coroutines it awaits) it raises
    :class:`~rediq_core.errors.ContextUnavailableError`.
    """
    fraction, message = check_progress(fraction, message)
    trail = _trail.get()
    if trail is None:
        raise ContextUnavailableError(
            "set_progress() is only available in a task function (and the coroutines it"
            " awaits); it was called outside of one"
        )
    trail.set_progress(fraction, message)


def current_trail() -> TaskTrail | None:
    """The running attempt's trail, or None outside an attempt (the worker's log handler)."""
    return _trail.get()


async def run_in_current_executor(fn: Callable[[], T]) -> T:
    """Run a synchronous callable in the worker's executor pool and await its result.

    In a thread pool the caller's context is copied, so ``current_task_info()`` works
    inside ``fn``; a process pool carries no context (``fn`` must be picklable).

    Blocking code cannot be interrupted: when the awaiting task is cancelled (a timeout,
    a cancellation request, a forced stop) this still waits until ``fn`` has returned
    and only then raises :class:`asyncio.CancelledError`, so nothing treats the task as
    ended while its code still runs.
    """
    executor = _get(
        _executor, "run_in_current_executor", "inside a rediq worker (tasks and event handlers)"
    )
    loop = asyncio.get_running_loop()
    if isinstance(executor, ThreadPoolExecutor):
        job = loop.run_in_executor(executor, functools.partial(contextvars.copy_context().run, fn))
    else:
        job = loop.run_in_executor(executor, fn)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        while not job.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({job})
        raise


@contextlib.contextmanager
def using(
    *,
    executor: Executor | None = None,
    task: TaskInfo | None = None,
    result: Any = ...,
    exception: BaseException | None = None,
    trail: TaskTrail | None = None,
) -> Iterator[None]:
    """Set context values for the duration of a ``with`` block (used by the worker, for
    every attempt and every hook call: spelt out, not looped, as it is on the hot path)."""
    tokens: list[tuple[ContextVar[Any], contextvars.Token[Any]]] = []
    if executor is not None:
        tokens.append((_executor, _executor.set(executor)))
    if task is not None:
        tokens.append((_task_info, _task_info.set(task)))
    if result is not ...:
        tokens.append((_task_result, _task_result.set(result)))
    if exception is not None:
        tokens.append((_task_exception, _task_exception.set(exception)))
    if trail is not None:
        tokens.append((_trail, _trail.set(trail)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
