"""Entry point ``otel``: the hook implementations when opentelemetry-api is installed;
otherwise nothing but ``REDIQ_UNAVAILABLE`` (shown by ``rediq plugins``).

Loading it does not import OpenTelemetry: :mod:`rediq_otel.hooks` imports it at the
first event (an enqueue or a task), so an idle worker does not pay for it."""

from __future__ import annotations

from rediq_core.plugins.extras import missing_extra

from . import EXTRA

__all__ = ["REDIQ_UNAVAILABLE"]

REDIQ_UNAVAILABLE = missing_extra(EXTRA, "opentelemetry.trace")

if REDIQ_UNAVAILABLE is None:
    from .hooks import (  # noqa: F401 - registered by pluggy from this module
        rediq_after_task_attempt,
        rediq_after_task_enqueue,
        rediq_after_workflow_enqueue,
        rediq_before_task_enqueue,
        rediq_before_task_retry,
        rediq_before_task_start,
        rediq_before_workflow_enqueue,
    )
