"""Registered tasks and task calls: ``@app.task`` turns a coroutine function into a publisher."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .errors import ConfigurationError
from .options import TaskOptions, check_name, check_queue, milliseconds, seconds

if TYPE_CHECKING:
    from .app import Rediq
    from .handle import TaskHandle
    from .retry import RetryPolicy

__all__ = ["TaskCall", "TaskDefinition"]

P = ParamSpec("P")
R = TypeVar("R")


class TaskDefinition(Generic[P, R]):
    """A registered task. Calling it builds a :class:`TaskCall`; ``.fn`` is the plain
    coroutine function (await ``task.fn(...)`` in unit tests to run it directly)."""

    def __init__(
        self, app: Rediq, fn: Callable[P, Awaitable[R]], name: str, options: TaskOptions
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskCall[R]:
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(
                f"task {self.name!r} cannot be called with these arguments: {exc}."
                f" Its signature is {self.name}{self.signature}"
            ) from None
        return TaskCall(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<TaskDefinition {self.name!r} queue={self.options.queue!r}>"


@dataclass(frozen=True, slots=True)
class TaskCall(Generic[R]):
    """One call of a task, not yet published. Every method returns a new call.

    ``R`` is the task's result type: ``await call.enqueue()`` gives a
    :class:`TaskHandle[R] <rediq_core.handle.TaskHandle>` whose ``result()`` returns ``R``.
    """

    task: TaskDefinition[..., R]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    group_names: tuple[str, ...] = ()
    task_options: TaskOptions | None = None
    task_id: str | None = None
    eta_ms: int | None = None
    delay_ms: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def groups(self, *names: str) -> TaskCall[R]:
        """Tag the call with groups (``current_task_groups()``; control API by group)."""
        for name in names:
            check_name(name, "group")
        return replace(self, group_names=(*self.group_names, *names))

    def options(
        self,
        *,
        priority: int | None = None,
        queue: str | None = None,
        delay: float | dt.timedelta | None = None,
        eta: dt.datetime | None = None,
        task_id: str | None = None,
        result_ttl: int | dt.timedelta | None = None,
        retries: int | None = None,
        timeout: int | dt.timedelta | None = None,
        retry: RetryPolicy | None = None,
    ) -> TaskCall[R]:
        """Override options for this call.

        :param delay: seconds (or a timedelta) to wait before the task is ready, counted
            from when the broker stores it, on the broker's clock (a producer whose clock
            is off still delays by exactly this).
        :param eta: an aware datetime at which the task becomes ready (an absolute time:
            compared with the broker's clock).
        :param task_id: an explicit id; enqueueing it again while the task is unfinished
            is a reported no-op (deduplication).
        :param result_ttl: seconds (or a timedelta) to keep the result; 0 keeps nothing.
        :param timeout: milliseconds like ``task_timeout``, or a timedelta.
        :param retry: a :class:`~rediq_core.retry.RetryPolicy` for this call (it travels
            in the message, so its backoff must be ``"exponential"`` or ``"fixed"``).
        """
        if retry is not None:
            retry.to_header()  # a policy that cannot travel fails here, not at enqueue
        if queue is not None:
            check_queue(queue, "queue")
        if task_id is not None:
            check_name(task_id, "task_id")
        if delay is not None and eta is not None:
            raise ConfigurationError("give either delay or eta, not both")
        base = self.task_options or self.task.options
        merged = base.merged(
            priority=priority,
            queue=queue,
            retries=retries,
            timeout_ms=milliseconds(timeout),
            result_ttl_s=seconds(result_ttl),
            retry=retry,
        )
        timing = {}
        if eta is not None:
            timing = {"eta_ms": _eta_ms(eta), "delay_ms": None}
        elif delay is not None:
            timing = {"eta_ms": None, "delay_ms": _delay_ms(delay)}
        return replace(
            self,
            task_options=merged,
            task_id=task_id if task_id is not None else self.task_id,
            **timing,  # type: ignore[arg-type]
        )

    @property
    def resolved_options(self) -> TaskOptions:
        return self.task_options or self.task.options

    async def enqueue(self) -> TaskHandle[R]:
        """Publish the call. Returns at once with a handle (``handle.hex()`` is the id)."""
        handles: list[TaskHandle[R]] = await self.task.app.enqueue_many([self])
        return handles[0]


def _eta_ms(eta: dt.datetime) -> int:
    if eta.tzinfo is None:
        raise ConfigurationError(
            f"eta={eta!r} is naive; pass an aware datetime, e.g. datetime.now(UTC)"
        )
    return int(eta.timestamp() * 1000)


def _delay_ms(delay: float | dt.timedelta) -> int:
    seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else delay
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ConfigurationError(f"delay={delay!r} is invalid: expected seconds >= 0")
    return int(seconds * 1000)
