"""The worker: consumes queues of an app (``rediq worker module:app``)."""

from __future__ import annotations

from .backoff import Backoff
from .config import QueueOrder, WorkerConfig, new_worker_id
from .orchestrator import Worker, run_worker

__all__ = ["Backoff", "QueueOrder", "Worker", "WorkerConfig", "new_worker_id", "run_worker"]
