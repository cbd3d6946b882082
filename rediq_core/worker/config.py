"""Worker configuration: one keyword-only dataclass, validated on creation."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import defaults
from ..errors import ConfigurationError
from ..options import check_queue
from .backoff import Backoff

__all__ = ["WorkerConfig", "new_worker_id"]


def new_worker_id(name: str) -> str:
    """A worker id unique across hosts and restarts: name, host, pid and a random part."""
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """How a worker runs (the ``rediq worker`` options of the same names).

    :param queues: queues to consume besides the app's default queue.
    :param skip_default_queue: do not consume the app's default queue.
    :param worker_name: a readable name (default: ``worker``); the id adds host, pid and
        a random part.
    :param queue_size: tasks leased beyond those the idle runners start at once
        (prefetched, waiting locally for a runner); 0: none.
    :param task_concurrency: task coroutines running at once.
    :param executor_pool_name: pool of ``run_in_current_executor`` (``thread``/``process``).
    :param executor_pool_size: its size (None: the pool's CPU-based default).
    :param burst: stop (gracefully) once the consumed queues hold nothing to run.
    :param lease_ms: lease length of a fetched task; renewed every ``lease_renew_ms``.
    :param backoff: delay before each retry.
    :param handle_signals: install SIGINT/SIGTERM handlers (off when embedded in an app
        that owns them).
    :param shutdown_timeout_s: how long a graceful shutdown waits for running and
        prefetched tasks before handing the rest back (0: no limit).
    :param fail_fast: exit at once when the broker is unreachable at start (default: wait
        for it with backoff, logging once).
    """

    queues: tuple[str, ...] = ()
    skip_default_queue: bool = False
    worker_name: str = "worker"
    queue_size: int = defaults.WORKER_QUEUE_SIZE
    task_concurrency: int = defaults.WORKER_TASK_CONCURRENCY
    executor_pool_name: str = defaults.EXECUTOR_POOL_NAME
    executor_pool_size: int | None = defaults.EXECUTOR_POOL_SIZE
    burst: bool = False
    lease_ms: int = defaults.LEASE_MS
    lease_renew_ms: int = defaults.LEASE_RENEW_MS
    heartbeat_ttl_s: int = defaults.WORKER_HEARTBEAT_TTL_S
    heartbeat_interval_s: float = defaults.WORKER_HEARTBEAT_INTERVAL_S
    stall_warning_ms: int = defaults.WORKER_STALL_WARNING_MS
    force_grace_s: float = defaults.WORKER_FORCE_GRACE_S
    backoff: Backoff = field(default_factory=Backoff)
    handle_signals: bool = True
    shutdown_timeout_s: float = defaults.WORKER_SHUTDOWN_TIMEOUT_S
    fail_fast: bool = False

    def __post_init__(self) -> None:
        for queue in self.queues:
            check_queue(queue, "queue_name")
        if self.queue_size < 0:
            raise ConfigurationError(f"worker_queue_size={self.queue_size} must be >= 0")
        if self.task_concurrency < 1:
            raise ConfigurationError(
                f"worker_task_concurrency={self.task_concurrency} must be >= 1"
            )
        if self.executor_pool_size is not None and self.executor_pool_size < 1:
            raise ConfigurationError(f"executor_pool_size={self.executor_pool_size} must be >= 1")
        if self.shutdown_timeout_s < 0:
            raise ConfigurationError(
                f"shutdown_timeout={self.shutdown_timeout_s} must be >= 0 (0: no limit)"
            )
        if not 0 < self.lease_renew_ms < self.lease_ms:
            raise ConfigurationError(
                f"lease_renew_ms={self.lease_renew_ms} must be between 0 and"
                f" lease_ms={self.lease_ms}, so leases are renewed before they expire"
            )

    def resolved_queues(self, default_queue: str) -> tuple[str, ...]:
        """The queues to consume, in order, without duplicates."""
        names = [*self.queues] + ([] if self.skip_default_queue else [default_queue])
        resolved = tuple(dict.fromkeys(names))
        if not resolved:
            raise ConfigurationError(
                "no queue to consume: --skip-default-queue needs at least one --queue-name"
            )
        return resolved

    @classmethod
    def env_overrides(cls, environ: Mapping[str, str]) -> dict[str, object]:
        """Tuning read from the environment (``REDIQ_LEASE_MS``, ``REDIQ_BACKOFF_*``)."""
        found: dict[str, object] = {}
        for var, key in (
            (defaults.ENV_LEASE_MS, "lease_ms"),
            (defaults.ENV_LEASE_RENEW_MS, "lease_renew_ms"),
        ):
            if environ.get(var):
                found[key] = _int(environ, var)
        if "lease_ms" in found and "lease_renew_ms" not in found:
            found["lease_renew_ms"] = max(1, int(found["lease_ms"]) // 3)  # type: ignore[call-overload]
        base, cap = (
            environ.get(defaults.ENV_BACKOFF_BASE_MS),
            environ.get(defaults.ENV_BACKOFF_CAP_MS),
        )
        if base or cap:
            found["backoff"] = Backoff(
                base_ms=_int(environ, defaults.ENV_BACKOFF_BASE_MS)
                if base
                else defaults.BACKOFF_BASE_MS,
                cap_ms=_int(environ, defaults.ENV_BACKOFF_CAP_MS)
                if cap
                else defaults.BACKOFF_CAP_MS,
            )
        return found


def _int(environ: Mapping[str, str], var: str) -> int:
    try:
        return int(environ[var])
    except ValueError:
        raise ConfigurationError(f"{var}={environ[var]!r} must be an integer") from None
