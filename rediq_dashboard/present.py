"""What the templates show: decoded arguments and results (never with a serializer that
runs code on load), times, and the throughput chart of the last hour."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rediq_core.app import Rediq
    from rediq_core.broker import TaskRecord
    from rediq_core.inspection import QueueOverview

__all__ = [
    "Bar",
    "Chart",
    "Decoded",
    "call_line",
    "chart",
    "decoded_call",
    "decoded_result",
    "stamp",
]

CHART_MINUTES = 60


@dataclass(frozen=True, slots=True)
class Decoded:
    """A stored value as text; ``note`` says why it is not shown (or is shown partly)."""

    text: str
    note: str = ""


def _pretty(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)


def _loads(app: Rediq, serializer: str, data: bytes) -> Any:
    """Decode with a registered serializer that does not execute code on load."""
    codec = app.plugins.serializer(serializer)
    if getattr(codec, "executes_code_on_load", True):
        raise PermissionError(f"not decoded: {serializer} runs code when decoding")
    return codec.loads(data)


def decoded_call(app: Rediq, record: TaskRecord) -> tuple[Decoded, Decoded]:
    """The task's positional and keyword arguments."""
    message = record.message
    if message is None:
        gone = Decoded("", "not kept (the task has ended; only its result is stored)")
        return gone, gone
    try:
        args, kwargs = _loads(app, message.serializer, message.payload)
        return Decoded(_pretty(list(args))), Decoded(_pretty(dict(kwargs)))
    except Exception as exc:
        note = (
            str(exc)
            if isinstance(exc, PermissionError)
            else (f"cannot decode: {type(exc).__name__}: {exc}")
        )
        raw = Decoded(f"<{len(message.payload)} bytes, serializer {message.serializer}>", note)
        return raw, raw


def _compact(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)


def call_line(app: Rediq, record: TaskRecord) -> str:
    """The task's arguments on one line, as a call's: ``1, "x", key=[2]`` (the template
    truncates and escapes it); ``<N bytes, SERIALIZER>`` when they are not decoded."""
    message = record.message
    if message is None:
        return ""
    try:
        args, kwargs = _loads(app, message.serializer, message.payload)
        parts = [_compact(a) for a in args]
        parts += [f"{k}={_compact(v)}" for k, v in dict(kwargs).items()]
    except Exception:
        return f"<{len(message.payload)} bytes, {message.serializer}>"
    return ", ".join(parts)


def decoded_result(app: Rediq, record: TaskRecord) -> Decoded | None:
    if record.result is None:
        return None
    serializer = record.serializer or app.serializer_name
    try:
        return Decoded(_pretty(_loads(app, serializer, record.result)))
    except Exception as exc:
        note = (
            str(exc)
            if isinstance(exc, PermissionError)
            else (f"cannot decode: {type(exc).__name__}: {exc}")
        )
        return Decoded(f"<{len(record.result)} bytes, serializer {serializer}>", note)


def stamp(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    succeeded: float
    failed: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """Stacked bars per minute (succeeded below, failed on top), scaled to ``height``."""

    bars: tuple[Bar, ...]
    width: float
    height: float
    top: int
    total_succeeded: int
    total_failed: int


def chart(overviews: Iterable[QueueOverview], *, width: float = 600, height: float = 120) -> Chart:
    """The tasks finished per minute over the last hour, all queues together."""
    done: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for overview in overviews:
        for minute in overview.minutes:
            done[minute.minute_ms][0] += minute.succeeded
            done[minute.minute_ms][1] += minute.failed
    now_minute = int(time.time() // 60) * 60_000
    minutes = [now_minute - (CHART_MINUTES - 1 - i) * 60_000 for i in range(CHART_MINUTES)]
    counts = [done.get(m, [0, 0]) for m in minutes]
    top = max((s + f for s, f in counts), default=0)
    step = width / CHART_MINUTES
    scale = height / top if top else 0.0
    bars = tuple(
        Bar(
            x=i * step,
            succeeded=s * scale,
            failed=f * scale,
            label=f"{time.strftime('%H:%M', time.localtime(m / 1000))}: {s} succeeded, {f} failed",
        )
        for i, (m, (s, f)) in enumerate(zip(minutes, counts, strict=True))
    )
    return Chart(bars, width, height, top, sum(s for s, _ in counts), sum(f for _, f in counts))
