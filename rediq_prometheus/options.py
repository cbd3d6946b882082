"""``rediq worker --metrics-port/--metrics-host``: declared, checked and handed to the
worker by this plugin; the core's command line and supervisor know nothing of metrics.

- The options are declared even without prometheus_client, so asking for a metrics port
  says which extra to install.
- A port that cannot be bound is refused before the worker connects, consumes or forks
  (:mod:`rediq_prometheus.port`).
- In a worker process the port and address reach :mod:`rediq_prometheus.server` through
  ``REDIQ_METRICS_PORT`` / ``REDIQ_METRICS_HOST``, which it reads when the worker starts.
- Under ``--processes N`` only the first process serves /metrics, and every process writes
  its samples into one prometheus_client multiprocess directory (a temporary one unless
  ``PROMETHEUS_MULTIPROC_DIR`` is set), so the one endpoint reports the sum of them all.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from rediq_core.hookspecs import RegisterWorkerOption

from . import EXTRA, settings
from .port import exit_if_unservable

__all__ = ["configure_worker", "prepare_worker_process", "register_worker_options"]

PORT_OPTION = "--metrics-port"


def register_worker_options(register: RegisterWorkerOption) -> None:
    import click

    register(
        click.Option(
            [PORT_OPTION],
            type=click.IntRange(min=0, max=65535),
            default=None,
            envvar=settings.ENV_METRICS_PORT,
            help="Serve Prometheus metrics on this port at /metrics"
            " (needs the rediq[prometheus] extra).",
        )
    )
    register(
        click.Option(
            ["--metrics-host"],
            default=settings.METRICS_HOST,
            show_default=True,
            envvar=settings.ENV_METRICS_HOST,
            help="Address the metrics server binds.",
        )
    )


class _Supervised:
    """What the supervisor's process of this plugin remembers between its hooks."""

    serving = False
    multiproc_dir: str | None = None


def configure_worker(options: Mapping[str, Any], processes: int, unavailable: str | None) -> None:
    port: int | None = options.get("metrics_port")
    host: str = options.get("metrics_host") or settings.METRICS_HOST
    if port is None:
        return
    if unavailable is not None:
        import click

        raise click.UsageError(f"{PORT_OPTION} needs the Prometheus plugin: {EXTRA}")
    exit_if_unservable(port, host)
    if processes > 1:  # the supervisor: its processes get the port in prepare_...
        _Supervised.serving = True
        if not os.environ.get(settings.ENV_MULTIPROC_DIR):
            _Supervised.multiproc_dir = tempfile.mkdtemp(prefix="rediq-metrics-")
            atexit.register(shutil.rmtree, _Supervised.multiproc_dir, ignore_errors=True)
        return
    os.environ[settings.ENV_METRICS_PORT] = str(port)
    os.environ[settings.ENV_METRICS_HOST] = host


def prepare_worker_process(slot: int, argv: list[str], env: dict[str, str]) -> None:
    if not _Supervised.serving:
        return
    if _Supervised.multiproc_dir:
        env[settings.ENV_MULTIPROC_DIR] = _Supervised.multiproc_dir
    if slot > 0:  # one endpoint, serving the sum of every process
        from rediq_core.worker.supervisor import strip_option

        argv[:] = strip_option(argv, PORT_OPTION)
        env.pop(settings.ENV_METRICS_PORT, None)
