"""The in-process broker (``memory://``) runs the contract classes of the roles it declares
(the core ones, workflows, limits and reports: no cron, no diagnosis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rediq_core.broker import Broker, BrokerOptions
from rediq_core.plugins import PluginHost
from rediq_core.roles import MissingRoleError, Role, cron
from rediq_core.testing.contract import contracts_for
from rediq_memory import MemoryBroker


class TestMemoryBrokerContract(*contracts_for(MemoryBroker)):
    @pytest.fixture
    async def broker(self, plugin_host: PluginHost, rediq_namespace: str) -> AsyncIterator[Broker]:
        """Built through the plugin host, as an app builds it from its URL."""
        broker = plugin_host.broker(BrokerOptions(url="memory://", namespace=rediq_namespace))
        await broker.connect()
        try:
            yield broker
        finally:
            await broker.close()


async def test_memory_is_registered_like_any_broker_plugin(plugin_host: PluginHost) -> None:
    registration = plugin_host.brokers()["memory"]
    assert registration.plugin == "memory"


async def test_cron_is_reported_unsupported(plugin_host: PluginHost) -> None:
    broker = plugin_host.broker(BrokerOptions(url="memory://", namespace="cronless"))
    assert Role.CRON not in broker.roles
    with pytest.raises(MissingRoleError, match="MemoryBroker .*does not support the cron role"):
        cron(broker)
