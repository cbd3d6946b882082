"""The hot line (``rediq_redis/wire.py``): calls made one at a time go out on a held
connection, written and read directly. Errors must come back as redis-py's would, and
the line must stay usable after each of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from rediq_redis.connection import client_options
from rediq_redis.topology import Kind
from rediq_redis.wire import HotLine

from ..tcp_proxy import Rule, TcpProxy

ECHO = "return ARGV[1]"
BOOM = "return redis.error_reply('boom')"


async def _line_on(url: str, **options: object) -> tuple[Redis, HotLine]:
    """A line on a client made as the broker makes its own (its bounded re-send policy)."""
    client = Redis.from_url(url, **{**client_options({}, Kind.STANDALONE), **options})
    return client, HotLine(client)


@pytest.fixture
async def line(rediq_redis_url: str) -> AsyncIterator[tuple[Redis, HotLine]]:
    client, hot = await _line_on(rediq_redis_url)
    try:
        yield client, hot
    finally:
        await hot.close()
        await client.aclose()


async def _sha(client: Redis, source: str) -> str:
    return str(await client.script_load(source))


async def test_a_call_answers_and_loads_a_script_the_server_lost(
    line: tuple[Redis, HotLine],
) -> None:
    client, hot = line
    sha = await _sha(client, ECHO)
    assert await hot.evalsha(sha, ECHO, [], [b"one"]) == b"one"
    await client.script_flush()
    assert await hot.evalsha(sha, ECHO, [], [b"two"]) == b"two"  # NOSCRIPT: loaded, sent again
    assert not hot.busy


async def test_a_script_error_is_raised_and_the_line_stays_usable(
    line: tuple[Redis, HotLine],
) -> None:
    client, hot = line
    with pytest.raises(ResponseError, match="boom"):
        await hot.evalsha(await _sha(client, BOOM), BOOM, [], [])
    assert await hot.evalsha(await _sha(client, ECHO), ECHO, [], [b"after"]) == b"after"


async def test_a_connection_the_server_closed_is_replaced(
    line: tuple[Redis, HotLine],
) -> None:
    client, hot = line
    sha = await _sha(client, ECHO)
    assert await hot.evalsha(sha, ECHO, [], [b"one"]) == b"one"
    killed = await client.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert await hot.evalsha(sha, ECHO, [], [b"two"]) == b"two"


async def test_a_reply_that_does_not_come_times_out(proxy: TcpProxy, rediq_redis_url: str) -> None:
    """The read is bounded by the client's ``socket_timeout``: a stalled reply raises
    redis-py's TimeoutError (which the retry policy re-sends on), never hangs."""
    client, hot = await _line_on(proxy.url(), socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
    direct = Redis.from_url(rediq_redis_url)
    try:
        sha = await _sha(direct, ECHO)
        assert await hot.evalsha(sha, ECHO, [], [b"warm"]) == b"warm"
        proxy.add(Rule(b"EVALSHA", "hold"))
        with pytest.raises(TimeoutError):
            await hot.evalsha(sha, ECHO, [], [b"held"])
        assert not hot.busy
        assert await hot.evalsha(sha, ECHO, [], [b"fresh"]) == b"fresh"  # a new connection
    finally:
        await hot.close()
        await client.aclose()
        await direct.aclose()


async def test_a_stalled_reply_times_out_after_an_error_replaced_the_connection(
    proxy: TcpProxy, rediq_redis_url: str
) -> None:
    """A failed call replaces the line's connection; the watchdog armed for the old one
    must still bound the next call's read."""
    client, hot = await _line_on(proxy.url(), socket_timeout=0.3, retry=Retry(NoBackoff(), 0))
    direct = Redis.from_url(rediq_redis_url)
    try:
        boom, echo = await _sha(direct, BOOM), await _sha(direct, ECHO)
        with pytest.raises(ResponseError):
            await hot.evalsha(boom, BOOM, [], [])  # arms the watchdog, then drops the line
        proxy.add(Rule(b"held-call", "hold"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(hot.evalsha(echo, ECHO, [], [b"held-call"]), 10)
    finally:
        await hot.close()
        await client.aclose()
        await direct.aclose()


async def test_calls_spread_over_several_timeouts_never_time_out(rediq_redis_url: str) -> None:
    """The line's one watchdog timer outlives calls, idle gaps and re-arming: calls that
    are answered in time never time out, however long the line lives."""
    client, hot = await _line_on(rediq_redis_url, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    try:
        sha = await _sha(client, ECHO)
        for i in range(40):  # ~0.8 s: four timeouts' worth of calls and idle gaps
            assert await hot.evalsha(sha, ECHO, [], [str(i)]) == str(i).encode()
            await asyncio.sleep(0.02 if i % 2 else 0)  # an idle line between some calls
    finally:
        await hot.close()
        await client.aclose()


async def test_a_refused_connection_raises_connection_error(proxy: TcpProxy) -> None:
    client, hot = await _line_on(proxy.url(), retry=Retry(NoBackoff(), 0))
    try:
        proxy.add(Rule(b"EVALSHA", "refuse"))
        with pytest.raises(ConnectionError):
            await hot.evalsha("0" * 40, ECHO, [], [b"x"])
    finally:
        await hot.close()
        await client.aclose()
