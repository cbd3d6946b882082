"""Task options: validation shared by ``@app.task(...)`` and ``.options(...)``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from . import defaults
from .errors import ConfigurationError
from .flow import FlowOptions
from .shards import is_queue_name

NO_FLOW: Final = FlowOptions()

if TYPE_CHECKING:
    from .retry import RetryPolicy

__all__ = ["TaskOptions", "check_name", "check_queue", "milliseconds", "seconds"]


def _fail(option: str, value: Any, expected: str) -> ConfigurationError:
    return ConfigurationError(f"{option}={value!r} is invalid: expected {expected}")


def check_queue(value: Any, option: str = "task_queue") -> str:
    """A queue's name, or the name of one of its shards (``emails#3of8``)."""
    if not is_queue_name(value):
        raise _fail(option, value, "1-128 characters among letters, digits and _ . : -")
    return value


def check_name(value: Any, option: str = "task_name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise _fail(option, value, "a non-empty string of at most 256 characters")
    return value


def milliseconds(value: int | dt.timedelta | None) -> int | None:
    """A duration given in milliseconds (an int, as ``task_timeout`` always took) or as a
    :class:`~datetime.timedelta`, in whole milliseconds; None stays None."""
    if isinstance(value, dt.timedelta):
        return round(value.total_seconds() * 1000)
    return value


def seconds(value: int | dt.timedelta | None) -> int | None:
    """A duration given in seconds (an int) or as a timedelta, in whole seconds."""
    if isinstance(value, dt.timedelta):
        return round(value.total_seconds())
    return value


def _check_int(option: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(option, value, "an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _fail(option, value, f"an integer {bound}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOptions:
    """The options a task is registered with (``@app.task``) — validated on creation."""

    queue: str = defaults.DEFAULT_QUEUE
    priority: int = defaults.DEFAULT_PRIORITY
    retries: int = defaults.DEFAULT_RETRIES
    timeout_ms: int | None = defaults.DEFAULT_TIMEOUT_MS
    result_ttl_s: int = defaults.DEFAULT_RESULT_TTL_S
    #: None: every ``Exception`` is retried with the worker's backoff.
    retry: RetryPolicy | None = None
    #: Rate and concurrency limits and the fair key (docs/flow-control.md).
    flow: FlowOptions = NO_FLOW

    def __post_init__(self) -> None:
        self.flow.check(None)
        check_queue(self.queue)
        _check_int("task_priority", self.priority, defaults.PRIORITY_MIN, defaults.PRIORITY_MAX)
        _check_int("task_retries", self.retries, 0, 1000)
        if self.timeout_ms is not None:
            _check_int("task_timeout", self.timeout_ms, 1)
        _check_int("result_ttl", self.result_ttl_s, 0)

    def merged(self, **changes: Any) -> TaskOptions:
        """A copy with the non-None ``changes`` applied (and validated). A ``retry``
        policy that sets ``retries`` sets the task's retries, unless ``retries`` is given
        too and differs (an error)."""
        policy = changes.get("retry")
        if policy is not None and policy.retries is not None:
            given = changes.get("retries")
            if given is not None and given != policy.retries:
                raise ConfigurationError(
                    f"retries={given} and retry=RetryPolicy(retries={policy.retries}) disagree;"
                    " give the count once"
                )
            changes["retries"] = policy.retries
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
