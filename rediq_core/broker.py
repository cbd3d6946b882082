"""What every broker is: a URL, the roles it declares, and a lifecycle.

The contract itself is role by role (:mod:`rediq_core.roles`): a broker subclasses
:class:`Broker` and implements the methods of each role it lists in ``roles``.
``rediq_redis`` implements every role for Redis, ``rediq_memory`` the core ones in memory;
a third-party broker registers its URL schemes with ``rediq_register_brokers``.
``rediq_core.testing.contract`` holds a test class per role for any implementation.

The data the roles exchange live in :mod:`rediq_core.records` (and ``inspection``,
``diagnosis``, ``cron_records``); they are re-exported here, so ``from rediq_core.broker
import TaskState`` keeps working.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from .records import (
    BrokerOptions,
    CancelOutcome,
    Delivery,
    EnqueueOutcome,
    Expired,
    FailedAttempt,
    FetchBatch,
    Lease,
    QueueStats,
    Rejected,
    Settlement,
    TaskError,
    TaskRecord,
    TaskState,
    WorkerRecord,
)
from .roles import CORE_ROLES, Role

__all__ = [
    "Broker",
    "BrokerOptions",
    "CancelOutcome",
    "Delivery",
    "EnqueueOutcome",
    "Expired",
    "FailedAttempt",
    "FetchBatch",
    "Lease",
    "QueueStats",
    "Rejected",
    "Settlement",
    "TaskError",
    "TaskRecord",
    "TaskState",
    "WorkerRecord",
]


class Broker(abc.ABC):
    """A task store with atomic state transitions; every method is safe to call concurrently.

    Only the lifecycle lives here. ``roles`` lists the roles of :mod:`rediq_core.roles`
    this broker implements (the default, :data:`~rediq_core.roles.CORE_ROLES`, is what
    every broker implemented before roles existed); the core reaches a role through
    ``rediq_core.roles.producer(broker)`` and its siblings, which name the broker and the
    role when it is not declared.
    """

    url: str
    roles: ClassVar[frozenset[Role]] = CORE_ROLES

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open connections and check the server; called once before first use (a broker
        may also connect lazily on its first call)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection."""
