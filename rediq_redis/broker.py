"""The Redis broker: the :class:`~rediq_core.broker.Broker` contract over Lua scripts.

Each method delegates to a small module: ``producer`` (enqueue), ``leasing`` (fetch,
leases, settlement, release), ``control`` (results, cancel, delete, purge, dead letters,
stats) and ``registry`` (worker heartbeats). ``docs/broker.md`` documents the protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import cast

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from rediq_core.broker import (
    Broker,
    BrokerOptions,
    CancelOutcome,
    EnqueueOutcome,
    FetchBatch,
    Lease,
    QueueStats,
    Settlement,
    TaskRecord,
    WorkerRecord,
)
from rediq_core.errors import BrokerError
from rediq_core.message import TaskMessage

from . import control, leasing, producer, registry
from .cluster import is_cluster
from .connection import check_server, client_options, explain_connect_failure, make_clients
from .durability import durability
from .keys import NamespaceKeys
from .records import text
from .scripts import Scripts
from .sentinel import probe_sentinels
from .session import BrokerSettings, Session
from .topology import Kind, parse_url

__all__ = ["RedisBroker"]


class RedisBroker(Broker):
    """Broker for every URL of :data:`~rediq_redis.topology.SCHEMES`: one server
    (``redis://``, ``rediss://``, ``unix://``), Sentinel and Cluster.

    Connects lazily on first use (or explicitly with :meth:`connect`), checking that the
    server is Redis >= 6.2; a connection failure is a one-line :class:`BrokerError` naming
    the URL (password masked) and what to check.
    """

    def __init__(self, options: BrokerOptions, settings: BrokerSettings | None = None) -> None:
        self.url = options.url
        self.options = options
        self.settings = settings or BrokerSettings()
        self._session: Session | None = None
        self._lock = asyncio.Lock()

    # --- lifecycle --------------------------------------------------------------------

    async def connect(self) -> None:
        await self._ready()

    async def _ready(self) -> Session:
        if self._session is not None:
            return self._session
        async with self._lock:
            if self._session is None:
                self._session = await self._connect()
            return self._session

    async def _connect(self) -> Session:
        url, config = self.options.url, self.options.config
        topology = parse_url(url)
        if topology.kind is Kind.SENTINEL:
            await probe_sentinels(topology, client_options(config, topology.kind),
                                  config.get("sentinel_kwargs"))
        client, blocking = make_clients(url, config)
        try:
            if is_cluster(client):  # fails fast (not after the re-send budget) at start
                await cast(RedisCluster, client).initialize()
            server = await check_server(client)
        except (redis_errors.ConnectionError, redis_errors.RedisClusterException) as exc:
            await client.aclose()
            await blocking.aclose()
            if isinstance(exc, BrokerError):
                raise
            raise explain_connect_failure(url, exc) from exc
        except BaseException:
            await client.aclose()
            await blocking.aclose()
            raise
        enqueue_wait, settle_wait = durability(config)
        return Session(
            client=client,
            blocking=blocking,
            scripts=Scripts(client, self.settings.replay_window_ms),
            keys=NamespaceKeys(self.options.namespace),
            settings=self.settings,
            timer_tick_s=server.timer_tick_s,
            enqueue_wait=enqueue_wait,
            settle_wait=settle_wait,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.blocking.aclose()
            await session.client.aclose()

    # --- producer ---------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[TaskMessage]) -> list[EnqueueOutcome]:
        return await producer.enqueue(await self._ready(), messages)

    # --- worker -----------------------------------------------------------------------

    async def fetch(self, queue: str, *, worker_id: str, limit: int, lease_ms: int) -> FetchBatch:
        return await leasing.fetch(await self._ready(), queue, worker_id, limit, lease_ms)

    async def extend_leases(
        self, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
    ) -> set[Lease]:
        return await leasing.extend_leases(await self._ready(), worker_id, leases, lease_ms)

    async def settle(self, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
        return await leasing.settle(await self._ready(), worker_id, settlements)

    async def release(self, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int:
        return await leasing.release(await self._ready(), worker_id, leases)

    async def cancellations(self) -> AsyncIterator[str]:
        session = await self._ready()
        pubsub = session.blocking.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(session.keys.cancel_channel)
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield text(message["data"]) or ""
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    # --- results and control ----------------------------------------------------------

    async def get_task(self, task_id: str, queue: str | None = None) -> TaskRecord | None:
        return await control.get_task(await self._ready(), task_id, queue)

    async def wait_finished(
        self, task_id: str, queue: str, timeout_s: float | None
    ) -> TaskRecord | None:
        return await control.wait_finished(await self._ready(), task_id, queue, timeout_s)

    async def cancel(self, task_id: str, queue: str | None = None) -> CancelOutcome:
        return await control.cancel(await self._ready(), task_id, queue)

    async def delete(self, task_id: str, queue: str | None = None) -> bool:
        return await control.delete(await self._ready(), task_id, queue)

    async def purge(self, queue: str) -> int:
        return await control.purge(await self._ready(), queue)

    async def requeue_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        return await control.requeue_dead(await self._ready(), queue, task_ids)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[TaskRecord]:
        return await control.dead_letters(await self._ready(), queue, limit)

    async def queues(self) -> list[str]:
        return await control.queues(await self._ready())

    async def queue_stats(self, queue: str) -> QueueStats:
        return await control.queue_stats(await self._ready(), queue)

    # --- worker registry --------------------------------------------------------------

    async def heartbeat(self, worker: WorkerRecord, ttl_s: int) -> None:
        await registry.heartbeat(await self._ready(), worker, ttl_s)

    async def unregister_worker(self, worker_id: str) -> None:
        await registry.unregister_worker(await self._ready(), worker_id)

    async def workers(self) -> list[WorkerRecord]:
        return await registry.workers(await self._ready())
