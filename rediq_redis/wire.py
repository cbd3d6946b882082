"""The one-round-trip hot path: script calls on a connection of the broker's own.

redis-py's command layer spends 30-40 us per call taking a connection from the pool,
parsing options and giving it back, and a connection's own send and read start an
asyncio task and a timeout each (another 30 us and two loop iterations). A call made
one at a time (an ``await task.enqueue()``, a lone settlement) goes out instead on a
:class:`HotLine`: one connection, made by the main pool's connection class (so Sentinel
discovery, TLS and command packing in C apply) but held by the broker, packed, written
and read directly; ``socket_timeout`` bounds each round trip (one watchdog timer per
line). Calls that find the line busy take the pool path as before. Re-sending after a
broken connection follows the client's retry policy (``connection.default_retry``:
bounded by ``RESEND_BUDGET_S``), which is safe for every script (docs/broker.md, "Lost
replies").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["HotLine"]


class HotLine:
    """One connection for calls made one at a time (see the module docstring)."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._connection: Connection | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self.busy = False
        # The read timeout (``socket_timeout``) is kept by one watchdog timer per line,
        # not by an asyncio.timeout per call (about 15 us of client CPU each): a call notes
        # when it was sent, and the timer, armed by the first call after it last fired,
        # aborts the connection of a call still unanswered after the timeout.
        self._sent_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._timed_out = False

    async def evalsha(self, sha: str, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a loaded script (loading it on NOSCRIPT). Call only when not :attr:`busy`."""
        self.busy = True
        connection = self._connection
        if connection is None:
            pool = self._client.connection_pool
            connection = self._connection = pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            packed = connection.pack_command("EVALSHA", sha, len(keys), *keys, *args)
            try:
                return await self._round_trip(connection, packed)
            except NoScriptError:  # the server lost its scripts: it did not run
                await self._client.script_load(source)
                return await self._round_trip(connection, packed)
        except BaseException:
            # a reply may still be on its way (a cancelled call): never read it as the
            # next call's; the next call opens a fresh connection
            self._connection = None
            self._drop(connection)
            raise
        finally:
            self.busy = False

    async def _round_trip(self, connection: Connection, packed: Any) -> Any:
        async def send() -> Any:
            if not connection.is_connected:
                await connection.connect()  # type: ignore[no-untyped-call]
            writer = connection._writer
            assert writer is not None
            self._watch(connection)
            try:
                # the connection's own writer and parser: its send and read methods start
                # a task (asyncio.wait_for) and a timeout each, per call
                writer.writelines(packed)
                await writer.drain()
                reply = await connection._read_response_from_parser(disable_decoding=False)
            except (RedisConnectionError, OSError) as exc:
                if self._timed_out:
                    self._timed_out = False
                    raise RedisTimeoutError("Timeout reading from the server") from None
                if isinstance(exc, RedisConnectionError):
                    raise
                raise RedisConnectionError(f"Error while talking to the server: {exc}") from exc
            if isinstance(reply, ResponseError):
                raise reply
            return reply

        async def fail(error: Exception) -> None:
            await connection.disconnect()

        return await connection.retry.call_with_retry(send, fail)

    def _watch(self, connection: Connection) -> None:
        """Note that a call is sent now; arm the watchdog if it is not armed."""
        timeout = connection.socket_timeout
        if timeout is None:
            return
        loop = asyncio.get_running_loop()
        self._sent_at = loop.time()
        self._timed_out = False
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._sent_at + timeout, self._check)

    def _check(self) -> None:
        """The watchdog: abort the call in flight on the line's connection (whichever it
        holds now) if it is late, else wait for its deadline; stop while the line is idle."""
        self._watchdog = None
        connection = self._connection
        if not self.busy or connection is None or connection.socket_timeout is None:
            return
        loop = asyncio.get_running_loop()
        deadline = self._sent_at + connection.socket_timeout
        if loop.time() < deadline:
            self._watchdog = loop.call_at(deadline, self._check)
            return
        writer = connection._writer
        if writer is not None:
            self._timed_out = True
            writer.transport.abort()  # the read ends with a ConnectionError: a timeout

    def _drop(self, connection: Connection) -> None:
        task = asyncio.get_running_loop().create_task(connection.disconnect())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
