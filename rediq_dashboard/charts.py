"""Server-rendered SVG charts of a queue's history (no script, nothing downloaded: the
dashboard works offline): throughput per minute and mean run time over a chosen span,
each with its axes, times and a legend."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from rediq_core.inspection import HistoryPoint, QueueHistory

__all__ = ["SPANS", "LineChart", "Series", "Tick", "run_time_chart", "span_of", "throughput_chart"]

#: The spans a queue page offers: its name -> (window, step).
SPANS: Final = {
    "1h": (dt.timedelta(hours=1), dt.timedelta(minutes=1)),
    "24h": (dt.timedelta(hours=24), dt.timedelta(minutes=5)),
    "14d": (dt.timedelta(days=14), dt.timedelta(hours=1)),
}
#: The throughput chart's series: counter, legend, CSS class.
THROUGHPUT: Final = (
    ("enqueued", "enqueued", "s-enqueued"),
    ("succeeded", "succeeded", "s-succeeded"),
    ("failed", "failed (dead-lettered)", "s-failed"),
    ("retried", "retried", "s-retried"),
)
WIDTH, HEIGHT = 640.0, 200.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 8.0, 8.0, 24.0
#: X tick spacing per span length: (longest span, tick every, label format).
_X_TICKS: Final = (
    (2 * 3600_000, 10 * 60_000, "%H:%M"),
    (26 * 3600_000, 3 * 3600_000, "%H:%M"),
    (None, 2 * 86_400_000, "%m-%d"),
)


def span_of(text: str | None) -> str:
    """A span name the page offers (anything else: the first, ``1h``)."""
    return text if text in SPANS else next(iter(SPANS))


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css: str
    #: Polylines (SVG ``points``): a gap in the data (no run recorded) splits the line.
    lines: tuple[str, ...]
    peak: float


@dataclass(frozen=True, slots=True)
class LineChart:
    title: str
    unit: str
    series: tuple[Series, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    top: float = TOP
    bottom: float = HEIGHT - BOTTOM

    @property
    def empty(self) -> bool:
        return all(s.peak == 0 for s in self.series)


def _nice_top(peak: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``peak`` (1 for 0)."""
    if peak <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(peak))
    return next(float(m * power) for m in (1, 2, 5, 10) if m * power >= peak)


def _number(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _x(history: QueueHistory, start_ms: int) -> float:
    span = history.until_ms - history.since_ms
    middle = start_ms + history.step_ms / 2 - history.since_ms
    return LEFT + (WIDTH - RIGHT - LEFT) * middle / span


def _x_ticks(history: QueueHistory) -> tuple[Tick, ...]:
    span = history.until_ms - history.since_ms
    every, fmt = next((e, f) for longest, e, f in _X_TICKS if longest is None or span <= longest)
    offset = -time.localtime(history.since_ms / 1000).tm_gmtoff * 1000  # local midnight/hours
    first = history.since_ms + (-(history.since_ms - offset) % every)
    ticks = []
    for at in range(first, history.until_ms, every):
        x = LEFT + (WIDTH - RIGHT - LEFT) * (at - history.since_ms) / span
        ticks.append(Tick(x, time.strftime(fmt, time.localtime(at / 1000))))
    return tuple(ticks)


def _y(value: float, top: float) -> float:
    return HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * value / top


def _chart(
    history: QueueHistory,
    title: str,
    unit: str,
    wanted: Sequence[tuple[str, str, Callable[[HistoryPoint], float | None]]],
) -> LineChart:
    values = [[value(p) for p in history.points] for _, _, value in wanted]
    peak = max((v for row in values for v in row if v is not None), default=0.0)
    top = _nice_top(peak)
    series = []
    for (name, css, _), row in zip(wanted, values, strict=True):
        lines: list[str] = []
        line: list[str] = []
        for point, value in zip(history.points, row, strict=True):
            if value is None:
                if line:
                    lines.append(" ".join(line))
                line = []
                continue
            line.append(f"{_x(history, point.start_ms):.1f},{_y(value, top):.1f}")
        if line:
            lines.append(" ".join(line))
        found = [v for v in row if v is not None]
        series.append(Series(name, css, tuple(lines), max(found, default=0.0)))
    y_ticks = tuple(Tick(_y(top * i / 4, top), _number(top * i / 4)) for i in range(5))
    return LineChart(title, unit, tuple(series), _x_ticks(history), y_ticks)


def _per_minute(counter: str) -> Callable[[HistoryPoint], float | None]:
    return lambda point: point.per_minute(counter)


def throughput_chart(history: QueueHistory) -> LineChart:
    """Enqueued, succeeded, failed and retried tasks per minute (a step longer than a
    minute shows its mean per minute)."""
    wanted = [(legend, css, _per_minute(counter)) for counter, legend, css in THROUGHPUT]
    return _chart(history, "Throughput", "tasks per minute", wanted)


def run_time_chart(history: QueueHistory) -> LineChart:
    """The mean run time of the attempts of each step (a gap where none ran)."""
    wanted = [("mean run time", "s-run", lambda p: p.mean_run_s)]
    return _chart(history, "Mean run time", "seconds", wanted)
