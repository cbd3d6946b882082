"""Flow control of a task: rate limits, concurrency limits, fair keys, expiry and deadlines
(docs/flow-control.md).

The options are checked when a task is decorated (or a call's ``.options(...)`` is
built); the producer turns them into the message's :class:`Flow` (the limits a broker
applies to this one task, with the key values of this call), which the broker checks when
a worker claims the task. Nothing here talks to a broker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, TypedDict, Unpack

from .errors import ConfigurationError

__all__ = [
    "EXPIRED_ERROR_TYPE",
    "SUPERSEDED_ERROR_TYPE",
    "UNIQUE_MODES",
    "Flow",
    "FlowArgs",
    "FlowOptions",
    "KeySource",
    "LimitUse",
    "QueueFlow",
    "QueueLimits",
    "Rate",
    "check_flow_args",
    "flow_of",
    "shard_key_of",
]

#: An argument name of the task, or a callable given the call's arguments (``*args``,
#: ``**kwargs``) returning the key (any value: it is used as ``str(value)``).
KeySource = str | Callable[..., Any]

#: The error type of a task that ended ``expired`` (its message says why).
EXPIRED_ERROR_TYPE: Final = "rediq.TaskExpired"
#: The error type of a debounced call a later one replaced (it ends ``cancelled``).
SUPERSEDED_ERROR_TYPE: Final = "rediq.TaskSuperseded"
#: ``unique=`` values and how they travel: held until the task ends, or until it starts.
UNIQUE_MODES: Final = {"until_done": "d", "until_started": "s"}

_UNITS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")
#: The bucket holds this share of a period's tokens (at least one): a worker waking a few
#: milliseconds late does not lose a token, and no burst exceeds it.
BURST_SHARE_MS: Final = 100


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts per ``period_ms``, spaced evenly, with a bucket of ``burst``
    starts (a generic cell rate: the ``n``-th start of a busy stretch is never earlier than
    ``(n - burst) * period_ms / count`` after its first)."""

    count: int
    period_ms: int
    burst: int

    @classmethod
    def parse(cls, text: Any, option: str = "rate_limit") -> Rate:
        """``"100/s"``, ``"10/m"``, ``"5/h"`` (also ``"10/5m"``: 10 per 5 minutes)."""
        match = _RATE.match(text) if isinstance(text, str) else None
        if not match or int(match.group(1)) < 1 or match.group(2) in ("0",):
            raise ConfigurationError(
                f"{option}={text!r} is invalid: expected starts per period, like '100/s',"
                " '10/m' or '5/h' (a count >= 1)"
            )
        count = int(match.group(1))
        period_ms = int(match.group(2) or 1) * _UNITS[match.group(3)]
        burst = max(1, count * BURST_SHARE_MS // period_ms)
        return cls(count, period_ms, burst)

    @property
    def text(self) -> str:
        for unit, ms in _UNITS.items():
            if self.period_ms == ms:
                return f"{self.count}/{unit}"
        for unit, ms in reversed(_UNITS.items()):
            if self.period_ms % ms == 0:
                return f"{self.count}/{self.period_ms // ms}{unit}"
        return f"{self.count}/{self.period_ms}ms"  # pragma: no cover - parse() never builds it

    @property
    def per_second(self) -> float:
        return self.count * 1000 / self.period_ms


def _check_limit(option: str, limit: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigurationError(f"{option}={limit!r} is invalid: expected an integer >= 1")


def _duration_ms(option: str, value: Any) -> int | None:
    """Seconds (int or float) or a timedelta, in whole milliseconds (None stays None)."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ConfigurationError(
            f"{option}={value!r} is invalid: expected seconds > 0 or a timedelta"
        )
    return max(1, round(seconds * 1000))


def _check_duration(option: str, ms: Any) -> None:
    if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int) or ms < 1):
        raise ConfigurationError(f"{option}={ms!r} ms is invalid: expected milliseconds >= 1")


def _check_key(option: str, key: Any, signature: inspect.Signature | None) -> KeySource | None:
    if key is None or callable(key):
        return key  # type: ignore[no-any-return]
    if not isinstance(key, str) or not key:
        raise ConfigurationError(
            f"{option}={key!r} is invalid: expected the name of an argument of the task, or a"
            " callable that takes the task's arguments and returns the key"
        )
    if (
        signature is not None
        and key not in signature.parameters
        and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    ):
        raise ConfigurationError(
            f"{option}={key!r} names no argument of the task; its parameters are"
            f" ({', '.join(signature.parameters)}). Name one, or pass a callable"
        )
    return key


def check_flow_args(flow: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` naming an option that is no flow control option (a typo)."""
    unknown = sorted(set(flow) - set(FlowArgs.__annotations__))
    if unknown:
        raise TypeError(
            f"unexpected option(s) {', '.join(unknown)}; the task options are documented in"
            " @app.task's docstring, the flow control ones are"
            f" {', '.join(FlowArgs.__annotations__)}"
        )


class FlowArgs(TypedDict, total=False):
    """The flow control options, as ``@app.task(...)`` and ``.options(...)`` take them
    (docs/flow-control.md); each is None when not given."""

    #: At most this many starts across every worker: ``"100/s"``, ``"10/m"``, ``"5/h"``.
    rate_limit: str | None
    #: One rate bucket per value of this argument (or of what this callable returns).
    rate_limit_key: KeySource | None
    #: At most this many running across every worker.
    concurrency_limit: int | None
    #: The concurrency limit counts per value of this argument (or callable).
    concurrency_key: KeySource | None
    #: Tasks of the queue take turns by this argument's value (or the callable's).
    fair_key: KeySource | None
    #: Seconds (or a timedelta) from the enqueue: not started by then, it ends ``expired``.
    expires: float | dt.timedelta | None
    #: Seconds (or a timedelta) from the enqueue after which no attempt starts.
    deadline: float | dt.timedelta | None
    #: While a task with the same unique key is unfinished (or not started), an enqueue
    #: stores nothing and its handle follows that task.
    unique: Literal["until_done", "until_started"] | None
    #: The unique key's argument (or a callable); default: the task and its arguments.
    unique_key: KeySource | None
    #: Seconds (or a timedelta): a burst of enqueues with one key runs once, the last one.
    debounce: float | dt.timedelta | None
    #: The debounce key's argument (or a callable); default: the task alone.
    debounce_key: KeySource | None
    #: In a sharded queue, calls with one value of this argument (or of the callable's)
    #: go to one shard, in order (docs/scaling.md); default: spread round-robin.
    shard_key: KeySource | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowOptions:
    """The flow control options of a task (part of its :class:`~rediq_core.options.TaskOptions`)."""

    rate_limit: Rate | None = None
    rate_limit_key: KeySource | None = None
    concurrency_limit: int | None = None
    concurrency_key: KeySource | None = None
    fair_key: KeySource | None = None
    #: Not started within this long of its enqueue: the task ends ``expired``, never runs.
    expires_ms: int | None = None
    #: No attempt (a retry included) starts later than this long after its enqueue.
    deadline_ms: int | None = None
    #: "until_done" or "until_started": an enqueue while a task with the same unique key
    #: is unfinished (or not started) stores nothing and answers with that task.
    unique: str | None = None
    unique_key: KeySource | None = None
    #: A burst of enqueues with one debounce key runs once, the last one, this long after it.
    debounce_ms: int | None = None
    debounce_key: KeySource | None = None
    #: Routes a call in a sharded queue (not a limit: it never travels in the message).
    shard_key: KeySource | None = None

    def check(self, signature: inspect.Signature | None) -> None:
        """Raise :class:`ConfigurationError` on options that cannot work together."""
        _check_limit("concurrency_limit", self.concurrency_limit)
        _check_duration("expires", self.expires_ms)
        _check_duration("deadline", self.deadline_ms)
        _check_duration("debounce", self.debounce_ms)
        if self.unique is not None and self.unique not in UNIQUE_MODES:
            raise ConfigurationError(
                f"unique={self.unique!r} is invalid: expected 'until_done' or 'until_started'"
            )
        if self.unique_key is not None and self.unique is None:
            raise ConfigurationError("unique_key needs unique ('until_done' or 'until_started')")
        if self.debounce_key is not None and self.debounce_ms is None:
            raise ConfigurationError("debounce_key needs a debounce (e.g. debounce=2)")
        _check_key("unique_key", self.unique_key, signature)
        _check_key("debounce_key", self.debounce_key, signature)
        if self.rate_limit_key is not None and self.rate_limit is None:
            raise ConfigurationError("rate_limit_key needs a rate_limit (e.g. rate_limit='10/m')")
        if self.concurrency_key is not None and self.concurrency_limit is None:
            raise ConfigurationError("concurrency_key needs a concurrency_limit (e.g. 2)")
        _check_key("rate_limit_key", self.rate_limit_key, signature)
        _check_key("concurrency_key", self.concurrency_key, signature)
        _check_key("fair_key", self.fair_key, signature)
        _check_key("shard_key", self.shard_key, signature)

    @property
    def limited(self) -> bool:
        """Whether a call of the task carries a flow (a limit, a fair key, a time)."""
        return bool(
            self.rate_limit
            or self.concurrency_limit
            or self.fair_key is not None
            or self.expires_ms is not None
            or self.deadline_ms is not None
            or self.unique is not None
            or self.debounce_ms is not None
        )

    def merged(self, signature: inspect.Signature, **flow: Unpack[FlowArgs]) -> FlowOptions:
        """A copy with the given options, checked against the task's signature."""
        check_flow_args(flow)
        rate, unique = flow.get("rate_limit"), flow.get("unique")
        changes: dict[str, Any] = {
            "rate_limit": None if rate is None else Rate.parse(rate),
            "rate_limit_key": flow.get("rate_limit_key"),
            "concurrency_limit": flow.get("concurrency_limit"),
            "concurrency_key": flow.get("concurrency_key"),
            "fair_key": flow.get("fair_key"),
            "expires_ms": _duration_ms("expires", flow.get("expires")),
            "deadline_ms": _duration_ms("deadline", flow.get("deadline")),
            "unique": unique,
            "unique_key": flow.get("unique_key"),
            "debounce_ms": _duration_ms("debounce", flow.get("debounce")),
            "debounce_key": flow.get("debounce_key"),
            "shard_key": flow.get("shard_key"),
        }
        merged = replace(self, **{k: v for k, v in changes.items() if v is not None})
        merged.check(signature)
        return merged


def _key_text(value: Any) -> str:
    """A key value as it names a limit: ``str(value)``, with ``%`` and line breaks escaped
    (a line break separates a limit's name from a task id in the broker's indexes)."""
    return str(value).replace("%", "%25").replace("\n", "%0A").replace("\r", "%0D")


def _key_value(
    source: KeySource,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> str:
    if callable(source):
        return _key_text(source(*args, **kwargs))
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    if source in bound.arguments:
        return _key_text(bound.arguments[source])
    return _key_text(bound.kwargs.get(source))


@dataclass(frozen=True, slots=True)
class Flow:
    """The limits one message is subject to, as it travels in its envelope (``"flow"``):
    ``concurrency`` pairs (limit name, at most running), ``rates`` (limit name, rate),
    ``fair`` (its tenant among the queue's fair tasks, or None), and its ``expires_ms`` and
    ``deadline_ms`` (durations from its enqueue, on the broker's clock)."""

    concurrency: tuple[tuple[str, int], ...] = ()
    rates: tuple[tuple[str, Rate], ...] = ()
    fair: str | None = None
    expires_ms: int | None = None
    deadline_ms: int | None = None
    #: (unique key, "d" until done or "s" until started), or None.
    unique: tuple[str, str] | None = None
    #: (debounce key, debounce ms), or None.
    debounce: tuple[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.concurrency:
            data["c"] = [[name, limit] for name, limit in self.concurrency]
        if self.rates:
            data["r"] = [[name, r.count, r.period_ms, r.burst] for name, r in self.rates]
        if self.fair is not None:
            data["f"] = self.fair
        if self.expires_ms is not None:
            data["x"] = self.expires_ms
        if self.deadline_ms is not None:
            data["d"] = self.deadline_ms
        if self.unique is not None:
            data["u"] = list(self.unique)
        if self.debounce is not None:
            data["b"] = list(self.debounce)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Flow:
        if not isinstance(data, dict):
            raise TypeError("flow is not a JSON object")
        return cls(
            concurrency=tuple((str(n), int(m)) for n, m in data.get("c", ())),
            rates=tuple((str(n), Rate(int(c), int(p), int(b))) for n, c, p, b in data.get("r", ())),
            fair=None if data.get("f") is None else str(data["f"]),
            expires_ms=None if data.get("x") is None else int(data["x"]),
            deadline_ms=None if data.get("d") is None else int(data["d"]),
            unique=None if data.get("u") is None else (str(data["u"][0]), str(data["u"][1])),
            debounce=None if data.get("b") is None else (str(data["b"][0]), int(data["b"][1])),
        )


def shard_key_of(
    task_name: str,
    options: FlowOptions,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> str | None:
    """The value of a call's ``shard_key`` (None when it has none); a key source that
    fails raises :class:`ConfigurationError` at enqueue time."""
    if options.shard_key is None:
        return None
    return _call_key(task_name, "shard", options.shard_key, signature, args, kwargs)


def _call_key(
    task_name: str,
    what: str,
    source: KeySource,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> str:
    """A key of one call, or :class:`ConfigurationError` saying which key failed."""
    try:
        return _key_value(source, signature, args, kwargs)
    except Exception as exc:
        raise ConfigurationError(
            f"task {task_name!r}: the {what} key could not be computed from this call's"
            f" arguments: {exc!r}"
        ) from exc


def flow_of(
    task_name: str,
    options: FlowOptions,
    signature: inspect.Signature,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    payload: bytes,
) -> Flow | None:
    """The flow of one call of task ``task_name`` (None when it has none). A key source
    that fails raises :class:`ConfigurationError` at enqueue time. The default unique key
    is the task and its serialized arguments (``payload``)."""
    if not options.limited:
        return None
    task = _key_text(task_name)

    def key(what: str, source: KeySource) -> str:
        return _call_key(task_name, what, source, signature, args, kwargs)

    def named(kind: str, what: str, source: KeySource | None) -> str:
        return f"{kind}:{task}" if source is None else f"{kind}:{task}:{key(what, source)}"

    concurrency: tuple[tuple[str, int], ...] = ()
    if options.concurrency_limit is not None:
        concurrency = (
            (named("c", "concurrency", options.concurrency_key), options.concurrency_limit),
        )
    rates: tuple[tuple[str, Rate], ...] = ()
    if options.rate_limit is not None:
        rates = ((named("r", "rate", options.rate_limit_key), options.rate_limit),)
    fair = None if options.fair_key is None else key("fair", options.fair_key)
    unique = None
    if options.unique is not None:
        digest = hashlib.sha256(payload).hexdigest()[:32]
        name = (
            named("u", "unique", options.unique_key) if options.unique_key else f"u:{task}:{digest}"
        )
        unique = (name, UNIQUE_MODES[options.unique])
    debounce = None
    if options.debounce_ms is not None:
        debounce = (named("b", "debounce", options.debounce_key), options.debounce_ms)
    return Flow(concurrency, rates, fair, options.expires_ms, options.deadline_ms, unique, debounce)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueLimits:
    """Limits an operator set on a whole queue (``app.control.set_limits``): at most
    ``concurrency`` of its tasks running, at most ``rate`` starts; None: no such limit."""

    concurrency: int | None = None
    rate: Rate | None = None

    def __post_init__(self) -> None:
        _check_limit("concurrency", self.concurrency)

    @property
    def empty(self) -> bool:
        return self.concurrency is None and self.rate is None


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitUse:
    """The use of one limit of a queue now: ``name`` is ``"c:<task>[:<key>]"`` for a
    task's concurrency limit, ``"r:<task>[:<key>]"`` for its rate, ``"c"`` and ``"r"`` for
    the queue's own; ``running`` tasks hold a slot of it, ``limited`` tasks wait for it,
    and a rate's waiting tasks may start again at ``next_start_ms`` (epoch ms)."""

    name: str
    running: int = 0
    limited: int = 0
    next_start_ms: int | None = None

    @property
    def kind(self) -> str:
        return "rate" if self.name.split(":", 1)[0] == "r" else "concurrency"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "running": self.running,
            "limited": self.limited,
            "next_start_ms": self.next_start_ms,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFlow:
    """A queue's own limits and the use of every limit its tasks hold or wait for."""

    queue: str
    limits: QueueLimits
    uses: tuple[LimitUse, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "concurrency": self.limits.concurrency,
            "rate": self.limits.rate.text if self.limits.rate else None,
            "uses": [use.as_json() for use in self.uses],
        }
