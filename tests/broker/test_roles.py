"""Brokers implement exactly the roles they declare, and the role table has no gap.

For each role: declared <=> every method of the role's protocol is present; an undeclared
role has none of its methods (a half-implemented role would pass ``supports`` checks
nowhere and confuse readers). Every role has a protocol and a contract class, and the
protocols share no method (each operation belongs to exactly one role).
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from rediq_core.broker import Broker
from rediq_core.roles import CORE_ROLES, PROTOCOLS, MissingRoleError, Role, declared
from rediq_core.roles import control as control_role
from rediq_core.testing.contract import CONTRACTS, contracts_for
from rediq_memory import MemoryBroker
from rediq_redis import RedisBroker


def methods(protocol: type) -> set[str]:
    """The operations a role's protocol names (its own, public methods)."""
    return {
        name
        for name, value in vars(protocol).items()
        if not name.startswith("_") and inspect.isfunction(value)
    }


@pytest.mark.parametrize("broker", [MemoryBroker, RedisBroker], ids=lambda b: b.__name__)
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_a_broker_implements_exactly_its_declared_roles(broker: type[Broker], role: Role) -> None:
    present = {name for name in methods(PROTOCOLS[role]) if callable(getattr(broker, name, None))}
    if role in declared(broker):
        assert present == methods(PROTOCOLS[role]), (
            f"{broker.__name__} declares {role} but lacks {methods(PROTOCOLS[role]) - present}"
        )
    else:
        assert present == set(), f"{broker.__name__} does not declare {role} but has {present}"


def test_the_declared_roles() -> None:
    assert MemoryBroker.roles == CORE_ROLES | {
        Role.WORKFLOWS,
        Role.LIMITS,
        Role.REPORTS,
        Role.EVENTS,
    }
    assert RedisBroker.roles == frozenset(Role)


def test_every_role_has_a_protocol_and_a_contract_class() -> None:
    assert set(PROTOCOLS) == set(Role) == set(CONTRACTS)
    assert all(CONTRACTS[role].role is role for role in Role)


def test_each_operation_belongs_to_one_role() -> None:
    seen: dict[str, Role] = {}
    for role, protocol in PROTOCOLS.items():
        for name in methods(protocol):
            assert name not in seen, f"{name} is in both {seen[name]} and {role}"
            seen[name] = role
    assert not {name for name in methods(Broker) if name in seen}, "lifecycle holds no role"


def test_contracts_follow_the_declared_roles() -> None:
    assert [c.role for c in contracts_for(MemoryBroker)] == [
        r
        for r in Role
        if r in CORE_ROLES | {Role.WORKFLOWS, Role.LIMITS, Role.REPORTS, Role.EVENTS}
    ]
    assert [c.role for c in contracts_for(RedisBroker)] == list(Role)

    class OnlyControl:
        roles = frozenset({Role.CONTROL})

    with pytest.raises(TypeError, match="ControlContract .* producer"):
        contracts_for(OnlyControl)


def test_a_missing_role_is_named_with_the_broker() -> None:
    class Cronless:
        url = "redis://:secret@host:6379/0"
        roles = frozenset({Role.CRON})

    with pytest.raises(MissingRoleError) as caught:
        control_role(Cronless())
    message = str(caught.value)
    assert "Cronless" in message and "control role" in message and "secret" not in message
    assert isinstance(caught.value, NotImplementedError)  # what callers caught before roles


def test_a_worker_importing_the_redis_broker_skips_operator_modules() -> None:
    """A worker imports ``rediq_redis.broker``; only operators, handles and schedules use
    the control, results, doctor and cron modules, so it must not pay for them."""
    code = (
        "import sys, rediq_redis.broker\n"
        "lazy = ['rediq_redis.' + m for m in "
        "('doctor', 'operate', 'cron', 'control', 'results', 'ended')]\n"
        "print([m for m in lazy if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout
