"""Retry policies: which failures a task retries, how often, and how long it waits.

A :class:`RetryPolicy` is set per task (``@app.task(retry=...)``) or per call
(``.options(retry=...)``). A task can also ask for a retry itself by raising
:class:`Retry`, optionally with the delay to wait. Fields left ``None`` fall back to the
task's ``task_retries`` and to the worker's backoff (``REDIQ_BACKOFF_*``), so a task
without a policy behaves exactly as before.

The delay is sent to the broker as ``Settlement.retry_delay_ms``: the broker makes the
task ready again after that long by its own clock.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .errors import ConfigurationError, RediqError

__all__ = ["RETRY_HEADER", "BackoffFunction", "Retry", "RetryPolicy", "jittered"]

#: The message header that carries a per-call policy to the worker (JSON).
RETRY_HEADER = "rediq-retry"

#: A custom backoff: attempt number ``retried`` (0 for the first retry) to a delay.
BackoffFunction = Callable[[int], "float | dt.timedelta"]
Duration = float | dt.timedelta
ExceptionSpec = type[BaseException] | str


class Retry(RediqError):
    """Raise from a task to retry it, after ``delay`` (seconds or a timedelta) or, if
    None, after the policy's backoff. It counts as one of the task's retries; once they
    are used up the task fails with this exception. It is retried whatever ``retry_on``
    and ``dont_retry_on`` say."""

    def __init__(self, delay: Duration | None = None, reason: str = "") -> None:
        self.delay_ms = None if delay is None else _to_ms(delay, "Retry(delay=)")
        self.reason = reason
        super().__init__(
            reason
            or "the task asked to be retried"
            + ("" if delay is None else f" after {self.delay_ms} ms")
        )


def _to_ms(value: Duration, option: str) -> int:
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ConfigurationError(
            f"{option}={value!r} is invalid: expected seconds >= 0 or a timedelta"
        )
    return round(seconds * 1000)


def jittered(delay_ms: int, jitter: float) -> int:
    """A delay drawn uniformly from ``[delay_ms * (1 - jitter), delay_ms]``."""
    if jitter <= 0 or delay_ms <= 1:
        return delay_ms
    return random.randint(round(delay_ms * (1 - jitter)), delay_ms)


def exception_name(kind: type[BaseException]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _matches(error: BaseException, specs: Sequence[ExceptionSpec]) -> bool:
    """Whether ``error`` is an instance of one of ``specs`` (classes, or the dotted names
    of classes: a per-call policy carries names, matched along the error's MRO)."""
    names = {
        exception_name(kind) for kind in type(error).__mro__ if issubclass(kind, BaseException)
    }
    return any(
        spec in names if isinstance(spec, str) else isinstance(error, spec) for spec in specs
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a task retries.

    :param retries: retries after the first attempt (default: the task's ``task_retries``).
    :param backoff: ``"exponential"`` (``base * 2**retried``, capped), ``"fixed"``
        (always ``base``), or a function of the retry number (0 for the first retry)
        returning seconds or a timedelta (per task only: a function cannot travel in a
        message).
    :param base: seconds or a timedelta (default: the worker's ``REDIQ_BACKOFF_BASE_MS``).
    :param cap: the longest delay (default: the worker's ``REDIQ_BACKOFF_CAP_MS``).
    :param jitter: the fraction of the delay that is random: the delay is drawn from
        ``[d * (1 - jitter), d]``. ``0`` is exact, ``1`` is "full jitter"; the default,
        ``0.5``, is the worker's (``[d/2, d]``; ``0`` if ``REDIQ_BACKOFF_JITTER`` is off).
    :param retry_on: retry only failures that are instances of these exception types
        (default: any ``Exception``, including a timeout).
    :param dont_retry_on: never retry these, even if ``retry_on`` matches.
    """

    retries: int | None = None
    backoff: Literal["exponential", "fixed"] | BackoffFunction = "exponential"
    base: Duration | None = None
    cap: Duration | None = None
    jitter: float | None = None
    retry_on: tuple[ExceptionSpec, ...] = (Exception,)
    dont_retry_on: tuple[ExceptionSpec, ...] = ()
    base_ms: int | None = field(init=False, default=None)
    cap_ms: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.retries is not None and (
            isinstance(self.retries, bool)
            or not isinstance(self.retries, int)
            or not 0 <= self.retries <= 1000
        ):
            raise ConfigurationError(f"retries={self.retries!r} must be an integer in 0..1000")
        if not (callable(self.backoff) or self.backoff in ("exponential", "fixed")):
            raise ConfigurationError(
                f"backoff={self.backoff!r} must be 'exponential',"
                " 'fixed' or a function of the retry number"
            )
        if self.jitter is not None and not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter={self.jitter!r} must be between 0 and 1")
        for option in ("retry_on", "dont_retry_on"):
            specs = getattr(self, option)
            if isinstance(specs, type | str):
                specs = (specs,)
                object.__setattr__(self, option, specs)
            for spec in specs:
                if not (
                    isinstance(spec, str)
                    or (isinstance(spec, type) and issubclass(spec, BaseException))
                ):
                    raise ConfigurationError(f"{option} must hold exception types, got {spec!r}")
        for name in ("base", "cap"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, f"{name}_ms", _to_ms(value, name))

    # --- deciding ---------------------------------------------------------------------

    def retries_error(self, error: BaseException) -> bool:
        """Whether this kind of failure is retried at all (retries permitting)."""
        if isinstance(error, Retry):
            return True
        return _matches(error, self.retry_on) and not _matches(error, self.dont_retry_on)

    def delay_ms(self, retried: int, *, base_ms: int, cap_ms: int, jitter: float) -> int:
        """The delay before retry number ``retried`` (0-based); ``base_ms``, ``cap_ms``
        and ``jitter`` are the worker's, used where this policy leaves them unset."""
        base = self.base_ms if self.base_ms is not None else base_ms
        cap = self.cap_ms if self.cap_ms is not None else cap_ms
        if callable(self.backoff):
            delay = _to_ms(self.backoff(retried), "backoff()")
        elif self.backoff == "fixed":
            delay = base
        else:
            delay = base * 2 ** min(retried, 32)
        return jittered(min(cap, delay), self.jitter if self.jitter is not None else jitter)

    # --- travelling in a message (per-call policies) -----------------------------------

    def to_header(self) -> str:
        if callable(self.backoff):
            raise ConfigurationError(
                "a backoff function can be set per task (@app.task(retry=...)) but not per"
                " call: it cannot travel in a message; use 'exponential' or 'fixed' here"
            )
        return json.dumps(
            {
                "backoff": self.backoff,
                "base_ms": self.base_ms,
                "cap_ms": self.cap_ms,
                "jitter": self.jitter,
                "retry_on": [s if isinstance(s, str) else exception_name(s) for s in self.retry_on],
                "dont_retry_on": [
                    s if isinstance(s, str) else exception_name(s) for s in self.dont_retry_on
                ],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_header(cls, text: str) -> RetryPolicy:
        """Read what :meth:`to_header` wrote; raise ``ValueError`` on anything else."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("retry header is not a JSON object")
        policy = cls(
            backoff=data["backoff"],
            jitter=data.get("jitter"),
            retry_on=tuple(data["retry_on"]),
            dont_retry_on=tuple(data["dont_retry_on"]),
        )
        for name in ("base_ms", "cap_ms"):
            value = data.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"retry header: bad {name}")
                object.__setattr__(policy, name, value)
        return policy
