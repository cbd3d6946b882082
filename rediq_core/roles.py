"""The broker contract by role: small protocols a broker can say it supports.

:class:`~rediq_core.broker.Broker` is the sum of the core roles (every broker has them);
``cron`` and ``diagnosis`` are optional. A broker lists what it supports in ``roles``, and
the core asks with :func:`supports` (``rediq plugins`` shows it; the cron scheduler and
``rediq doctor`` skip a broker without theirs). Core components are typed against the
one role they use, so a broker can be read as the roles it implements.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .broker import (
        CancelOutcome,
        EnqueueOutcome,
        FetchBatch,
        Lease,
        QueueStats,
        Settlement,
        TaskRecord,
        WorkerRecord,
    )
    from .diagnosis import Check
    from .message import TaskMessage

__all__ = [
    "CORE_ROLES",
    "Consumer",
    "Producer",
    "Registry",
    "Results",
    "Role",
    "supports",
]


class Role(enum.StrEnum):
    PRODUCER = "producer"  # store tasks
    CONSUMER = "consumer"  # lease, renew, settle, hand back, hear cancellations
    RESULTS = "results"  # look tasks up, wait for their end
    CONTROL = "control"  # cancel, delete, purge, dead letters, pause, stop workers
    REGISTRY = "registry"  # worker heartbeats
    CRON = "cron"  # periodic schedules (optional)
    DIAGNOSIS = "diagnosis"  # rediq doctor's server checks (optional)


CORE_ROLES = frozenset({Role.PRODUCER, Role.CONSUMER, Role.RESULTS, Role.CONTROL, Role.REGISTRY})


@runtime_checkable
class Producer(Protocol):
    url: str

    async def enqueue(self, messages: Sequence[TaskMessage]) -> list[EnqueueOutcome]: ...


@runtime_checkable
class Consumer(Protocol):
    url: str

    async def fetch(
        self, queue: str, *, worker_id: str, limit: int, lease_ms: int, wait: bool = True
    ) -> FetchBatch: ...

    async def extend_leases(
        self, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
    ) -> set[Lease]: ...

    async def settle(self, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]: ...

    async def release(self, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int: ...

    def cancellations(self) -> AsyncIterator[str]: ...


@runtime_checkable
class Results(Protocol):
    async def get_task(self, task_id: str, queue: str | None = None) -> TaskRecord | None: ...

    async def wait_finished(
        self, task_id: str, queue: str, timeout_s: float | None
    ) -> TaskRecord | None: ...

    async def cancel(self, task_id: str, queue: str | None = None) -> CancelOutcome: ...

    async def queue_stats(self, queue: str) -> QueueStats: ...


@runtime_checkable
class Registry(Protocol):
    async def heartbeat(self, worker: WorkerRecord, ttl_s: int) -> None: ...

    async def unregister_worker(self, worker_id: str) -> None: ...

    async def workers(self) -> list[WorkerRecord]: ...


@runtime_checkable
class Diagnosis(Protocol):
    async def diagnose(self) -> list[Check]: ...

    async def namespaces(self) -> list[str]: ...


def supports(broker: object, role: Role) -> bool:
    """Whether ``broker`` declares ``role`` (brokers without ``roles``: the core ones)."""
    declared: frozenset[Role] = getattr(broker, "roles", CORE_ROLES)
    return role in declared
