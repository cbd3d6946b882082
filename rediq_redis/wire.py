"""The one-round-trip hot path: script calls on a connection of the broker's own.

redis-py's command layer spends 30-40 us per call taking a connection from the pool,
parsing options and giving it back. A call made one at a time (an ``await
task.enqueue()``, a lone settlement) goes out instead on a :class:`HotLine`: one
connection, made by the main pool's connection class (so Sentinel discovery, TLS and
command packing in C apply) but held by the broker, packed and read directly. Calls that
find the line busy take the pool path as before. Re-sending after a broken connection
follows the client's retry policy (``connection.default_retry``: bounded by
``RESEND_BUDGET_S``), which is safe for every script (docs/broker.md, "Lost replies").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import NoScriptError

__all__ = ["HotLine"]


class HotLine:
    """One connection for calls made one at a time (see the module docstring)."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._connection: Connection | None = None
        self._closing: set[asyncio.Task[Any]] = set()
        self.busy = False

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

    @staticmethod
    async def _round_trip(connection: Connection, packed: Any) -> Any:
        async def send() -> Any:
            await connection.send_packed_command(packed, check_health=False)
            return await connection.read_response()

        async def fail(error: Exception) -> None:
            await connection.disconnect()

        return await connection.retry.call_with_retry(send, fail)

    def _drop(self, connection: Connection) -> None:
        task = asyncio.get_running_loop().create_task(connection.disconnect())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
