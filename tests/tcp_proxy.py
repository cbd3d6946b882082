"""A loopback TCP proxy between rediq's clients and a real redis-server, with fault rules.

It forwards bytes both ways. A :class:`Rule` picks a request by a byte pattern and then,
for the reply to that request, either drops it and closes the client's connection (after
an optional hook ran: "the command ran, its reply was lost") or holds it until released
("the reply is in flight"). Only the loopback interface is used.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Rule", "TcpProxy"]


@dataclass
class Rule:
    """What to do with the reply to the next ``times`` requests containing ``pattern``.

    ``action`` is ``"drop"`` (forward the request, swallow the reply, run ``hook``, close
    the client's connection: the command ran, its reply was lost), ``"refuse"`` (close the
    client's connection without forwarding: the command never ran) or ``"hold"`` (forward
    the reply only once ``release`` is set).
    """

    pattern: bytes
    action: str = "drop"
    times: int = 1
    hook: Callable[[], Awaitable[None]] | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    matched: asyncio.Event = field(default_factory=asyncio.Event)
    hits: int = 0


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.target_port = host, target_port
        self.rules: list[Rule] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def blackhole(self) -> None:
        """Stop forwarding anything, both ways (bytes wait, connections stay open), until
        :meth:`restore`: a network that silently drops packets for a while."""
        self._flowing.clear()

    def restore(self) -> None:
        self._flowing.set()

    def reset_all(self) -> int:
        """Close every open connection at once (a connection-reset storm); returns how
        many were cut. New connections are accepted as before."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        return len(tasks)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def add(self, rule: Rule) -> Rule:
        self.rules.append(rule)
        return rule

    def _match(self, data: bytes) -> Rule | None:
        for rule in self.rules:
            if rule.pattern in data and rule.hits < rule.times:
                rule.hits += 1
                rule.matched.set()
                return rule
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        intercept: asyncio.Queue[Rule] = asyncio.Queue()
        upstream = asyncio.ensure_future(self._requests(reader, up_writer, intercept))
        downstream = asyncio.ensure_future(self._replies(up_reader, writer, intercept))
        try:
            await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass  # the proxy is closing
        finally:
            for pump in (upstream, downstream):
                pump.cancel()
            await asyncio.gather(upstream, downstream, return_exceptions=True)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()
            self._tasks.discard(task)

    async def _requests(
        self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, intercept: asyncio.Queue[Rule]
    ) -> None:
        while data := await reader.read(65536):
            rule = self._match(data)
            if rule is not None and rule.action == "refuse":
                return
            if rule is not None:
                intercept.put_nowait(rule)
            await self._flowing.wait()
            up.write(data)
            await up.drain()

    async def _replies(
        self, up: asyncio.StreamReader, writer: asyncio.StreamWriter, intercept: asyncio.Queue[Rule]
    ) -> None:
        while data := await up.read(65536):
            if not intercept.empty():
                rule = intercept.get_nowait()
                if rule.action == "drop":
                    if rule.hook is not None:
                        await rule.hook()
                    return  # the reply is lost; the connection closes
                await rule.release.wait()
            await self._flowing.wait()
            writer.write(data)
            await writer.drain()
