"""Queue depths at scrape time, read through the control API on the worker's loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rediq_core import defaults
from rediq_core.roles import Role, supports
from rediq_core.scaling import DEFAULT_WINDOW_MINUTES, QueueScaling, estimate

from . import settings

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from rediq_core.control import Control
    from rediq_core.flow import QueueFlow
    from rediq_core.inspection import QueueOverview

__all__ = ["QueueCollector"]

log = logging.getLogger("rediq.prometheus")
_Read = tuple[list["QueueOverview"], list[QueueScaling], list["QueueFlow"]]
STATES = ("pending", "waiting", "limited", "scheduled", "active", "dead")


class QueueCollector(Collector):
    """Gauges of every queue's tasks per state, pause flag and oldest pending age, its
    autoscaling signal (desired workers, arrivals, mean run time), and of every limit's use
    (running and limited tasks per limit, the queue's own limits).

    A scrape runs in the metrics server's thread; it asks the worker's event loop for
    ``control.overview()`` and waits at most ``METRICS_QUEUE_READ_TIMEOUT_S``. Nothing
    is read between scrapes.
    """

    def __init__(self, control: Control, loop: asyncio.AbstractEventLoop) -> None:
        self.control, self.loop = control, loop

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "rediq_queue_tasks", "Tasks in a queue per state.", labels=("queue", "state")
            ),
            GaugeMetricFamily(
                "rediq_queue_paused", "1 when the queue is paused.", labels=("queue",)
            ),
            GaugeMetricFamily(
                "rediq_queue_oldest_pending_age_seconds",
                "How long the oldest ready task has waited.",
                labels=("queue",),
            ),
            GaugeMetricFamily(
                "rediq_limit_running",
                "Tasks running under a concurrency limit (a queue's own is 'c').",
                labels=("queue", "limit"),
            ),
            GaugeMetricFamily(
                "rediq_limit_limited",
                "Tasks a limit holds back now (a queue's own are 'c' and 'r').",
                labels=("queue", "limit"),
            ),
            GaugeMetricFamily(
                "rediq_queue_desired_workers",
                "Workers the queue needs: (arrivals/s x mean run s + pending x mean run s /"
                " target drain s) / concurrency per worker, at least 1 while tasks wait or run.",
                labels=("queue",),
            ),
            GaugeMetricFamily(
                "rediq_queue_arrival_per_second",
                "Tasks enqueued per second over the last complete minutes.",
                labels=("queue",),
            ),
            GaugeMetricFamily(
                "rediq_queue_mean_run_seconds",
                "Mean run time of the attempts of the last complete minutes (absent if none).",
                labels=("queue",),
            ),
            GaugeMetricFamily(
                "rediq_queue_limit",
                "A queue's own limit: most running ('concurrency'), starts per second ('rate').",
                labels=("queue", "kind"),
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    async def _both(self) -> _Read:
        overviews = await self.control.overview(minutes=DEFAULT_WINDOW_MINUTES + 1)
        workers = await self.control.workers()
        signals = [
            estimate(o, workers, default_concurrency=defaults.WORKER_TASK_CONCURRENCY)
            for o in overviews
        ]
        if not supports(self.control.broker, Role.LIMITS):
            return overviews, signals, []
        return overviews, signals, await self.control.limits()

    def _read(self) -> _Read:
        future = asyncio.run_coroutine_threadsafe(self._both(), self.loop)
        try:
            return future.result(settings.METRICS_QUEUE_READ_TIMEOUT_S)
        except Exception as exc:
            future.cancel()
            log.warning("queue depths not scraped: %s: %s", type(exc).__name__, exc)
            return [], [], []

    def collect(self) -> Iterable[Metric]:
        tasks, paused, oldest, running, limited, desired, arrivals, run, own = self._families()
        overviews, signals, flows = self._read()
        for signal in signals:
            desired.add_metric((signal.queue,), signal.desired_workers)
            arrivals.add_metric((signal.queue,), signal.arrival_per_s)
            if signal.mean_run_s is not None:
                run.add_metric((signal.queue,), signal.mean_run_s)
        for queue in overviews:
            for state in STATES:
                tasks.add_metric((queue.name, state), getattr(queue, state))
            paused.add_metric((queue.name,), 1 if queue.paused else 0)
            oldest.add_metric((queue.name,), queue.oldest_pending_age_s or 0.0)
        for flow in flows:
            for use in flow.uses:
                if use.kind == "concurrency":
                    running.add_metric((flow.queue, use.name), use.running)
                limited.add_metric((flow.queue, use.name), use.limited)
            if flow.limits.concurrency is not None:
                own.add_metric((flow.queue, "concurrency"), flow.limits.concurrency)
            if flow.limits.rate is not None:
                own.add_metric((flow.queue, "rate"), flow.limits.rate.per_second)
        return (tasks, paused, oldest, running, limited, desired, arrivals, run, own)
