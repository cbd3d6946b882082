"""Daylight-saving changes in Europe/Berlin, as docs/cron.md documents them.

2026-03-29 01:00 UTC: clocks jump from 02:00 CET to 03:00 CEST (a gap).
2026-10-25 01:00 UTC: clocks fall back from 03:00 CEST to 02:00 CET (an overlap).
The scheduler tests inject a clock set just before those instants (running at real speed)
and check which tick ids the scheduler fires.
"""

from __future__ import annotations

import datetime as dt

from rediq import Rediq
from rediq_core.crontab import CronExpression
from rediq_core.worker.cron import latest_tick_at_or_before

from .conftest import Enqueued, run_until_fired

BERLIN = "Europe/Berlin"


def utc(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.UTC).timestamp() * 1000)


def berlin(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        .astimezone(CronExpression("@daily", BERLIN).zone)
        .strftime("%m-%d %H:%M:%S%z")
    )


def ticks(expression: str, start_ms: int, count: int) -> list[str]:
    return [berlin(t) for t in CronExpression(expression, BERLIN).ticks_after(start_ms, count)]


def test_gap_shifts_a_missing_wall_time_forward_by_the_gap() -> None:
    assert ticks("30 2 * * *", utc(2026, 3, 28, 12), 2) == [
        "03-29 03:30:00+0200",
        "03-30 02:30:00+0200",
    ]


def test_gap_fires_colliding_ticks_once() -> None:
    assert ticks("*/30 * * * *", utc(2026, 3, 29, 0), 4) == [
        "03-29 01:30:00+0100",
        "03-29 03:00:00+0200",
        "03-29 03:30:00+0200",
        "03-29 04:00:00+0200",
    ]
    every_second = CronExpression("* * * * * *", BERLIN)
    assert every_second.ticks_after(utc(2026, 3, 29, 0, 59, 58), 3) == [
        utc(2026, 3, 29, 0, 59, 59),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 1, 0, 1),
    ]


def test_overlap_fires_fixed_wall_time_once_at_first_occurrence() -> None:
    assert ticks("30 2 * * *", utc(2026, 10, 24, 12), 2) == [
        "10-25 02:30:00+0200",
        "10-26 02:30:00+0100",
    ]


def test_overlap_fires_every_hour_expressions_in_both_passes() -> None:
    assert ticks("30 * * * *", utc(2026, 10, 24, 23, 45), 4) == [
        "10-25 02:30:00+0200",
        "10-25 02:30:00+0100",
        "10-25 03:30:00+0100",
        "10-25 04:30:00+0100",
    ]
    assert ticks("@hourly", utc(2026, 10, 24, 23, 30), 3) == [
        "10-25 02:00:00+0200",
        "10-25 02:00:00+0100",
        "10-25 03:00:00+0100",
    ]


def test_latest_tick_at_or_before_across_the_overlap() -> None:
    app = Rediq("redis://127.0.0.1:1/0")

    @app.cron("30 * * * *", name="half", timezone=BERLIN)
    @app.task(task_name="job")
    async def job() -> None: ...

    half = app.schedules["half"]
    assert latest_tick_at_or_before(half, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 0, 30)
    assert latest_tick_at_or_before(half, utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 1, 30)


async def test_scheduler_fires_the_gap_tick_shifted_forward(app: Rediq, enqueued: Enqueued) -> None:
    @app.cron("0 30 2 * * *", name="nightly", timezone=BERLIN)
    @app.task(task_name="nightly")
    async def nightly() -> None: ...

    scheduler, message = await run_until_fired(
        app,
        utc(
            2026,
            3,
            29,
            1,
            29,
            58,
        ),
        enqueued,
    )
    assert message.id == f"cron:nightly:{utc(2026, 3, 29, 1, 30)}"  # 03:30 CEST
    assert berlin(scheduler.next_ms["nightly"]) == "03-30 02:30:00+0200"


async def test_scheduler_fires_the_overlap_once_for_fixed_times(
    app: Rediq, enqueued: Enqueued
) -> None:
    @app.cron("0 30 2 * * *", name="nightly", timezone=BERLIN)
    @app.cron("0 30 * * * *", name="hourly", timezone=BERLIN)
    @app.task(task_name="job")
    async def job() -> None: ...

    # 02:29:58 CET, the second pass through 02:xx: only the every-hour schedule fires
    scheduler, message = await run_until_fired(app, utc(2026, 10, 25, 1, 29, 58), enqueued)
    assert message.id == f"cron:hourly:{utc(2026, 10, 25, 1, 30)}"
    assert berlin(scheduler.next_ms["nightly"]) == "10-26 02:30:00+0100"
