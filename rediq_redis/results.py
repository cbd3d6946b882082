"""Result waits, multiplexed: one subscription serves every waiter of a broker session.

The script that ends a task (or forgets an unfinished one) publishes on the task's done
channel (``{NS:Q}:done:<id>``, invariant I6 of the Lua prelude). A
:class:`ResultListener` holds one pub/sub connection: each awaited task's channel is
subscribed once, however many coroutines await it, and once Redis confirms the
subscription the task is looked up, so an end that came before is not missed. A message
on the channel, a reconnection (Redis restart, Sentinel or cluster failover: redis-py
re-subscribes, or the listener subscribes again on a new connection) and, every
``wake_safety_cap_s``, the safety net look the waiting tasks up again. Subscriptions and
lookups go out in batches (one ``SUBSCRIBE`` for many channels, pipelined lookups), so a
process awaiting any number of results uses one pub/sub connection plus at most one main
pool connection (one per node on a cluster), and each waiter costs O(1) commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from rediq_core import defaults
from rediq_core.broker import TaskRecord, TaskState
from rediq_core.errors import BrokerError, TaskNotFoundError

from .cluster import RESENDABLE, is_cluster
from .connection import UNREACHABLE, translate_error
from .control import outcomes
from .keys import QueueKeys
from .records import text
from .session import Session

__all__ = ["ResultListener"]

log = logging.getLogger("rediq.results")

#: Channels per SUBSCRIBE / UNSUBSCRIBE command, and tasks per lookup pipeline.
BATCH = 500
#: Pauses between reconnection attempts of the listener (doubling, capped).
_RETRY_PAUSE_S = (0.05, 1.0)
#: Errors after which the listener reconnects (a cluster whose nodes all fail to answer
#: raises RedisClusterException while its slot map is reloaded).
_LOST: tuple[type[Exception], ...] = (
    *UNREACHABLE,
    *RESENDABLE,
    redis_errors.RedisClusterException,
)


@dataclass(eq=False)
class _Wait:
    """The waiters of one task: futures resolved with its record once it ended."""

    keys: QueueKeys
    task_id: str
    futures: set[asyncio.Future[TaskRecord]] = field(default_factory=set)
    #: Redis confirmed the subscription to its channel (on the current connection).
    subscribed: bool = False


class ResultListener:
    """Every result wait of one broker session (see the module docstring). Started by the
    first :meth:`wait`, stopped by :meth:`close`."""

    def __init__(self, session: Session, url: str) -> None:
        self._session = session
        self._url = url
        self._anchor = f"{{{session.keys.namespace}}}:results"
        self._waits: dict[str, _Wait] = {}  # done channel -> its waiters
        self._subscribe: set[str] = set()
        self._unsubscribe: set[str] = set()
        self._check: set[str] = set()
        self._work = asyncio.Event()
        self._pubsub: PubSub | None = None
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._down_since: float | None = None

    # --- waiters ----------------------------------------------------------------------

    async def wait(
        self, keys: QueueKeys, task_id: str, timeout_s: float | None
    ) -> TaskRecord | None:
        """The task's record once it ended; None after ``timeout_s``;
        :class:`TaskNotFoundError` if the broker holds no record of it."""
        self._start()
        channel = keys.done(task_id)
        entry = self._waits.get(channel)
        if entry is None:
            entry = self._waits[channel] = _Wait(keys, task_id)
            self._subscribe.add(channel)
            self._work.set()
        future: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        entry.futures.add(future)
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            return None
        finally:
            entry.futures.discard(future)
            if not entry.futures and self._waits.get(channel) is entry:
                self._forget(channel)

    def _forget(self, channel: str) -> None:
        del self._waits[channel]
        self._subscribe.discard(channel)
        self._check.discard(channel)
        self._unsubscribe.add(channel)
        self._work.set()

    def _resolve(self, channel: str, record: TaskRecord | TaskState | None) -> None:
        entry = self._waits.get(channel)
        if entry is None or isinstance(record, TaskState) or (record and record.state.unfinished):
            return
        for future in entry.futures:
            if future.done():
                continue
            if record is None:
                queue = entry.keys.queue
                future.set_exception(
                    TaskNotFoundError(f"no task {entry.task_id} in queue {queue!r} (or it expired)")
                )
            else:
                future.set_result(record)
        self._forget(channel)

    def _fail(self, error: BaseException) -> None:
        for channel, entry in list(self._waits.items()):
            for future in entry.futures:
                if not future.done():
                    future.set_exception(error)
            self._forget(channel)

    # --- lifecycle --------------------------------------------------------------------

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="rediq-result-listener"),
                asyncio.create_task(self._serve(), name="rediq-result-requests"),
            ]

    async def close(self) -> None:
        """Stop listening; waiters still waiting get a :class:`BrokerError`."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail(BrokerError("the broker was closed while a result was awaited"))
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    # --- the pub/sub connection ---------------------------------------------------------

    async def _listen(self) -> None:
        """Hold the subscription: (re)connect, then route confirmations and messages."""
        pause = _RETRY_PAUSE_S[0]
        while True:
            try:
                await self._connect()
                pause = _RETRY_PAUSE_S[0]
                assert self._pubsub is not None
                while True:
                    message = await self._pubsub.get_message(timeout=None)
                    if message is not None:
                        self._route(message)
            except _LOST as exc:
                self._lost(exc)
            except Exception as exc:  # not a lost connection: the waiters learn what
                log.exception("result listener failed")
                self._fail(translate_error(self._url, exc))
            self._connected.clear()
            if self._pubsub is not None:
                pubsub, self._pubsub = self._pubsub, None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            await asyncio.sleep(pause)  # reconnection back-off while unreachable
            pause = min(pause * 2, _RETRY_PAUSE_S[1])

    async def _connect(self) -> None:
        blocking = self._session.blocking
        if self._down_since is not None and is_cluster(blocking):
            # the node we listened on may be gone: learn the promoted one first
            await cast(RedisCluster, blocking).nodes_manager.initialize()
        pubsub = blocking.pubsub()
        self._pubsub = pubsub
        await pubsub.subscribe(self._anchor)  # opens the connection (one node on a cluster)
        if self._down_since is not None:
            log.info("result listener: reconnected to Redis")
            self._down_since = None
        for entry in self._waits.values():
            entry.subscribed = False
        self._subscribe = set(self._waits)
        self._connected.set()
        self._work.set()

    def _lost(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "result listener: lost the connection to Redis (%s); result waits go on"
                " once it is back",
                exc,
            )
        elif now - self._down_since > defaults.RESEND_BUDGET_S and self._waits:
            error = translate_error(self._url, cast(Exception, exc))
            self._fail(error if error is not exc else BrokerError(str(exc)))

    def _route(self, message: dict[str, Any]) -> None:
        kind = text(message.get("type"))
        channel = text(message.get("channel")) or ""
        entry = self._waits.get(channel)
        if entry is None or kind not in ("subscribe", "message"):
            return
        if kind == "subscribe":
            entry.subscribed = True
        self._check.add(channel)
        self._work.set()

    # --- batched requests ---------------------------------------------------------------

    async def _serve(self) -> None:
        """Send subscriptions, unsubscriptions and lookups in batches; re-check every
        waiting task once per ``wake_safety_cap_s`` (the safety net)."""
        cap = self._session.settings.wake_safety_cap_s
        sweep_at = time.monotonic() + cap
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, sweep_at - time.monotonic())):
                    await self._work.wait()
            self._work.clear()
            if time.monotonic() >= sweep_at:
                self._check.update(c for c, e in self._waits.items() if e.subscribed)
                sweep_at = time.monotonic() + cap
            await self._connected.wait()
            try:
                await self._send()
            except _LOST:
                self._work.set()  # the listener reconnects; this goes out again then
                await asyncio.sleep(_RETRY_PAUSE_S[0])  # back-off while unreachable
            except Exception as exc:  # not a lost connection: the waiters learn what
                log.exception("result listener: a batch of requests failed")
                self._fail(translate_error(self._url, exc))

    async def _send(self) -> None:
        pubsub = self._pubsub
        assert pubsub is not None
        while self._subscribe:
            batch = _take(self._subscribe, BATCH)
            try:
                await pubsub.subscribe(*batch)
            except BaseException:
                self._subscribe.update(c for c in batch if c in self._waits)
                raise
        while self._unsubscribe:
            batch = [c for c in _take(self._unsubscribe, BATCH) if c not in self._waits]
            if batch:
                await pubsub.unsubscribe(*batch)
        while self._check:
            batch = _take(self._check, BATCH)
            entries = [(c, self._waits[c]) for c in batch if c in self._waits]
            try:
                records = await outcomes(self._session, [(e.keys, e.task_id) for _, e in entries])
            except BaseException:
                self._check.update(c for c, _ in entries)
                raise
            for (channel, _), record in zip(entries, records, strict=True):
                self._resolve(channel, record)


def _take(channels: set[str], count: int) -> list[str]:
    return [channels.pop() for _ in range(min(count, len(channels)))]
