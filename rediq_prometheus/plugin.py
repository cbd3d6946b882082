"""Entry point ``prometheus``: the hook implementations when prometheus_client is
installed; otherwise nothing but ``REDIQ_UNAVAILABLE`` (shown by ``rediq plugins``), the
plugin's settings and its ``rediq worker`` options (which then refuse a value, saying
which extra to install).

Loading it does not import prometheus_client: :mod:`rediq_prometheus.hooks` imports it
at the first event that counts something, or when a worker starts with a metrics port."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rediq_core.hookspecs import RegisterSettings, RegisterWorkerOption
from rediq_core.plugins import hookimpl
from rediq_core.plugins.extras import missing_extra

from . import EXTRA, settings
from . import options as worker_options

__all__ = [
    "REDIQ_UNAVAILABLE",
    "rediq_configure_worker",
    "rediq_prepare_worker_process",
    "rediq_register_settings",
    "rediq_register_worker_options",
]

REDIQ_UNAVAILABLE = missing_extra(EXTRA, "prometheus_client")


@hookimpl
def rediq_register_settings(register: RegisterSettings) -> None:
    register(settings)


@hookimpl
def rediq_register_worker_options(register: RegisterWorkerOption) -> None:
    worker_options.register_worker_options(register)


@hookimpl
def rediq_configure_worker(options: Mapping[str, Any], processes: int) -> None:
    worker_options.configure_worker(options, processes, REDIQ_UNAVAILABLE)


@hookimpl
def rediq_prepare_worker_process(
    slot: int, processes: int, argv: list[str], env: dict[str, str]
) -> None:
    worker_options.prepare_worker_process(slot, argv, env)


if REDIQ_UNAVAILABLE is None:
    from .hooks import (  # noqa: F401 - registered by pluggy from this module
        rediq_after_task_attempt,
        rediq_after_task_enqueue,
        rediq_after_task_expired,
        rediq_after_task_failure,
        rediq_after_task_success,
        rediq_after_worker_shutdown,
        rediq_after_workflow_enqueue,
        rediq_before_task_retry,
        rediq_before_task_start,
        rediq_before_worker_startup,
    )
