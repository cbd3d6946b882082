"""The metric families, created once per process in a registry (the default one unless
told otherwise). Every family is labelled by task name and queue."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["RUN_BUCKETS", "WAIT_BUCKETS", "TaskMetrics", "task_metrics"]

LABELS = ("task", "queue")
#: Seconds; tasks are often a few milliseconds, sometimes minutes.
RUN_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """Counters, histograms and the running gauge of one process."""

    enqueued: Counter
    started: Counter
    retried: Counter
    succeeded: Counter
    failed: Counter
    cancelled: Counter
    dead_lettered: Counter
    expired: Counter
    run_seconds: Histogram
    queue_wait_seconds: Histogram
    running: Gauge
    #: Workflows this process enqueued, labelled by the queue of their first step.
    workflows_enqueued: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> TaskMetrics:
        def counter(name: str, doc: str) -> Counter:
            return Counter(f"rediq_tasks_{name}", doc, LABELS, registry=registry)

        return cls(
            enqueued=counter("enqueued", "Tasks this process enqueued (accepted by the broker)."),
            started=counter("started", "First attempts started."),
            retried=counter("retried", "Retries started (attempts after the first)."),
            succeeded=counter("succeeded", "Tasks that succeeded."),
            failed=counter("failed", "Attempts that raised (retried or not; not cancellations)."),
            cancelled=counter("cancelled", "Running tasks that were cancelled."),
            dead_lettered=counter(
                "dead_lettered", "Tasks that failed finally and went to the dead letters."
            ),
            expired=counter(
                "expired", "Tasks this worker's claims ended expired (expires or deadline)."
            ),
            run_seconds=Histogram(
                "rediq_task_run_seconds",
                "Run time of each attempt.",
                LABELS,
                buckets=RUN_BUCKETS,
                registry=registry,
            ),
            queue_wait_seconds=Histogram(
                "rediq_task_queue_wait_seconds",
                "From when a task was due (enqueued, or its ETA) to its first attempt.",
                LABELS,
                buckets=WAIT_BUCKETS,
                registry=registry,
            ),
            running=Gauge(
                "rediq_tasks_running",
                "Attempts running now.",
                LABELS,
                registry=registry,
                multiprocess_mode="livesum",
            ),
            workflows_enqueued=Counter(
                "rediq_workflows_enqueued",
                "Workflows (chain, group, chord) this process enqueued, by their first step's"
                " queue; their steps count as tasks.",
                ("queue",),
                registry=registry,
            ),
        )


_metrics: dict[int, TaskMetrics] = {}


def task_metrics(registry: CollectorRegistry = REGISTRY) -> TaskMetrics:
    """The process's metrics in ``registry``, created on first use."""
    key = id(registry)
    if key not in _metrics:
        _metrics[key] = TaskMetrics.create(registry)
    return _metrics[key]
