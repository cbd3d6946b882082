"""The broker contract suite, one test class per role (``rediq_core.roles``).

A broker runs the classes of the roles it declares::

    from rediq_core.testing.contract import contracts_for

    class TestMyBroker(*contracts_for(MyBroker)):
        @pytest.fixture
        async def broker(self):
            broker = MyBroker(BrokerOptions(url=..., namespace=unique()))
            await broker.connect()
            yield broker
            await broker.close()

The ``broker`` fixture yields a broker connected to a fresh, empty store (unique
namespace) with the default protocol bounds (``MAX_DELIVERIES``). A fetch that should
block is started and handed to :meth:`RoleContract.wait_until_blocked`; override it when
your broker's fetch does I/O before it blocks (the default only lets the event loop run,
enough for an in-process broker), so that the wake-up tests see a fetch really waiting.

Adding a role: its contract class goes into :data:`CONTRACTS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from rediq_core.roles import Role, declared

from .consumer import ConsumerContract
from .control import ControlContract
from .cron import CronContract
from .diagnosis import DiagnosisContract
from .events import EventsContract
from .helpers import RoleContract
from .limits import LimitsContract
from .producer import ProducerContract
from .registry import RegistryContract
from .reports import ReportsContract
from .results import ResultsContract
from .workflows import WorkflowsContract

__all__ = [
    "CONTRACTS",
    "ConsumerContract",
    "ControlContract",
    "CronContract",
    "DiagnosisContract",
    "EventsContract",
    "LimitsContract",
    "ProducerContract",
    "RegistryContract",
    "ReportsContract",
    "ResultsContract",
    "RoleContract",
    "WorkflowsContract",
    "contracts_for",
]

#: Each role's contract class.
CONTRACTS: Mapping[Role, type[RoleContract]] = {
    Role.PRODUCER: ProducerContract,
    Role.CONSUMER: ConsumerContract,
    Role.RESULTS: ResultsContract,
    Role.CONTROL: ControlContract,
    Role.REGISTRY: RegistryContract,
    Role.CRON: CronContract,
    Role.DIAGNOSIS: DiagnosisContract,
    Role.WORKFLOWS: WorkflowsContract,
    Role.LIMITS: LimitsContract,
    Role.REPORTS: ReportsContract,
    Role.EVENTS: EventsContract,
}


def contracts_for(broker: object) -> tuple[type[RoleContract], ...]:
    """The contract classes of the roles ``broker`` (a class or an instance) declares.

    Raises TypeError when a declared role's tests need a role the broker does not declare
    (e.g. the control tests set cases up with enqueue and fetch), or when no class tests
    a declared role."""
    roles = declared(broker)
    name = broker.__name__ if isinstance(broker, type) else type(broker).__name__
    chosen = []
    for role in Role:
        if role not in roles:
            continue
        contract = CONTRACTS.get(role)
        if contract is None:
            raise TypeError(f"no contract class tests the {role} role of {name}")
        missing = contract.requires - roles
        if missing:
            raise TypeError(
                f"{contract.__name__} sets its cases up with the"
                f" {', '.join(sorted(missing))} role(s), which {name} does not declare"
            )
        chosen.append(contract)
    return tuple(chosen)
