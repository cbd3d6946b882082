"""The autoscaling estimate is a pure function of counts and clocks: these tests drive it
with minutes of their own (no broker, no wall clock) and show it follows a step in load,
and that the history's window rules and sums hold."""

from __future__ import annotations

import datetime as dt

import pytest

from rediq_core.history import (
    HOUR_MS,
    MINUTE_MS,
    history_window,
    into_steps,
    parse_span,
)
from rediq_core.inspection import HistoryPoint, MinuteCounts, QueueOverview, WorkerStatus
from rediq_core.scaling import desired_workers, estimate

NOW_MS = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS + 12_345  # 12 s into a minute
CONCURRENCY = 10


def worker(queues: tuple[str, ...] = ("q",), concurrency: int = CONCURRENCY) -> WorkerStatus:
    return WorkerStatus(
        id="w1", name="w", host="h", pid=1, queues=queues, concurrency=concurrency, running=0
    )


def overview(minutes: list[MinuteCounts], pending: int = 0, active: int = 0) -> QueueOverview:
    return QueueOverview(
        name="q",
        paused=False,
        pending=pending,
        scheduled=0,
        active=active,
        dead=0,
        oldest_pending_age_s=None,
        totals={},
        minutes=tuple(minutes),
    )


def load(per_minute: list[int], run_ms: int) -> list[MinuteCounts]:
    """Minutes ending with the current one (partial, empty): ``per_minute`` tasks arrived
    and ran ``run_ms`` each in every complete minute."""
    current = NOW_MS // MINUTE_MS * MINUTE_MS
    start = current - len(per_minute) * MINUTE_MS
    return [
        MinuteCounts(start + i * MINUTE_MS, enqueued=n, succeeded=n, runs=n, run_ms=n * run_ms)
        for i, n in enumerate(per_minute)
    ] + [MinuteCounts(current)]


def test_littles_law_and_the_backlog() -> None:
    # 10/s x 2 s = 20 busy slots; 600 pending x 2 s / 60 s = 20 more: 40 slots, 4 workers
    assert (
        desired_workers(
            arrival_per_s=10, mean_run_s=2.0, pending=600, active=0, concurrency=CONCURRENCY
        )
        == 4
    )
    # without a backlog: 20 slots, 2 workers; a hair more: 3
    assert desired_workers(arrival_per_s=10, mean_run_s=2.0, pending=0, active=0, concurrency=10)
    assert (
        desired_workers(arrival_per_s=10, mean_run_s=2.0, pending=0, active=0, concurrency=10) == 2
    )
    assert (
        desired_workers(arrival_per_s=10.1, mean_run_s=2, pending=0, active=0, concurrency=10) == 3
    )
    # a shorter target drains faster with more workers
    assert (
        desired_workers(
            arrival_per_s=0, mean_run_s=2.0, pending=600, active=0, concurrency=10, target_drain_s=6
        )
        == 20
    )


def test_never_below_one_while_tasks_wait_or_run_and_zero_when_idle() -> None:
    assert (
        desired_workers(arrival_per_s=0, mean_run_s=None, pending=3, active=0, concurrency=10) == 1
    )
    assert (
        desired_workers(arrival_per_s=0, mean_run_s=0.001, pending=0, active=1, concurrency=10) == 1
    )
    assert (
        desired_workers(arrival_per_s=0, mean_run_s=None, pending=0, active=0, concurrency=10) == 0
    )


def test_bad_inputs_say_what_to_pass() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        desired_workers(arrival_per_s=1, mean_run_s=1, pending=0, active=0, concurrency=0)
    with pytest.raises(ValueError, match="target_drain_s must be positive"):
        desired_workers(
            arrival_per_s=1, mean_run_s=1, pending=0, active=0, concurrency=1, target_drain_s=0
        )
    with pytest.raises(ValueError, match="window_minutes"):
        estimate(overview(load([1], 10)), [], window_minutes=0, default_concurrency=1)


def test_the_estimate_follows_a_step_in_load() -> None:
    """A worker of concurrency 10; tasks run 3 s. At 600 per minute (10/s) they keep 30
    slots busy: 3 workers. The load steps to 2,400 per minute (40/s): 120 slots, 12
    workers -- 4 times the arrivals, 4 times the workers -- once the window (5 minutes)
    holds the new rate only; each minute of the step in between raises it."""
    workers = [worker()]
    low = estimate(overview(load([600] * 10, 3_000)), workers, default_concurrency=1)
    assert (low.arrival_per_s, low.mean_run_s, low.busy_slots) == (10.0, 3.0, 30.0)
    assert (low.desired_workers, low.concurrency, low.consumers) == (3, CONCURRENCY, 1)

    seen = []
    for minutes_at_high in range(6):
        per_minute = [600] * (10 - minutes_at_high) + [2_400] * minutes_at_high
        seen.append(estimate(overview(load(per_minute, 3_000)), workers, default_concurrency=1))
    desired = [s.desired_workers for s in seen]
    assert desired == [3, 5, 7, 9, 11, 12], desired  # rises with every minute of the step
    high = seen[-1]
    assert (high.arrival_per_s, high.busy_slots, high.desired_workers) == (40.0, 120.0, 12)
    assert high.desired_workers / low.desired_workers == high.arrival_per_s / low.arrival_per_s
    # a backlog on top: 1,800 pending drain in 60 s with 1,800 x 3 / 60 = 90 slots more
    backlog = estimate(
        overview(load([2_400] * 6, 3_000), pending=1_800), workers, default_concurrency=1
    )
    assert (backlog.backlog_slots, backlog.desired_workers) == (90.0, 21)


def test_the_concurrency_comes_from_the_live_workers_of_the_queue() -> None:
    minutes = load([600] * 6, 1_000)  # 10/s x 1 s = 10 slots
    other = worker(("other",), 1)
    stale = WorkerStatus(
        id="w2", name="w", host="h", pid=2, queues=("q",), concurrency=1, running=0, stale=True
    )
    assert (
        estimate(
            overview(minutes), [worker(concurrency=5)], default_concurrency=100
        ).desired_workers
        == 2
    )
    assert estimate(overview(minutes), [other, stale], default_concurrency=4).desired_workers == 3
    assert estimate(overview(minutes), [], default_concurrency=4).consumers == 0


def test_history_windows() -> None:
    hour = history_window(dt.timedelta(hours=1), now_ms=NOW_MS)
    assert hour.step_ms == MINUTE_MS and len(hour.starts) == 61  # the current minute too
    day = history_window(dt.timedelta(hours=24), now_ms=NOW_MS)
    assert day.step_ms == 5 * MINUTE_MS
    weeks = history_window(dt.timedelta(days=14), now_ms=NOW_MS)
    assert weeks.step_ms == HOUR_MS and weeks.since_ms % HOUR_MS == 0
    assert history_window(dt.timedelta(days=30), now_ms=NOW_MS).since_ms >= NOW_MS - 15 * 86_400_000
    with pytest.raises(ValueError, match="step of whole hours"):
        history_window(dt.timedelta(days=2), step=dt.timedelta(minutes=5), now_ms=NOW_MS)
    with pytest.raises(ValueError, match="whole number of minutes"):
        history_window(dt.timedelta(hours=1), step=dt.timedelta(seconds=90), now_ms=NOW_MS)
    with pytest.raises(ValueError, match="at most"):
        history_window(dt.timedelta(hours=24), step=dt.timedelta(minutes=1), now_ms=NOW_MS)
    with pytest.raises(ValueError, match="no time zone"):
        history_window(dt.datetime(2026, 1, 1), now_ms=NOW_MS)
    with pytest.raises(ValueError, match="empty"):
        history_window(dt.timedelta(hours=1), dt.timedelta(hours=2), now_ms=NOW_MS)


def test_spans() -> None:
    assert parse_span("24h") == dt.timedelta(hours=24)
    assert parse_span("14d") == dt.timedelta(days=14)
    assert parse_span("90m") == dt.timedelta(minutes=90)
    with pytest.raises(ValueError, match="e.g. 1h, 24h, 14d"):
        parse_span("a week")


def test_minutes_and_hours_sum_into_steps() -> None:
    window = history_window(NOW_MS - 3 * HOUR_MS, step=dt.timedelta(hours=1), now_ms=NOW_MS)
    first = window.since_ms
    found = [
        HistoryPoint(first, HOUR_MS, enqueued=100, runs=10, run_ms=1_000),
        HistoryPoint(first + HOUR_MS + MINUTE_MS, MINUTE_MS, enqueued=3, runs=1, run_ms=50),
        HistoryPoint(first + HOUR_MS + 2 * MINUTE_MS, MINUTE_MS, enqueued=4, runs=1, run_ms=150),
        HistoryPoint(first - HOUR_MS, HOUR_MS, enqueued=999),  # before the window
    ]
    points = into_steps(window, found)
    assert [p.enqueued for p in points] == [100, 7, 0, 0]
    assert points[1].mean_run_s == 0.1 and points[2].mean_run_s is None
    assert points[0].per_minute("enqueued") == 100 / 60
