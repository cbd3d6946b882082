"""Queue wait: how long a task waited from when it was due until its attempt started.

:func:`queue_wait_s` is the one computation of it: the Prometheus plugin observes it into
``rediq_task_queue_wait_seconds``, and every worker counts its starts by wait in a
:class:`WaitWindow` (fixed bounds :data:`WAIT_BUCKETS_S`, the last :data:`WAIT_WINDOW_MINUTES`
minutes) that its heartbeat carries, so ``app.control.scaling(queue)`` can sum the live
workers' counts into a histogram (docs/observability.md, "Autoscaling signal").
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .info import TaskInfo

__all__ = [
    "WAIT_BUCKETS_S",
    "WAIT_WINDOW_MINUTES",
    "WaitBucket",
    "WaitWindow",
    "bucket_index",
    "counts_of",
    "due_ms",
    "histogram",
    "quantile",
    "queue_wait_s",
]

#: Upper bounds (inclusive, seconds) of the wait-time buckets; the last catches the rest.
WAIT_BUCKETS_S: Final[tuple[float, ...]] = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, math.inf)
#: A worker's counts cover the starts of this many minutes (the current one included).
WAIT_WINDOW_MINUTES: Final = 5


def due_ms(task: TaskInfo) -> int:
    """When ``task`` was due (ms since the epoch): its eta, else its enqueue time plus delay."""
    if task.eta_ms is not None:
        return task.eta_ms
    return task.enqueued_at_ms + (task.delay_ms or 0)


def queue_wait_s(task: TaskInfo, now_s: float) -> float:
    """Seconds ``task`` waited from due to ``now_s`` (its start); never negative."""
    return max(0.0, now_s - due_ms(task) / 1000)


def bucket_index(wait_s: float) -> int:
    """The index in :data:`WAIT_BUCKETS_S` of the first bound at or above ``wait_s``."""
    return bisect.bisect_left(WAIT_BUCKETS_S, wait_s)


@dataclass(frozen=True, slots=True)
class WaitBucket:
    """Starts that waited more than the previous bound and at most ``le_s`` seconds (not
    cumulative: the counts of a histogram add up to the starts)."""

    le_s: float
    count: int

    def as_json(self) -> dict[str, object]:
        return {"le_s": None if math.isinf(self.le_s) else self.le_s, "count": self.count}


class WaitWindow:
    """Starts per queue by wait bucket, in one-minute slots over the last
    ``minutes`` minutes. :meth:`record` runs in the worker's event loop (one increment);
    :meth:`counts` is read by the heartbeat's thread, hence the lock."""

    def __init__(self, minutes: int = WAIT_WINDOW_MINUTES) -> None:
        if minutes < 1:
            raise ValueError(f"minutes must be at least 1, not {minutes}")
        self.minutes = minutes
        #: minute number (epoch seconds // 60) -> queue -> counts per bucket
        self._slots: dict[int, dict[str, list[int]]] = {}
        self._lock = threading.Lock()

    def record(self, queue: str, wait_s: float, now_s: float) -> None:
        minute = int(now_s // 60)
        with self._lock:
            slot = self._slots.get(minute)
            if slot is None:
                slot = self._slots[minute] = {}
                for old in [m for m in self._slots if m <= minute - self.minutes]:
                    del self._slots[old]
            counts = slot.get(queue)
            if counts is None:
                counts = slot[queue] = [0] * len(WAIT_BUCKETS_S)
            counts[bucket_index(wait_s)] += 1

    def counts(self, now_s: float) -> dict[str, list[int]]:
        """Each queue's starts per bucket over the window ending at ``now_s``."""
        oldest = int(now_s // 60) - self.minutes + 1
        found: dict[str, list[int]] = {}
        with self._lock:
            for minute, slot in self._slots.items():
                if minute < oldest:
                    continue
                for queue, counts in slot.items():
                    total = found.setdefault(queue, [0] * len(WAIT_BUCKETS_S))
                    for i, n in enumerate(counts):
                        total[i] += n
        return found


def histogram(counts: Sequence[Sequence[int]]) -> tuple[WaitBucket, ...]:
    """The sum of several workers' counts per bucket (entries of the wrong length, as
    from another rediq version's bounds, are left out)."""
    total = [0] * len(WAIT_BUCKETS_S)
    for one in counts:
        if len(one) != len(WAIT_BUCKETS_S):
            continue
        for i, n in enumerate(one):
            total[i] += n
    return tuple(WaitBucket(le, n) for le, n in zip(WAIT_BUCKETS_S, total, strict=True))


def quantile(buckets: Sequence[WaitBucket], q: float) -> float | None:
    """The ``q`` quantile estimated from ``buckets`` (linear within a bucket, as
    Prometheus' ``histogram_quantile``; the last finite bound for the open bucket); None
    when nothing started."""
    if not 0 <= q <= 1:
        raise ValueError(f"q must be between 0 and 1, not {q}")
    total = sum(b.count for b in buckets)
    if total == 0:
        return None
    rank = q * total
    seen, lower = 0, 0.0
    for b in buckets:
        if b.count and seen + b.count >= rank:
            if math.isinf(b.le_s):
                return lower
            return lower + (b.le_s - lower) * (rank - seen) / b.count
        seen += b.count
        if not math.isinf(b.le_s):
            lower = b.le_s
    return lower


def counts_of(info: Mapping[str, object], queue: str) -> list[int] | None:
    """A worker's counts for ``queue`` from its registry ``info`` (``wait_counts``), or
    None (an older worker, or no start of the queue in the window)."""
    found = info.get("wait_counts")
    if not isinstance(found, Mapping):
        return None
    counts = found.get(queue)
    if not isinstance(counts, list) or not all(isinstance(n, int) for n in counts):
        return None
    return counts
