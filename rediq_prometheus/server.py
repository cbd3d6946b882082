"""The /metrics server of ``rediq worker --metrics-port``.

In prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set, e.g. when
several worker processes share a port through a supervisor) the server aggregates every
process's samples with ``MultiProcessCollector``; otherwise it serves this process's
default registry.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from threading import Thread
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from . import settings
from .port import EXIT_UNSERVABLE, unservable
from .queues import QueueCollector

if TYPE_CHECKING:
    from rediq_core.info import WorkerInfo

__all__ = ["serving_registry", "start_metrics_server", "stop_metrics_server"]

log = logging.getLogger("rediq.prometheus")


@dataclass(slots=True)
class Serving:
    server: WSGIServer
    thread: Thread
    registry: CollectorRegistry
    queues: QueueCollector | None


_serving: dict[str, Serving] = {}


def serving_registry() -> CollectorRegistry:
    """The registry /metrics renders: all processes' samples in multiprocess mode."""
    if os.environ.get(settings.ENV_MULTIPROC_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def start_metrics_server(worker: WorkerInfo) -> None:
    """Serve /metrics when ``rediq worker --metrics-port`` asked for it."""
    port = os.environ.get(settings.ENV_METRICS_PORT)
    if not port:
        return
    host = os.environ.get(settings.ENV_METRICS_HOST, settings.METRICS_HOST)
    registry = serving_registry()
    queues = None
    if worker.control is not None:
        queues = QueueCollector(worker.control, asyncio.get_running_loop())
        registry.register(queues)
    try:
        server, thread = start_http_server(int(port), host, registry)
    except OSError as exc:
        # Taken since the command line checked it (another worker started meanwhile):
        # refuse to run unmonitored, before this worker fetches anything.
        if queues is not None:
            registry.unregister(queues)
        log.error("%s: not starting a worker without its metrics", unservable(int(port), host, exc))
        raise SystemExit(EXIT_UNSERVABLE) from None
    _serving[worker.worker_id] = Serving(server, thread, registry, queues)
    log.info("serving Prometheus metrics on http://%s:%d/metrics", host, server.server_address[1])


def stop_metrics_server(worker: WorkerInfo) -> None:
    serving = _serving.pop(worker.worker_id, None)
    if serving is None:
        return
    serving.server.shutdown()
    serving.server.server_close()
    if serving.queues is not None:
        serving.registry.unregister(serving.queues)
