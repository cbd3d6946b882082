"""A queue's metrics history: how long it is kept, which windows may be asked for, and
how minutes and hours are summed into the steps of an answer.

Brokers keep every minute of a queue's counters for 32 hours (:data:`MINUTE_RETENTION_MS`)
and every hour for 14 days (:data:`HISTORY_RETENTION_MS`); a window reaching back further
than the minutes is answered in whole hours. :func:`history_window` checks a request once, for
every broker; :func:`into_steps` sums a broker's minutes and hours into the steps.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from .inspection import COUNTER_NAMES, HistoryPoint

__all__ = [
    "HISTORY_RETENTION_MS",
    "HOUR_MS",
    "MAX_POINTS",
    "MINUTE_MS",
    "MINUTE_RETENTION_MS",
    "POINT_FIELDS",
    "HistoryWindow",
    "history_window",
    "into_steps",
    "parse_span",
]

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
#: Minutes are kept this long (a window of the last 24 hours is answered in minutes; 32
#: hours fill the allocation the Redis broker's history string takes anyway), hours for
#: :data:`HISTORY_RETENTION_MS`.
MINUTE_RETENTION_MS: Final = 32 * HOUR_MS
#: The history reaches back 14 days.
HISTORY_RETENTION_MS: Final = 14 * 24 * HOUR_MS
#: The most points one answer has (a day in minutes).
MAX_POINTS: Final = 1440
#: The steps a default picks from, smallest first.
_STEPS_MS: Final = (MINUTE_MS, 5 * MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS)
#: About this many points by default (a chart's width).
_DEFAULT_POINTS: Final = 360
#: The summed fields of a point: the counters, then the recorded attempts' count and time.
POINT_FIELDS: Final = (*COUNTER_NAMES, "runs", "run_ms")

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_span(text: str) -> dt.timedelta:
    """``"90m"``, ``"24h"``, ``"14d"``, ``"30s"`` as a timedelta (ValueError otherwise)."""
    match = _SPAN.match(text)
    if match is None:
        raise ValueError(
            f"cannot read the span {text!r}: write a number and a unit, s, m, h or d"
            " (e.g. 1h, 24h, 14d)"
        )
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def _ms(value: dt.datetime | dt.timedelta | int | float, now_ms: int) -> int:
    if isinstance(value, dt.timedelta):
        return now_ms - int(value.total_seconds() * 1000)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: pass an aware datetime")
        return int(value.timestamp() * 1000)
    return int(value)


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """A checked request: steps of ``step_ms`` from ``since_ms`` (aligned to the step)
    to ``until_ms`` (exclusive)."""

    since_ms: int
    until_ms: int
    step_ms: int

    @property
    def starts(self) -> range:
        return range(self.since_ms, self.until_ms, self.step_ms)


def _default_step(since_ms: int, until_ms: int, hours_only: bool) -> int:
    for step in _STEPS_MS:
        if hours_only and step % HOUR_MS:
            continue
        if (until_ms - since_ms) / step <= _DEFAULT_POINTS:
            return step
    return _STEPS_MS[-1]


def history_window(
    since: dt.datetime | dt.timedelta | int | float,
    until: dt.datetime | dt.timedelta | int | float | None = None,
    step: dt.timedelta | int | float | None = None,
    *,
    now_ms: int | None = None,
) -> HistoryWindow:
    """Check a history request. ``since``/``until``: an aware datetime, a timedelta back
    from now, or epoch ms; ``until`` defaults to now (the current step included);
    ``step``: a timedelta or ms, a whole number of minutes, and of hours when the window
    reaches back more than 32 hours (minutes are kept that long). A window starting more
    than 14 days ago starts then."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    since_ms, until_ms = _ms(since, now), now + 1 if until is None else _ms(until, now)
    since_ms = max(since_ms, now - HISTORY_RETENTION_MS)
    if until_ms <= since_ms:
        raise ValueError("the history window is empty: `until` must come after `since`")
    hours_only = since_ms < now - MINUTE_RETENTION_MS + MINUTE_MS
    if step is None:
        step_ms = _default_step(since_ms, until_ms, hours_only)
    else:
        step_ms = int(step.total_seconds() * 1000) if isinstance(step, dt.timedelta) else int(step)
    if step_ms < MINUTE_MS or step_ms % MINUTE_MS:
        raise ValueError(f"a history step is a whole number of minutes, not {step_ms} ms")
    if hours_only and step_ms % HOUR_MS:
        raise ValueError(
            "minutes are kept for 32 hours, hours for 14 days: for a window reaching back"
            " further, use a step of whole hours (e.g. step=timedelta(hours=1))"
        )
    since_ms -= since_ms % step_ms
    until_ms += -until_ms % step_ms
    if (until_ms - since_ms) // step_ms > MAX_POINTS:
        raise ValueError(
            f"{(until_ms - since_ms) // step_ms} points asked for, at most {MAX_POINTS}:"
            " use a larger step or a shorter window"
        )
    return HistoryWindow(since_ms, until_ms, step_ms)


def into_steps(window: HistoryWindow, found: Iterable[HistoryPoint]) -> tuple[HistoryPoint, ...]:
    """Sum minutes and hours (``found``, each inside one step) into the window's steps."""
    sums = {start: dict.fromkeys(POINT_FIELDS, 0) for start in window.starts}
    for point in found:
        if not window.since_ms <= point.start_ms < window.until_ms:
            continue
        start = point.start_ms - (point.start_ms - window.since_ms) % window.step_ms
        into = sums[start]
        for name in POINT_FIELDS:
            into[name] += int(getattr(point, name))
    return tuple(HistoryPoint(start, window.step_ms, **sums[start]) for start in window.starts)
