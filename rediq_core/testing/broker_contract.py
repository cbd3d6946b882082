"""The whole broker contract suite in one import (kept for plugins and tests written before
the suite was split by role; new code uses :mod:`rediq_core.testing.contract`)::

    from rediq_core.testing.contract import contracts_for

    class TestMyBroker(*contracts_for(MyBroker)): ...

:class:`CoreBrokerContract` is the classes of the core roles, :class:`BrokerContract`
those plus cron. The helpers (``make_message``, ``fetch``, ``enqueue_one``, ...) and
constants live in :mod:`rediq_core.testing.contract.helpers` and are re-exported here.
"""

from __future__ import annotations

from rediq_core.testing.contract import (
    ConsumerContract,
    ControlContract,
    CronContract,
    ProducerContract,
    RegistryContract,
    ResultsContract,
)
from rediq_core.testing.contract.helpers import (
    FAR_MS,
    LEASE_MS,
    QUEUE,
    WAIT_S,
    WAKE_WAIT_S,
    WORKER,
    CoreBroker,
    Record,
    announce,
    broker_now,
    claim_beside_sentinel,
    enqueue_one,
    failure,
    fetch,
    fetch_nothing,
    fetch_one,
    finished_while_fetching,
    lease,
    make_message,
    started_at,
    success,
)

__all__ = [
    "FAR_MS",
    "LEASE_MS",
    "QUEUE",
    "WAIT_S",
    "WAKE_WAIT_S",
    "WORKER",
    "BrokerContract",
    "CoreBroker",
    "CoreBrokerContract",
    "Record",
    "announce",
    "broker_now",
    "claim_beside_sentinel",
    "enqueue_one",
    "failure",
    "fetch",
    "fetch_nothing",
    "fetch_one",
    "finished_while_fetching",
    "lease",
    "make_message",
    "started_at",
    "success",
]


class CoreBrokerContract(
    ProducerContract, ConsumerContract, ResultsContract, ControlContract, RegistryContract
):
    """The contract classes of the core roles (producer, consumer, results, control,
    registry)."""


class BrokerContract(CoreBrokerContract, CronContract):
    """The core roles plus cron schedules."""
