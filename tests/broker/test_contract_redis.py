"""The Redis broker runs the reusable broker contract suite."""

from __future__ import annotations

from rediq_core.testing.broker_contract import BrokerContract


class TestRedisBrokerContract(BrokerContract):
    """``broker`` comes from tests/broker/conftest.py."""
