"""Entry point ``prometheus``: the hook implementations when prometheus_client is
installed; otherwise nothing but ``REDIQ_UNAVAILABLE`` (shown by ``rediq plugins``)."""

from __future__ import annotations

from . import EXTRA

__all__ = ["REDIQ_UNAVAILABLE"]

REDIQ_UNAVAILABLE: str | None = EXTRA
try:
    import prometheus_client  # noqa: F401 - the extra's dependency
except ImportError:
    pass
else:
    REDIQ_UNAVAILABLE = None
    from .hooks import (  # noqa: F401 - registered by pluggy from this module
        rediq_after_task_attempt,
        rediq_after_task_enqueue,
        rediq_after_task_failure,
        rediq_after_task_success,
        rediq_after_worker_shutdown,
        rediq_before_task_retry,
        rediq_before_task_start,
        rediq_before_worker_startup,
    )
