"""The Redis broker: every role of the broker contract (``rediq_core.roles``) over Lua scripts.

Each method delegates to a small module: ``producer`` (enqueue), ``leasing`` (fetch,
leases, settlement, release), ``registry`` and ``stopping`` (worker heartbeats, stop
requests), ``control`` (task lookups, cancel, delete, dead letters, stats), ``results``
(waits), ``operate`` (listing, overviews, bulk operations, pause), ``cron`` and ``doctor``.
A worker uses only the first ones: the modules only operators, handles and schedules use
are imported on their first call, so that a worker does not pay for them.
``docs/broker.md`` documents the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from rediq_core.broker import Broker
from rediq_core.errors import BrokerError
from rediq_core.history import HistoryWindow
from rediq_core.records import (
    BrokerOptions,
    CancelOutcome,
    EnqueueOutcome,
    FetchBatch,
    Lease,
    QueueStats,
    Settlement,
    TaskRecord,
    TaskState,
    WorkerRecord,
)
from rediq_core.roles import Role

from . import leasing, producer, registry, reports, stopping, workflows
from . import limits as limiting
from .channels import channel_messages
from .cluster import is_cluster
from .connection import (
    UNREACHABLE,
    check_server,
    client_options,
    explain_connect_failure,
    make_clients,
    pool_exhausted,
    pool_size,
    translate_error,
)
from .durability import durability
from .event_stream import EventLengths
from .keys import NamespaceKeys
from .protocol import check_protocol
from .scripts import CronScripts, Scripts
from .session import BrokerSettings, Session, sending_slots
from .topology import Kind, parse_url
from .wire import HotLine

if TYPE_CHECKING:
    from rediq_core.cron_records import CronEntry, CronFire, CronRegistration
    from rediq_core.diagnosis import Check
    from rediq_core.flow import QueueFlow, QueueLimits
    from rediq_core.inspection import QueueHistory, QueueOverview, TaskPage
    from rediq_core.message import TaskMessage
    from rediq_core.task_events import TaskEvent
    from rediq_core.tasklogs import LogBounds, TaskReport, TrailUpdate
    from rediq_core.workflow_records import WorkflowRecord

    from .results import ResultListener

__all__ = ["RedisBroker"]

P = ParamSpec("P")
T = TypeVar("T")
#: Pauses between enqueue attempts while Redis is unreachable (doubling, capped).
_RETRY_PAUSE_S = (0.05, 1.0)


def _translated(
    method: Callable[Concatenate[RedisBroker, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[RedisBroker, P], Coroutine[Any, Any, T]]:
    """Raise rediq's errors (naming the URL) instead of the client library's."""

    @functools.wraps(method)
    async def call(self: RedisBroker, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except Exception as exc:
            translated = translate_error(self.url, exc)
            if translated is exc:
                raise
            raise translated from exc

    return call


class RedisBroker(Broker):
    """Broker for every URL of :data:`~rediq_redis.topology.SCHEMES`: one server
    (``redis://``, ``rediss://``, ``unix://``), Sentinel and Cluster.

    Connects lazily on first use (or explicitly with :meth:`connect`), checking that the
    server is Redis >= 6.2; a connection failure is a one-line :class:`BrokerError` naming
    the URL (password masked) and what to check.
    """

    roles = frozenset(Role)  # every role

    def __init__(self, options: BrokerOptions, settings: BrokerSettings | None = None) -> None:
        self.url = options.url
        self.options = options
        self.settings = settings or BrokerSettings()
        self._session: Session | None = None
        self._cron_scripts: CronScripts | None = None
        self._results: ResultListener | None = None
        self._lock = asyncio.Lock()

    # --- lifecycle --------------------------------------------------------------------

    @_translated
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
        if topology.kind is Kind.SENTINEL:  # Sentinel support loads only for its URLs
            from .sentinel import probe_sentinels

            await probe_sentinels(
                topology, client_options(config, topology.kind), config.get("sentinel_kwargs")
            )
        client, blocking = make_clients(url, config)
        try:
            if is_cluster(client):  # fails fast (not after the re-send budget) at start
                await cast(RedisCluster, client).initialize()
            if is_cluster(blocking):  # its pub/sub needs the slot map before any command
                await cast(RedisCluster, blocking).initialize()
            server = await check_server(client)
            await check_protocol(client, NamespaceKeys(self.options.namespace))
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
            scripts=Scripts(client, self.settings.replay_window_ms, EventLengths.of(self.options)),
            keys=NamespaceKeys(self.options.namespace),
            settings=self.settings,
            timer_tick_s=server.timer_tick_s,
            enqueue_wait=enqueue_wait,
            settle_wait=settle_wait,
            line=None if is_cluster(client) else HotLine(client),
            sending=asyncio.Semaphore(sending_slots(pool_size(client))),
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        self._cron_scripts = None
        results, self._results = self._results, None
        if results is not None:
            await results.close()
        if session is not None:
            if session.line is not None:
                await session.line.close()
            await session.blocking.aclose()
            await session.client.aclose()

    # --- producer ---------------------------------------------------------------------

    @_translated
    async def enqueue(self, messages: Sequence[TaskMessage]) -> list[EnqueueOutcome]:
        """Store the messages; while Redis is unreachable, retry for up to the options'
        ``enqueue_retry_s`` with the very same calls (their nonces make a call that did
        reach Redis answer instead of storing its tasks twice)."""
        deadline = time.monotonic() + self.options.enqueue_retry_s
        pause = _RETRY_PAUSE_S[0]
        calls = None
        while True:
            try:
                session = await self._ready()
                calls = calls or producer.enqueue_calls(session, messages)
                return await producer.enqueue(session, messages, calls)
            except UNREACHABLE as exc:
                if pool_exhausted(exc) or time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)  # retry back-off while unreachable, not a poll
            pause = min(pause * 2, _RETRY_PAUSE_S[1])

    # --- consumer ---------------------------------------------------------------------

    @_translated
    async def fetch(
        self, queue: str, *, worker_id: str, limit: int, lease_ms: int, wait: bool = True
    ) -> FetchBatch:
        return await leasing.fetch(await self._ready(), queue, worker_id, limit, lease_ms, wait)

    @_translated
    async def extend_leases(
        self, worker_id: str, leases: Mapping[str, Sequence[Lease]], lease_ms: int
    ) -> set[Lease]:
        return await leasing.extend_leases(await self._ready(), worker_id, leases, lease_ms)

    @_translated
    async def settle(self, worker_id: str, settlements: Sequence[Settlement]) -> list[bool]:
        return await leasing.settle(await self._ready(), worker_id, settlements)

    @_translated
    async def release(self, worker_id: str, leases: Mapping[str, Sequence[Lease]]) -> int:
        return await leasing.release(await self._ready(), worker_id, leases)

    async def _followed(
        self, items: Callable[[Session], AsyncGenerator[T, None]]
    ) -> AsyncIterator[T]:
        """The items of a subscription, ``items(session)``; an unreachable server raises
        :class:`BrokerUnavailableError` (naming the URL), as every other call does."""
        try:
            async with contextlib.aclosing(items(await self._ready())) as following:
                async for item in following:
                    yield item
        except UNREACHABLE as exc:
            raise translate_error(self.url, exc) from exc

    async def cancellations(self) -> AsyncIterator[str]:
        async for task_id in self._followed(
            lambda session: channel_messages(session, session.keys.cancel_channel)
        ):
            yield task_id

    # --- events -----------------------------------------------------------------------

    async def events(self, cursors: Mapping[str, str], *, follow: bool) -> AsyncIterator[TaskEvent]:
        from .event_stream import read_events

        async for event in self._followed(lambda session: read_events(session, cursors, follow)):
            yield event

    # --- results --------------------------------------------------------------------

    @_translated
    async def get_task(self, task_id: str, queue: str | None = None) -> TaskRecord | None:
        from . import control

        return await control.get_task(await self._ready(), task_id, queue)

    @_translated
    async def get_tasks(self, tasks: Sequence[tuple[str, str]]) -> list[TaskRecord | None]:
        from . import control

        return await control.get_tasks(await self._ready(), tasks)

    @_translated
    async def wait_finished(
        self, task_id: str, queue: str, timeout_s: float | None
    ) -> TaskRecord | None:
        from .results import ResultListener

        session = await self._ready()
        if self._results is None:
            self._results = ResultListener(session, self.url)
        return await self._results.wait(session.keys.queue(queue), task_id, timeout_s)

    # --- control (imported on first use: a worker never calls it) ---------------------

    @_translated
    async def cancel(self, task_id: str, queue: str | None = None) -> CancelOutcome:
        from . import control

        return await control.cancel(await self._ready(), task_id, queue)

    @_translated
    async def delete(self, task_id: str, queue: str | None = None) -> bool:
        from . import control

        return await control.delete(await self._ready(), task_id, queue)

    @_translated
    async def requeue_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        from . import control

        return await control.requeue_dead(await self._ready(), queue, task_ids)

    @_translated
    async def delete_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        from . import operate

        return await operate.delete_dead(await self._ready(), queue, task_ids)

    @_translated
    async def purge_tasks(self, queue: str, states: Sequence[TaskState]) -> int:
        from . import operate

        return await operate.purge_tasks(await self._ready(), queue, states)

    @_translated
    async def cancel_group(self, group: str, queue: str | None = None) -> dict[str, CancelOutcome]:
        from . import operate

        return await operate.cancel_group(await self._ready(), group, queue)

    @_translated
    async def delete_group(self, group: str, queue: str | None = None) -> int:
        from . import operate

        return await operate.delete_group(await self._ready(), group, queue)

    @_translated
    async def queues(self) -> list[str]:
        from . import control

        return await control.queues(await self._ready())

    @_translated
    async def queue_known(self, queue: str) -> bool:
        from . import operate

        return await operate.queue_known(await self._ready(), queue)

    @_translated
    async def forget_queue(self, queue: str) -> bool:
        from . import operate

        return await operate.forget_queue(await self._ready(), queue)

    @_translated
    async def queue_stats(self, queue: str) -> QueueStats:
        from . import control

        return await control.queue_stats(await self._ready(), queue)

    @_translated
    async def queue_overview(self, queue: str, minutes: int = 15) -> QueueOverview:
        from . import operate

        return await operate.queue_overview(await self._ready(), queue, minutes)

    @_translated
    async def queue_history(
        self, queue: str, since_ms: int, until_ms: int, step_ms: int
    ) -> QueueHistory:
        from .history import queue_history

        window = HistoryWindow(since_ms, until_ms, step_ms)
        return await queue_history(await self._ready(), queue, window)

    @_translated
    async def list_tasks(
        self, queue: str, state: TaskState, *, limit: int = 100, cursor: str | None = None
    ) -> TaskPage:
        from . import operate

        return await operate.list_tasks(await self._ready(), queue, state, limit, cursor)

    @_translated
    async def pause(self, queue: str) -> bool:
        from . import operate

        return await operate.pause(await self._ready(), queue)

    @_translated
    async def resume(self, queue: str) -> bool:
        from . import operate

        return await operate.resume(await self._ready(), queue)

    # --- worker registry --------------------------------------------------------------

    @_translated
    async def heartbeat(self, worker: WorkerRecord, ttl_s: int) -> None:
        await registry.heartbeat(await self._ready(), worker, ttl_s)

    @_translated
    async def unregister_worker(self, worker_id: str) -> None:
        await registry.unregister_worker(await self._ready(), worker_id)

    @_translated
    async def workers(self) -> list[WorkerRecord]:
        return await registry.workers(await self._ready())

    @_translated
    async def stop_workers(self, worker_ids: Sequence[str]) -> int:
        return await stopping.stop_workers(await self._ready(), worker_ids)

    async def stop_requests(self, worker_id: str) -> AsyncIterator[None]:
        async for request in self._followed(
            lambda session: stopping.stop_requests(session, worker_id)
        ):
            yield request

    # --- workflows ----------------------------------------------------------------------

    @_translated
    async def store_workflow(self, workflow: WorkflowRecord) -> None:
        await workflows.store_workflow(await self._ready(), workflow)

    @_translated
    async def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        return await workflows.get_workflow(await self._ready(), workflow_id)

    # --- reports (progress and logs) ----------------------------------------------------

    @_translated
    async def report(
        self, worker_id: str, updates: Sequence[TrailUpdate], bounds: LogBounds
    ) -> list[bool]:
        return await reports.report(await self._ready(), worker_id, updates, bounds)

    @_translated
    async def get_report(self, task_id: str, queue: str) -> TaskReport | None:
        return await reports.get_report(await self._ready(), task_id, queue)

    # --- limits -------------------------------------------------------------------------

    @_translated
    async def set_limits(self, queue: str, limits: QueueLimits) -> None:
        await limiting.set_limits(await self._ready(), queue, limits)

    @_translated
    async def limits(self, queue: str) -> QueueFlow:
        return await limiting.queue_flow(await self._ready(), queue)

    # --- diagnosis (imported on first use) ---------------------------------------------

    @_translated
    async def diagnose(self) -> list[Check]:
        from . import doctor

        return await doctor.diagnose(await self._ready())

    @_translated
    async def namespaces(self) -> list[str]:
        from . import doctor

        return await doctor.namespaces(await self._ready())

    # --- cron schedules (imported on first use: a worker without schedules never calls it)

    async def _cron(self) -> tuple[Session, CronScripts]:
        session = await self._ready()
        if self._cron_scripts is None:
            self._cron_scripts = CronScripts(
                session.client, session.settings.replay_window_ms, session.scripts.events
            )
        return session, self._cron_scripts

    @_translated
    async def cron_register(
        self, queue: str, specs: Mapping[str, str], *, replace: bool = True
    ) -> CronRegistration:
        from . import cron

        return await cron.register(*await self._cron(), queue, specs, replace)

    @_translated
    async def cron_fire(self, message: TaskMessage, schedule: str, tick_ms: int | None) -> CronFire:
        from . import cron

        return await cron.fire(*await self._cron(), message, schedule, tick_ms)

    @_translated
    async def cron_entries(self, queue: str | None = None) -> list[CronEntry]:
        from . import cron

        return await cron.entries(await self._ready(), queue)

    @_translated
    async def cron_set_paused(self, queue: str, schedule: str, paused: bool) -> bool:
        from . import cron

        return await cron.set_paused(*await self._cron(), queue, schedule, paused)

    @_translated
    async def cron_forget(self, queue: str, schedule: str) -> bool:
        from . import cron

        return await cron.forget(*await self._cron(), queue, schedule)

    async def cron_changes(self) -> AsyncIterator[str]:
        from . import cron

        async for name in self._followed(cron.changes):
            yield name
