"""The Redis broker runs the contract classes of every role (it declares them all)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from rediq_core.broker import Broker
from rediq_core.testing.contract import contracts_for
from rediq_core.testing.contract.helpers import WAKE_WAIT_S
from rediq_redis import RedisBroker


class TestRedisBrokerContract(*contracts_for(RedisBroker)):
    """``broker`` comes from tests/broker/conftest.py."""

    async def wait_until_blocked(self, broker: Broker, fetches: asyncio.Future[Any]) -> None:
        """Until the server lists a connection blocked in the wake-key wait (BLPOP)."""
        async with Redis.from_url(broker.url) as admin:
            for _ in range(int(WAKE_WAIT_S / 0.01)):
                clients = await admin.client_list()
                if fetches.done() or any(c.get("cmd") == "blpop" for c in clients):
                    return
                await asyncio.sleep(0.01)  # re-check interval of a bounded wait
        raise AssertionError(f"no fetch blocked in the server within {WAKE_WAIT_S} s")
