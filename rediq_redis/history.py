"""Reading a queue's metrics history: the per-minute ring (``minutes``) and the rolled-up
``history`` string (docs/broker.md, "Metrics history").

The scripts count into the ring; the first count of a new minute rolls the minute open
until then up into the history (``roll_up`` in ``scripts/_prelude.lua``): its record among
the day's minutes, and its hour's record (the sum of the hour's minute records). So the
history holds every minute but the open one, which is read from the ring.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from rediq_core.history import HOUR_MS, HistoryWindow, into_steps
from rediq_core.inspection import COUNTER_NAMES, HistoryPoint, MinuteCounts, QueueHistory

from .layout import (
    HISTORY_MINUTES,
    HISTORY_RECORD,
    MINUTE_MS,
    MINUTE_OPEN,
    MINUTE_SLOTS,
    MINUTE_STAMP,
    RUN_FIELD,
    RUN_SCALE,
    HistoryRecord,
    history_hour_offset,
    history_minute_offset,
    minute_field,
    unpack_history,
)
from .session import Session

__all__ = ["queue_history", "ring_minute", "ring_minutes"]

_HOUR_MINUTES = HOUR_MS // MINUTE_MS
_RECORD = HISTORY_RECORD.size


def ring_minute(ring: Mapping[bytes, bytes], minute: int) -> MinuteCounts | None:
    """Minute ``minute``'s counts in the ring, or None if its slot holds another."""
    slot = minute % MINUTE_SLOTS
    if int(ring.get(minute_field(MINUTE_STAMP, slot).encode(), -1)) != minute:
        return None
    counts = {name: int(ring.get(minute_field(name, slot).encode(), 0)) for name in COUNTER_NAMES}
    run_ms, runs = divmod(int(ring.get(minute_field(RUN_FIELD, slot).encode(), 0)), RUN_SCALE)
    return MinuteCounts(minute * MINUTE_MS, **counts, runs=runs, run_ms=run_ms)


def ring_minutes(ring: Mapping[bytes, bytes], now_ms: int, count: int) -> tuple[MinuteCounts, ...]:
    """The last ``count`` minutes of the ring, the current one last (empty ones zero)."""
    current = now_ms // MINUTE_MS
    return tuple(
        ring_minute(ring, m) or MinuteCounts(m * MINUTE_MS)
        for m in range(current - count + 1, current + 1)
    )


def _point(record: HistoryRecord, start_ms: int, step_ms: int) -> HistoryPoint:
    return HistoryPoint(start_ms, step_ms, **record.counts, runs=record.runs, run_ms=record.run_ms)


def _from_minutes(minutes: MinuteCounts) -> HistoryPoint:
    counts = {name: getattr(minutes, name) for name in COUNTER_NAMES}
    return HistoryPoint(
        minutes.minute_ms, MINUTE_MS, **counts, runs=minutes.runs, run_ms=minutes.run_ms
    )


def _minute_points(
    window: HistoryWindow,
    ring: Mapping[bytes, bytes],
    history: bytes,
    oldest_minute: int,
    open_minute: int | None,
) -> Iterator[HistoryPoint]:
    """The window's minutes still kept one by one (for steps of whole hours: those of
    hours kept whole among them) that hold counts."""
    by_hour = window.step_ms % HOUR_MS == 0
    first, last = window.since_ms // MINUTE_MS, (window.until_ms - 1) // MINUTE_MS
    for minute in range(max(first, oldest_minute), last + 1):
        if by_hour and (minute // _HOUR_MINUTES) * _HOUR_MINUTES < oldest_minute:
            continue  # its hour is read whole
        if minute == open_minute:
            counts = ring_minute(ring, minute)
            if counts is not None:
                yield _from_minutes(counts)
            continue
        at = history_minute_offset(minute)
        for record in unpack_history(history[at : at + _RECORD]):
            if record.stamp == minute:
                yield _point(record, minute * MINUTE_MS, MINUTE_MS)


def _hour_points(
    window: HistoryWindow,
    ring: Mapping[bytes, bytes],
    history: bytes,
    oldest_minute: int,
    open_minute: int | None,
) -> Iterator[HistoryPoint]:
    """The window's hours older than the minutes kept one by one that hold counts (with
    the open minute, not rolled up into its hour yet)."""
    first, last = window.since_ms // HOUR_MS, (window.until_ms - 1) // HOUR_MS
    for hour in range(first, last + 1):
        if hour * _HOUR_MINUTES >= oldest_minute:
            return
        at = history_hour_offset(hour)
        for record in unpack_history(history[at : at + _RECORD]):
            if record.stamp == hour:
                yield _point(record, hour * HOUR_MS, HOUR_MS)
        if open_minute is not None and open_minute // _HOUR_MINUTES == hour:
            counts = ring_minute(ring, open_minute)
            if counts is not None:
                yield _from_minutes(counts)


def _found(
    window: HistoryWindow, ring: Mapping[bytes, bytes], history: bytes, now_ms: int
) -> Iterator[HistoryPoint]:
    oldest_minute = now_ms // MINUTE_MS - HISTORY_MINUTES + 1  # still kept one by one
    raw_open = ring.get(MINUTE_OPEN.encode())
    open_minute = int(raw_open) if raw_open is not None else None
    yield from _minute_points(window, ring, history, oldest_minute, open_minute)
    if window.step_ms % HOUR_MS == 0:
        yield from _hour_points(window, ring, history, oldest_minute, open_minute)


async def queue_history(session: Session, queue: str, window: HistoryWindow) -> QueueHistory:
    keys = session.keys.queue(queue)
    async with session.client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.key("minutes"))
        pipe.get(keys.key("history"))
        ring, history = await pipe.execute()
    # which minutes are still kept one by one: by this clock (the scripts count by the
    # server's; a skew of seconds moves the boundary a day back by as much)
    found = _found(window, ring, history or b"", int(time.time() * 1000))
    return QueueHistory(
        queue=queue,
        since_ms=window.since_ms,
        until_ms=window.until_ms,
        step_ms=window.step_ms,
        points=into_steps(window, found),
    )
