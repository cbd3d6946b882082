"""Worker configuration: one keyword-only dataclass, validated on creation."""

from __future__ import annotations

import itertools
import os
import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import defaults
from ..errors import ConfigurationError
from ..options import check_queue
from ..shards import logical_queue
from ..tasklogs import LogBounds
from .backoff import Backoff
from .budget import QueueOrder

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = [
    "QueueOrder",
    "WorkerConfig",
    "default_worker_name",
    "new_worker_id",
    "parse_queue_names",
    "unconsumed_queues",
]

_workers_here = itertools.count(1)
_WEIGHT = re.compile(r"^(?P<queue>.+):(?P<weight>[0-9]+)$")


def _host_pid() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_worker_name() -> str:
    """A name no other worker has: ``worker@<host>:<pid>`` (``worker-2@…`` for the
    second worker of one process, and so on)."""
    n = next(_workers_here)
    return f"worker{'' if n == 1 else f'-{n}'}@{_host_pid()}"


def new_worker_id(name: str) -> str:
    """A worker id unique across hosts and restarts: name, host, pid and a random part
    (host and pid once, when the name already ends with them, as a default name does)."""
    base = name if name.endswith(f"@{_host_pid()}") else f"{name}@{_host_pid()}"
    return f"{base}:{uuid.uuid4().hex[:6]}"


def parse_queue_names(values: Iterable[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    """``--queue-name`` values: ``name`` or ``name:weight`` (a whole number >= 1; a queue
    whose own name ends with ``:<digits>`` is given with its weight, e.g. ``shard:2:1``).
    Return the queue names in order and the weights given."""
    queues: list[str] = []
    weights: dict[str, int] = {}
    for value in values:
        found = _WEIGHT.match(value)
        queue = found["queue"] if found else value
        queues.append(queue)
        if found:
            weights[queue] = int(found["weight"])
    return tuple(queues), weights


def unconsumed_queues(app: Rediq, consumed: Iterable[str]) -> dict[str, list[str]]:
    """The queues the app's tasks and schedules go to that ``consumed`` leaves out, with
    the names of the tasks that go there."""
    going: dict[str, set[str]] = {}
    for task in app.tasks.values():
        going.setdefault(task.options.queue, set()).add(task.name)
    for schedule in app.schedules.values():
        going.setdefault(logical_queue(schedule.spec.queue), set()).add(schedule.spec.task)
    for queue in consumed:
        going.pop(queue, None)
    return {queue: sorted(tasks) for queue, tasks in going.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """How a worker runs (the ``rediq worker`` options of the same names).

    :param queues: queues to consume besides the app's default queue, in order.
    :param skip_default_queue: do not consume the app's default queue.
    :param queue_order: which queue gets a free slot when several have due tasks:
        ``fair`` (round-robin), ``strict`` (the first as listed) or ``weighted``
        (weighted round-robin); default: ``weighted`` if ``queue_weights`` are given,
        else ``fair``. All queues share the ``task_concurrency`` (docs/worker.md).
    :param queue_weights: ``{queue: weight}`` (whole numbers >= 1; 1 for a queue not
        named) for the weighted order.
    :param worker_name: a readable name (default: ``worker@<host>:<pid>``, unique); the
        id adds host, pid and a random part.
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
    :param task_log_lines: the last log lines kept per task (0: no log capture).
    :param task_log_bytes: the most bytes of log lines kept per task.
    """

    queues: tuple[str, ...] = ()
    skip_default_queue: bool = False
    queue_order: QueueOrder | str | None = None
    queue_weights: Mapping[str, int] = field(default_factory=dict, hash=False)
    worker_name: str | None = None
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
    task_log_lines: int = defaults.TASK_LOG_LINES
    task_log_bytes: int = defaults.TASK_LOG_BYTES

    def __post_init__(self) -> None:
        for queue in self.queues:
            check_queue(queue, "queue_name")
        self._check_order()
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
        if self.task_log_lines < 0 or self.task_log_bytes < 256:
            raise ConfigurationError(
                f"task_log_lines={self.task_log_lines} must be >= 0 (0: no log capture) and"
                f" task_log_bytes={self.task_log_bytes} >= 256"
            )
        if not 0 < self.lease_renew_ms < self.lease_ms:
            raise ConfigurationError(
                f"lease_renew_ms={self.lease_renew_ms} must be between 0 and"
                f" lease_ms={self.lease_ms}, so leases are renewed before they expire"
            )

    def _check_order(self) -> None:
        orders = [o.value for o in QueueOrder]
        if self.queue_order is not None and self.queue_order not in orders:
            raise ConfigurationError(
                f"queue_order={self.queue_order!r}: expected one of {', '.join(orders)}"
            )
        for queue, weight in self.queue_weights.items():
            if queue not in self.queues:
                raise ConfigurationError(
                    f"queue weight for {queue!r}, which is not among the queues to consume"
                    f" ({', '.join(self.queues) or 'none given'})"
                )
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise ConfigurationError(
                    f"queue weight {weight!r} of {queue!r} must be a whole number >= 1"
                )
        if self.queue_weights and self.resolved_queue_order is not QueueOrder.WEIGHTED:
            raise ConfigurationError(
                f"queue weights apply to the weighted order, not to --queue-order"
                f" {self.queue_order}: drop the weights or the order"
            )

    @property
    def log_bounds(self) -> LogBounds:
        """The lines and bytes of log lines kept per task."""
        return LogBounds(self.task_log_lines, self.task_log_bytes)

    @property
    def resolved_queue_order(self) -> QueueOrder:
        if self.queue_order is None:
            return QueueOrder.WEIGHTED if self.queue_weights else QueueOrder.FAIR
        return QueueOrder(self.queue_order)

    def describe_queues(
        self, queues: Iterable[str], shards: Mapping[str, int] | None = None
    ) -> str:
        """The consumed queues and their order, as the banner and the ready line say it
        (with the number of ``shards`` of a sharded queue)."""
        order = self.resolved_queue_order
        queues = list(queues)
        names = list(queues)
        if order is QueueOrder.WEIGHTED:
            names = [f"{q}:{self.queue_weights.get(q, 1)}" for q in names]
        shards = shards or {}
        names = [
            f"{n} ({shards[q]} shards)" if shards.get(q) else n
            for q, n in zip(queues, names, strict=True)
        ]
        return ", ".join(names) + (f" ({order.value} order)" if len(names) > 1 else "")

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
        """Tuning read from the environment (``REDIQ_LEASE_MS``, ``REDIQ_BACKOFF_*``,
        ``REDIQ_TASK_LOG_LINES``, ``REDIQ_TASK_LOG_BYTES``)."""
        found: dict[str, object] = {}
        for var, key in (
            (defaults.ENV_LEASE_MS, "lease_ms"),
            (defaults.ENV_LEASE_RENEW_MS, "lease_renew_ms"),
            (defaults.ENV_TASK_LOG_LINES, "task_log_lines"),
            (defaults.ENV_TASK_LOG_BYTES, "task_log_bytes"),
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
