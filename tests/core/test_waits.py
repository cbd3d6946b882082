"""The queue wait's buckets and a worker's window of them: pure, driven with clocks of
their own (no broker, no wall clock)."""

from __future__ import annotations

import math

import pytest

from rediq_core.info import TaskInfo
from rediq_core.inspection import WorkerStatus
from rediq_core.scaling import wait_histogram
from rediq_core.waits import (
    WAIT_BUCKETS_S,
    WaitBucket,
    WaitWindow,
    bucket_index,
    due_ms,
    histogram,
    quantile,
    queue_wait_s,
)

MINUTE_S = 60.0
T0 = 1_800_000_000.0 // MINUTE_S * MINUTE_S + 12.0  # 12 s into a minute


def info(**timing: int | None) -> TaskInfo:
    return TaskInfo(
        task_id="t", task_name="n", task_queue="q", task_priority=0, task_retries=0,
        task_timeout=None, **timing,  # type: ignore[arg-type]
    )  # fmt: skip


def test_the_wait_counts_from_the_eta_else_the_enqueue_plus_the_delay() -> None:
    assert due_ms(info(enqueued_at_ms=1_000, delay_ms=500)) == 1_500
    assert due_ms(info(enqueued_at_ms=1_000, eta_ms=9_000, delay_ms=None)) == 9_000
    assert queue_wait_s(info(enqueued_at_ms=1_000), now_s=3.5) == 2.5
    assert queue_wait_s(info(enqueued_at_ms=9_000), now_s=3.5) == 0.0  # clock skew


def test_bounds_are_inclusive_upper_bounds() -> None:
    assert WAIT_BUCKETS_S[-1] == math.inf
    assert [bucket_index(w) for w in (0.0, 0.1, 0.11, 1.0, 900.0, 901.0)] == [0, 0, 1, 2, 8, 9]


def test_the_window_keeps_the_last_minutes_per_queue() -> None:
    window = WaitWindow(minutes=5)
    window.record("q", 0.05, T0)
    window.record("q", 2.0, T0 + 1)
    window.record("other", 120.0, T0 + 2)
    window.record("q", 2.0, T0 + 4 * MINUTE_S)  # the fifth minute: the first still counts
    counts = window.counts(T0 + 4 * MINUTE_S)
    assert counts["q"][bucket_index(0.05)] == 1 and counts["q"][bucket_index(2.0)] == 2
    assert sum(counts["other"]) == 1
    later = window.counts(T0 + 5 * MINUTE_S)  # the first minute left the window
    assert sum(later["q"]) == 1 and "other" not in later
    window.record("q", 0.2, T0 + 20 * MINUTE_S)  # a new minute drops the old slots
    assert window.counts(T0 + 20 * MINUTE_S) == {"q": [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]}
    with pytest.raises(ValueError, match="minutes must be at least 1"):
        WaitWindow(minutes=0)


def test_live_workers_are_summed_and_quantiles_estimated() -> None:
    def worker(counts: list[int], *, stale: bool = False, queue: str = "q") -> WorkerStatus:
        return WorkerStatus(
            id="w", name="w", host="h", pid=1, queues=(queue,), concurrency=1, running=0,
            stale=stale, info={"wait_counts": {queue: counts}},
        )  # fmt: skip

    ten = [10] + [0] * 9
    found = wait_histogram(
        "q",
        [
            worker(ten),
            worker([0, 0, 0, 10, 0, 0, 0, 0, 0, 0]),
            worker(ten, stale=True),  # its heartbeat is overdue: left out
            worker(ten, queue="other"),
            worker([1, 2]),  # bounds of another version: left out
            WorkerStatus(  # an older worker: no counts in its entry
                id="old", name="o", host="", pid=None, queues=("q",), concurrency=None, running=0
            ),
        ],
    )
    assert [b.count for b in found] == [10, 0, 0, 10, 0, 0, 0, 0, 0, 0]
    assert [b.le_s for b in found] == list(WAIT_BUCKETS_S)
    assert quantile(found, 0.5) == pytest.approx(0.1)
    assert quantile(found, 0.95) == pytest.approx(1 + 4 * 0.9)  # 9th of 10 in (1, 5]
    assert quantile(histogram([]), 0.5) is None
    assert quantile((WaitBucket(0.1, 0), WaitBucket(math.inf, 3)), 0.5) == 0.1
    assert found[-1].as_json() == {"le_s": None, "count": 0}
    with pytest.raises(ValueError, match="q must be between 0 and 1"):
        quantile(found, 1.5)
