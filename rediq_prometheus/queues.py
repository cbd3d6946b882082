"""Queue depths at scrape time, read through the control API on the worker's loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import settings

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from rediq_core.control import Control
    from rediq_core.inspection import QueueOverview

__all__ = ["QueueCollector"]

log = logging.getLogger("rediq.prometheus")
STATES = ("pending", "scheduled", "active", "dead")


class QueueCollector(Collector):
    """Gauges of every queue's tasks per state, pause flag and oldest pending age.

    A scrape runs in the metrics server's thread; it asks the worker's event loop for
    ``control.overview()`` and waits at most ``METRICS_QUEUE_READ_TIMEOUT_S``. Nothing
    is read between scrapes.
    """

    def __init__(self, control: Control, loop: asyncio.AbstractEventLoop) -> None:
        self.control, self.loop = control, loop

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
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
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _read(self) -> list[QueueOverview]:
        future = asyncio.run_coroutine_threadsafe(self.control.overview(minutes=1), self.loop)
        try:
            return future.result(settings.METRICS_QUEUE_READ_TIMEOUT_S)
        except Exception as exc:
            future.cancel()
            log.warning("queue depths not scraped: %s: %s", type(exc).__name__, exc)
            return []

    def collect(self) -> Iterable[Metric]:
        tasks, paused, oldest = self._families()
        for queue in self._read():
            for state in STATES:
                tasks.add_metric((queue.name, state), getattr(queue, state))
            paused.add_metric((queue.name,), 1 if queue.paused else 0)
            oldest.add_metric((queue.name,), queue.oldest_pending_age_s or 0.0)
        return (tasks, paused, oldest)
