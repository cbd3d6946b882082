"""Connections: URL schemes, ``redis_config`` pass-through, decode_responses, versions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rediq_core.broker import BrokerOptions
from rediq_core.errors import BrokerError
from rediq_core.testing.broker_contract import fetch, make_message
from rediq_redis import RedisBroker
from rediq_redis.connection import check_server
from rediq_redis.testing import RedisServer


@pytest.mark.parametrize(
    "config",
    [
        {"decode_responses": True},
        {"decode_responses": False},
        {"max_connections": 2, "socket_timeout": 0.5},
    ],
)
async def test_works_whatever_the_redis_config(
    rediq_redis_url: str, rediq_namespace: str, config: dict[str, Any]
) -> None:
    broker = RedisBroker(
        BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace, config=config)
    )
    try:
        message = make_message(payload=b"\xff\x00 binary")
        await broker.enqueue([message])
        assert (await fetch(broker)).deliveries[0].message == message
        record = await broker.get_task(message.id)
        assert record is not None and record.message == message
        # blocked fetchers use their own pool, without the socket timeout
        fetchers = [
            asyncio.ensure_future(fetch(broker, worker_id=f"w{i}", limit=1)) for i in range(3)
        ]
        await asyncio.sleep(0.7)  # longer than socket_timeout=0.5 above
        await broker.enqueue([make_message() for _ in range(3)])
        batches = await asyncio.gather(*fetchers)
        assert [len(b.deliveries) for b in batches] == [1, 1, 1]
    finally:
        await broker.close()


async def test_unix_socket_url(rediq_redis_server: RedisServer, rediq_namespace: str) -> None:
    url = f"unix://{rediq_redis_server.unix_socket}"
    broker = RedisBroker(BrokerOptions(url=url, namespace=rediq_namespace))
    try:
        await broker.enqueue([make_message()])
        assert len((await fetch(broker)).deliveries) == 1
    finally:
        await broker.close()


class _OldServer:
    async def info(self, section: str) -> dict[str, str]:
        return {"redis_version": "6.0.16"}


async def test_old_server_is_refused_with_a_clear_error() -> None:
    with pytest.raises(BrokerError, match=r"6\.0\.16.*Redis >= 6\.2"):
        await check_server(_OldServer())  # type: ignore[arg-type]


async def test_current_server_is_accepted(
    rediq_redis_server: RedisServer, rediq_namespace: str
) -> None:
    broker = RedisBroker(BrokerOptions(url=rediq_redis_server.url(), namespace=rediq_namespace))
    try:
        await broker.connect()
    finally:
        await broker.close()


def test_registered_for_its_schemes() -> None:
    from rediq_redis.plugin import rediq_register_brokers

    registered: dict[str, Any] = {}
    rediq_register_brokers(lambda scheme, factory: registered.__setitem__(scheme, factory))
    assert set(registered) == {
        "redis",
        "rediss",
        "unix",
        "redis+sentinel",
        "rediss+sentinel",
        "redis+cluster",
        "rediss+cluster",
    }
    broker = registered["redis"](BrokerOptions(url="redis://127.0.0.1:1/0"))
    assert isinstance(broker, RedisBroker)


async def test_batches_survive_a_flushed_script_cache(
    rediq_redis_server: RedisServer, rediq_namespace: str
) -> None:
    """Batched script calls are bare EVALSHAs; after SCRIPT FLUSH (or a restart) each call
    answered NOSCRIPT is run again through the loading path, exactly once."""
    from redis.asyncio import Redis

    broker = RedisBroker(BrokerOptions(url=rediq_redis_server.url(), namespace=rediq_namespace))
    admin = Redis.from_url(rediq_redis_server.url())
    try:
        await broker.enqueue([make_message()])
        await admin.script_flush()
        messages = [make_message() for _ in range(3)]
        outcomes = await broker.enqueue(messages)
        assert [o.accepted for o in outcomes] == [True, True, True]
        stats = await broker.queue_stats(messages[0].queue)
        assert (stats.pending, stats.enqueued) == (4, 4), "a flushed cache must not double-run"
    finally:
        await admin.aclose()
        await broker.close()
