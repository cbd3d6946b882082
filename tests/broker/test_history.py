"""The metrics history on Redis: the first count of a minute rolls the minute open until
then up into the ``history`` string, once (a second roll-up of the same minute changes
nothing), into its minute's and its hour's records; and the history's size is fixed.

The tests write the ring's state of an earlier minute themselves (the layout of
``rediq_redis/layout.py``), so no test waits for the clock to turn a minute.
"""

from __future__ import annotations

import datetime as dt

from redis.asyncio import Redis

from rediq_core.history import HOUR_MS, MINUTE_MS, history_window
from rediq_core.inspection import HistoryPoint
from rediq_core.testing.broker_contract import make_message
from rediq_redis import RedisBroker
from rediq_redis.keys import QueueKeys
from rediq_redis.layout import (
    HISTORY_HOURS,
    HISTORY_MINUTES,
    HISTORY_RECORD,
    HISTORY_SIZE,
    MINUTE_OPEN,
    MINUTE_SLOTS,
    MINUTE_STAMP,
    RUN_FIELD,
    RUN_SCALE,
    minute_field,
)

Q = "history"


async def _server_minute(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return (int(seconds) * 1000 + int(micros) // 1000) // MINUTE_MS


async def _open_earlier_minute(redis: Redis, keys: QueueKeys, minute: int, current: int) -> None:
    """Make ``minute`` the ring's open minute, with counts, and the current minute's slot
    hold an old minute (so the next count is the first of the current minute)."""
    slot = minute % MINUTE_SLOTS
    await redis.hset(
        keys.key("minutes"),
        mapping={
            minute_field(MINUTE_STAMP, slot): minute,
            minute_field("enqueued", slot): 7,
            minute_field("succeeded", slot): 5,
            minute_field("failed", slot): 1,
            minute_field(RUN_FIELD, slot): 5_000 * RUN_SCALE + 6,
            MINUTE_OPEN: minute,
        },
    )
    for at in (current, current + 1):  # (the clock may turn a minute meanwhile)
        await redis.hset(keys.key("minutes"), minute_field(MINUTE_STAMP, at % MINUTE_SLOTS), 0)


async def _points(broker: RedisBroker, since_ms: int, step: dt.timedelta) -> list[HistoryPoint]:
    window = history_window(since_ms, step=step)
    found = await broker.queue_history(Q, window.since_ms, window.until_ms, window.step_ms)
    return [p for p in found.points if p.enqueued or p.runs]


async def test_a_minute_is_rolled_up_once(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    keys = QueueKeys(rediq_namespace, Q)
    current = await _server_minute(redis)
    earlier = current - 3
    await _open_earlier_minute(redis, keys, earlier, current)
    await broker.enqueue([make_message(queue=Q)])  # the first count of the minute rolls up
    assert int(await redis.hget(keys.key("minutes"), MINUTE_OPEN) or 0) >= current
    minute = await _points(broker, earlier * MINUTE_MS, dt.timedelta(minutes=1))
    rolled = [p for p in minute if p.start_ms == earlier * MINUTE_MS]
    assert rolled == [HistoryPoint(earlier * MINUTE_MS, MINUTE_MS, 7, 5, 1, 0, 0, 6, 5_000)]
    assert rolled[0].mean_run_s == 5_000 / 6 / 1000
    assert sum(p.enqueued for p in minute) == 8  # and the open minute, from the ring
    hours = await _points(broker, current * MINUTE_MS - 2 * HOUR_MS, dt.timedelta(hours=1))
    assert sum(p.enqueued for p in hours) == 8 and sum(p.runs for p in hours) == 6

    # a second roll-up of the same minute (as a second worker's would be) counts nothing
    # twice: it writes the minute's record again and sums its hour again
    await _open_earlier_minute(redis, keys, earlier, current)
    await broker.enqueue([make_message(queue=Q)])
    again = await _points(broker, earlier * MINUTE_MS, dt.timedelta(minutes=1))
    assert [p for p in again if p.start_ms == earlier * MINUTE_MS] == rolled
    hours = await _points(broker, current * MINUTE_MS - 2 * HOUR_MS, dt.timedelta(hours=1))
    assert sum(p.runs for p in hours) == 6


async def test_hours_older_than_a_day_come_from_the_hour_records(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """A minute rolled up after a day (the queue was idle since) lands in its hour's
    record; a window of two days in hours answers it there."""
    keys = QueueKeys(rediq_namespace, Q)
    current = await _server_minute(redis)
    old = current - HISTORY_MINUTES - 70
    await _open_earlier_minute(redis, keys, old, current)
    await broker.enqueue([make_message(queue=Q)])
    points = await _points(broker, current * MINUTE_MS - 2 * 24 * HOUR_MS, dt.timedelta(hours=1))
    hour = old * MINUTE_MS // HOUR_MS * HOUR_MS
    assert [(p.start_ms, p.enqueued, p.runs, p.run_ms) for p in points if p.start_ms == hour] == [
        (hour, 7, 6, 5_000)
    ]
    assert sum(p.enqueued for p in points) == 8


async def test_the_history_has_a_fixed_size(
    broker: RedisBroker, redis: Redis, rediq_namespace: str
) -> None:
    """Whatever the load, a queue's history is one string of (1920 + 336) records, and its
    ring at most 60 minutes of 7 fields: their ``MEMORY USAGE`` is the size per queue the
    docs state (docs/observability.md, "History")."""
    keys = QueueKeys(rediq_namespace, Q)
    current = await _server_minute(redis)
    await _open_earlier_minute(redis, keys, current - 2, current)
    await broker.enqueue([make_message(queue=Q)])
    size = (HISTORY_MINUTES + HISTORY_HOURS) * HISTORY_RECORD.size
    assert await redis.strlen(keys.key("history")) == size == HISTORY_SIZE == 81_216
    history_bytes = int(await redis.memory_usage(keys.key("history")) or 0)
    # the ring at its fullest: every slot of the last hour with every field, large counts
    full = {}
    for minute in range(current - MINUTE_SLOTS + 1, current + 1):
        slot = minute % MINUTE_SLOTS
        full[minute_field(MINUTE_STAMP, slot)] = minute
        for name in ("enqueued", "succeeded", "failed", "retried", "expired"):
            full[minute_field(name, slot)] = 123_456_789
        full[minute_field(RUN_FIELD, slot)] = 3_600_000 * RUN_SCALE + 123_456
    await redis.hset(keys.key("minutes"), mapping=full)
    ring_bytes = int(await redis.memory_usage(keys.key("minutes"), samples=0) or 0)
    print(f"history {history_bytes} B, ring {ring_bytes} B per queue")
    assert history_bytes <= 84_000, history_bytes  # 82,008 on Redis 7.0 (jemalloc)
    assert ring_bytes <= 40_000, ring_bytes
