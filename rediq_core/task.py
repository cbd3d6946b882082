"""Registered tasks and task calls: ``@app.task`` turns a coroutine function into a publisher."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, Unpack

from .errors import ConfigurationError
from .flow import Flow, FlowArgs, flow_of, shard_key_of
from .options import TaskOptions, check_name, check_queue, milliseconds, seconds

if TYPE_CHECKING:
    from .app import Rediq
    from .handle import TaskHandle
    from .retry import RetryPolicy

__all__ = ["TaskCall", "TaskDefinition", "refuse_partial"]

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
        #: How many arguments the function takes when it has only positional-or-keyword
        #: parameters without defaults (checked without ``Signature.bind``), else None.
        self._positional = _plain_arity(self.signature)
        functools.update_wrapper(self, fn)

    def check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` unless the function accepts these arguments."""
        if not kwargs and len(args) == self._positional:
            return  # the common shape, without the cost of Signature.bind (~5 us)
        self.signature.bind(*args, **kwargs)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskCall[R]:
        try:
            self.check_arguments(args, kwargs)
        except TypeError as exc:
            raise TypeError(
                f"task {self.name!r} cannot be called with these arguments: {exc}."
                f" Its signature is {self.name}{self.signature}"
            ) from None
        return TaskCall(self, args, kwargs)

    def s(self, *args: Any, **kwargs: Any) -> TaskCall[R]:
        """A workflow step that receives its parent's result as its first argument,
        before ``args`` (Celery's signature): ``chain(fetch(url), parse.s())``. A plain
        call ``fn(...)`` as a later step ignores its parent's result."""
        try:
            self.check_arguments((_PARENT_RESULT, *args), kwargs)
        except TypeError as exc:
            raise TypeError(
                f"task {self.name!r} cannot be a step with these arguments: {exc}. A .s()"
                f" step gets its parent's result first; its signature is"
                f" {self.name}{self.signature}"
            ) from None
        return TaskCall(self, args, kwargs, takes_parent=True)

    def __repr__(self) -> str:
        return f"<TaskDefinition {self.name!r} queue={self.options.queue!r}>"


class _ParentResult:
    """Stands for the parent's result when a ``.s()`` step's arguments are checked."""

    def __str__(self) -> str:
        raise ConfigurationError(
            "a workflow step's limit keys come from its own arguments, not from its"
            " parent's result (which is not known when the workflow is enqueued)"
        )


_PARENT_RESULT = _ParentResult()


def _plain_arity(signature: inspect.Signature) -> int | None:
    params = signature.parameters.values()
    plain = all(
        p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.default is inspect.Parameter.empty
        for p in params
    )
    return len(params) if plain else None


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
    #: A ``.s()`` workflow step: its parent's result is passed before ``args``.
    takes_parent: bool = False

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
        **flow: Unpack[FlowArgs],
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
        :param rate_limit: ``rate_limit_key``, ``concurrency_limit``, ``concurrency_key``,
            ``fair_key``, ``expires``, ``deadline``, ``unique``, ``unique_key``,
            ``debounce``, ``debounce_key``: flow control, as for ``@app.task``
            (docs/flow-control.md).
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
            flow=base.flow.merged(self.task.signature, **flow),
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

    def flow(self, payload: bytes) -> Flow | None:
        """The limits of this call, with its key values (None when it has none);
        ``payload``: its serialized arguments (the default unique key)."""
        options = self.resolved_options.flow
        if not options.limited:
            return None
        args = (_PARENT_RESULT, *self.args) if self.takes_parent else self.args
        return flow_of(self.task.name, options, self.task.signature, args, self.kwargs, payload)

    def shard_key(self) -> str | None:
        """The value of this call's ``shard_key`` (None when it has none)."""
        options = self.resolved_options.flow
        if options.shard_key is None:
            return None
        args = (_PARENT_RESULT, *self.args) if self.takes_parent else self.args
        return shard_key_of(self.task.name, options, self.task.signature, args, self.kwargs)

    async def enqueue(self) -> TaskHandle[R]:
        """Publish the call. Returns at once with a handle (``handle.hex()`` is the id)."""
        handles: list[TaskHandle[R]] = await self.task.app.enqueue_many([self])
        return handles[0]

    def enqueue_sync(self) -> TaskHandle[R]:
        """:meth:`enqueue`, blocking: for code without an event loop (Django and Flask
        views, scripts, threads; docs/sync.md)."""
        return self.task.app.sync_runner.call(self.enqueue)


def refuse_partial(call: TaskCall[Any]) -> None:
    """A ``.s()`` step lacks its first argument until a workflow passes it."""
    if call.takes_parent:
        raise ConfigurationError(
            f"{call.task.name}.s(...) is a workflow step that gets its parent's result as"
            f" its first argument: put it after another step in chain(...) or chord(...),"
            f" or enqueue {call.task.name}(...) with every argument"
        )


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
