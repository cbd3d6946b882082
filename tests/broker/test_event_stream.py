"""The Redis event stream beyond the contract: a follower outlives a restart of the
server (it reads again from the last event it saw), and events are recorded by the
script of the transition (a lost reply's re-send records nothing twice)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from rediq_core.broker import BrokerOptions
from rediq_core.testing.contract.helpers import make_message
from rediq_redis import RedisBroker
from rediq_redis.testing import RedisServer

Q = "events"


async def test_a_follower_reads_on_after_a_restart(
    rediq_redis_server_factory: Callable[..., RedisServer], rediq_namespace: str
) -> None:
    server = rediq_redis_server_factory()
    options = BrokerOptions(url=server.url(), namespace=rediq_namespace, event_stream_length=100)
    broker = RedisBroker(options)
    try:
        before = make_message(Q)
        await broker.enqueue([before])
        [seen] = [e async for e in broker.events({Q: "0-0"}, follow=False)]
        following = broker.events({Q: seen.position}, follow=True)
        waiting = asyncio.ensure_future(anext(following))
        try:
            await asyncio.wait({waiting}, timeout=0.2)  # its XREAD is blocked by now
            await asyncio.to_thread(server.restart)  # SIGKILL: the stream is gone too
            after = make_message(Q)
            await broker.enqueue([after])
            event = await asyncio.wait_for(waiting, 20)
            assert event.task_id == after.id and event.kind == "enqueued"
        finally:
            waiting.cancel()
            await following.aclose()  # type: ignore[attr-defined]
    finally:
        await broker.close()


async def test_a_resent_enqueue_records_one_event(
    rediq_redis_url: str, rediq_namespace: str, redis: Redis
) -> None:
    options = BrokerOptions(url=rediq_redis_url, namespace=rediq_namespace, event_stream_length=100)
    broker = RedisBroker(options)
    try:
        message = make_message(Q)
        from rediq_redis import producer

        calls = producer.enqueue_calls(await broker._ready(), [message])
        for _ in range(2):  # the same call (same nonce) twice: a re-send after a lost reply
            await producer.enqueue(await broker._ready(), [message], calls)
        key = f"{{{rediq_namespace}:{Q}}}:events"
        assert [f[b"k"] for _, f in await redis.xrange(key)] == [b"enqueued"]
    finally:
        await broker.close()
