"""The in-process broker (``memory://``) runs the same reusable contract suite as the
Redis broker, minus cron schedules (it does not support them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rediq_core.broker import Broker, BrokerOptions
from rediq_core.plugins import PluginHost
from rediq_core.testing.broker_contract import CoreBrokerContract


class TestMemoryBrokerContract(CoreBrokerContract):
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
    with pytest.raises(NotImplementedError, match="does not support cron"):
        await broker.cron_entries()
