"""The autoscaling signal of a queue: how many workers it needs now.

Little's law: a queue whose tasks arrive at ``λ`` per second and run ``W`` seconds on
average keeps ``λ * W`` runner slots busy. The backlog (``pending`` ready tasks) needs
``pending * W / target_drain_s`` slots more to be worked off within ``target_drain_s``.
Divided by the runner slots of one worker (its ``--worker-task-concurrency``) and rounded
up, that is the number of workers; at least 1 while any task is pending or running, 0
for a queue with nothing to do (docs/observability.md, "Autoscaling signal").

:func:`desired_workers` and :func:`estimate` are pure: the tests drive them with counts
and clocks of their own; ``app.control.scaling()`` feeds them the broker's counters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .inspection import QueueOverview, WorkerStatus
from .waits import WAIT_WINDOW_MINUTES, WaitBucket, counts_of, histogram, quantile

__all__ = [
    "DEFAULT_TARGET_DRAIN_S",
    "DEFAULT_WINDOW_MINUTES",
    "QueueScaling",
    "desired_workers",
    "estimate",
    "wait_histogram",
]

#: The backlog is to be worked off within this many seconds.
DEFAULT_TARGET_DRAIN_S: Final = 60.0
#: Arrival rate and mean run time are read over this many complete minutes.
DEFAULT_WINDOW_MINUTES: Final = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueScaling:
    """A queue's autoscaling signal (the JSON of ``/api/scaling/{queue}`` and of
    ``rediq scaling``). Rates and means are over the last ``window_s`` of complete
    minutes; ``mean_run_s`` is None when no attempt ran in it."""

    queue: str
    desired_workers: int
    pending: int
    active: int
    oldest_age_s: float | None
    arrival_per_s: float
    mean_run_s: float | None
    #: Slots the arrivals keep busy (``arrival_per_s * mean_run_s``).
    busy_slots: float
    #: Slots that work the backlog off in ``target_drain_s`` (``pending * mean_run_s /
    #: target_drain_s``).
    backlog_slots: float
    #: Runner slots per worker: the mean ``--worker-task-concurrency`` of the live workers
    #: consuming the queue, or the default when none does.
    concurrency: int
    consumers: int
    target_drain_s: float
    window_s: int
    #: Starts by queue wait (due to start) over the live consumers' last
    #: ``wait_window_s`` (their heartbeats carry it; ``rediq_core.waits.WAIT_BUCKETS_S``).
    wait_histogram: tuple[WaitBucket, ...] = ()
    #: Median and 95th percentile wait estimated from the histogram (None: no start).
    wait_p50_s: float | None = None
    wait_p95_s: float | None = None
    wait_window_s: int = 60 * WAIT_WINDOW_MINUTES

    def as_json(self) -> dict[str, object]:
        return {
            "queue": self.queue,
            "desired_workers": self.desired_workers,
            "oldest_age_s": self.oldest_age_s,
            "arrival_per_s": self.arrival_per_s,
            "mean_run_s": self.mean_run_s,
            "pending": self.pending,
            "active": self.active,
            "busy_slots": self.busy_slots,
            "backlog_slots": self.backlog_slots,
            "concurrency": self.concurrency,
            "consumers": self.consumers,
            "target_drain_s": self.target_drain_s,
            "window_s": self.window_s,
            "wait_histogram": [b.as_json() for b in self.wait_histogram],
            "wait_p50_s": self.wait_p50_s,
            "wait_p95_s": self.wait_p95_s,
            "wait_window_s": self.wait_window_s,
        }


def desired_workers(
    *,
    arrival_per_s: float,
    mean_run_s: float | None,
    pending: int,
    active: int,
    concurrency: int,
    target_drain_s: float = DEFAULT_TARGET_DRAIN_S,
) -> int:
    """``ceil((arrival_per_s * W + pending * W / target_drain_s) / concurrency)`` with
    ``W = mean_run_s`` (0 when unknown); at least 1 while tasks are pending or running."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    if target_drain_s <= 0:
        raise ValueError(f"target_drain_s must be positive, not {target_drain_s}")
    run_s = mean_run_s or 0.0
    slots = arrival_per_s * run_s + pending * run_s / target_drain_s
    # a hair below an integer is that integer (floating-point sums of exact inputs)
    workers = math.ceil(slots / concurrency - 1e-9)
    if pending > 0 or active > 0:
        return max(workers, 1)
    return max(workers, 0)


def _concurrency(queue: str, workers: Sequence[WorkerStatus], default: int) -> tuple[int, int]:
    live = [w for w in workers if queue in w.queues and not w.stale]
    known = [w.concurrency for w in live if w.concurrency]
    if not known:
        return default, len(live)
    return max(1, round(sum(known) / len(known))), len(live)


def wait_histogram(queue: str, workers: Sequence[WorkerStatus]) -> tuple[WaitBucket, ...]:
    """The live ``workers``' wait counts for ``queue`` summed per bucket."""
    found = (counts_of(w.info, queue) for w in workers if not w.stale)
    return histogram([c for c in found if c is not None])


def estimate(
    overview: QueueOverview,
    workers: Sequence[WorkerStatus],
    *,
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    target_drain_s: float = DEFAULT_TARGET_DRAIN_S,
    default_concurrency: int,
) -> QueueScaling:
    """The signal of ``overview``'s queue: arrivals and run time over its last
    ``window_minutes`` complete minutes (``overview.minutes``, the current one last and
    left out), the backlog now, and the live ``workers``' concurrency."""
    if window_minutes < 1:
        raise ValueError(f"window_minutes must be at least 1, not {window_minutes}")
    complete = overview.minutes[:-1][-window_minutes:]
    window_s = 60 * window_minutes
    arrivals = sum(m.enqueued for m in complete)
    runs = sum(m.runs for m in complete)
    run_ms = sum(m.run_ms for m in complete)
    arrival_per_s = arrivals / window_s
    mean_run_s = run_ms / runs / 1000 if runs else None
    concurrency, consumers = _concurrency(overview.name, workers, default_concurrency)
    run_s = mean_run_s or 0.0
    waits = wait_histogram(overview.name, workers)
    return QueueScaling(
        queue=overview.name,
        desired_workers=desired_workers(
            arrival_per_s=arrival_per_s,
            mean_run_s=mean_run_s,
            pending=overview.pending,
            active=overview.active,
            concurrency=concurrency,
            target_drain_s=target_drain_s,
        ),
        pending=overview.pending,
        active=overview.active,
        oldest_age_s=overview.oldest_pending_age_s,
        arrival_per_s=arrival_per_s,
        mean_run_s=mean_run_s,
        busy_slots=arrival_per_s * run_s,
        backlog_slots=overview.pending * run_s / target_drain_s,
        concurrency=concurrency,
        consumers=consumers,
        target_drain_s=target_drain_s,
        window_s=window_s,
        wait_histogram=waits,
        wait_p50_s=quantile(waits, 0.5),
        wait_p95_s=quantile(waits, 0.95),
    )
