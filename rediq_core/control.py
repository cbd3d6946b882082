"""The control API: ``app.control`` inspects and operates queues, tasks and workers.

Every method is a thin, typed layer over three roles of the broker contract
(``rediq_core.roles``: results, control and registry):
each change is one atomic step in the broker and is safe while workers run. The CLI
(``rediq queues``, ``rediq tasks``, ...) and ``rediq top`` are built on this class.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from . import defaults, roles
from .broker import Broker
from .errors import AmbiguousWorkerError, ConfigurationError
from .flow import BURST_SHARE_MS, QueueFlow, QueueLimits, Rate
from .history import history_window
from .inspection import QueueHistory, QueueOverview, TaskPage, WorkerStatus
from .records import CancelOutcome, TaskRecord, TaskState, WorkerRecord
from .scaling import DEFAULT_TARGET_DRAIN_S, DEFAULT_WINDOW_MINUTES, QueueScaling, estimate
from .shard_views import merge_flows, merge_histories, merge_overviews, page_across, shard_order
from .shards import QueueShards, logical_queue, parse_shard
from .tasklogs import TaskReport

__all__ = ["PURGEABLE_STATES", "Control", "worker_status"]

#: The states ``purge`` removes by default: everything that waits (not running tasks).
PURGEABLE_STATES = (
    TaskState.PENDING,
    TaskState.WAITING,
    TaskState.LIMITED,
    TaskState.SCHEDULED,
    TaskState.FAILED,
)


#: The most minutes a queue overview reads (the per-minute ring of the Redis broker).
MINUTE_SLOTS_READ = 59


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def split_limits(queue: str, limits: QueueLimits, shards: int) -> list[QueueLimits]:
    """A queue's own limits as its ``shards`` shards each hold them: evenly split."""
    if shards == 1:
        return [limits]
    concurrency = limits.concurrency
    if concurrency is not None and concurrency < shards:
        raise ConfigurationError(
            f"concurrency={concurrency} for queue {queue!r}: it has {shards} shards, each"
            f" holding a share; give at least {shards}"
        )
    shares = []
    for i in range(shards):
        share = None if concurrency is None else concurrency // shards + (i < concurrency % shards)
        rate = limits.rate
        if rate is not None:  # the count over a period as many times longer
            period = rate.period_ms * shards
            rate = Rate(rate.count, period, max(1, rate.count * BURST_SHARE_MS // period))
        shares.append(QueueLimits(concurrency=share, rate=rate))
    return shares


def worker_status(record: WorkerRecord) -> WorkerStatus:
    """A registry entry as the control API reports it (``stale``: heartbeat overdue)."""
    info: Mapping[str, Any] = record.info
    running_ids = info.get("running_ids")
    return WorkerStatus(
        id=record.id,
        name=record.name,
        host=str(info.get("host", "")),
        pid=_int(info.get("pid")),
        queues=record.queues,
        concurrency=_int(info.get("concurrency")),
        running=_int(info.get("running")) or 0,
        running_ids=tuple(str(i) for i in running_ids) if isinstance(running_ids, list) else (),
        processed=_int(info.get("processed")) or 0,
        failed=_int(info.get("failed")) or 0,
        started_at_ms=_int(info.get("started_at_ms")),
        heartbeat_age_s=record.heartbeat_age_s,
        version=str(info.get("version", "")),
        stale=record.heartbeat_age_s > defaults.WORKER_STALE_AFTER_S,
        info=dict(info),
    )


class Control:
    """Inspect and operate the queues and workers of one broker (``app.control``).

    A sharded queue (docs/scaling.md) is one queue here: its overview and counters are
    its shards' summed, an operation on it applies to every shard, and a listing reads
    shard after shard; a shard's own name (``emails#3of8``) addresses that shard alone.
    The shards are those ``shards`` declares and those the broker holds.

    Raises :class:`~rediq_core.roles.MissingRoleError` if the broker does not declare the
    results, control and registry roles."""

    def __init__(self, broker: Broker, shards: QueueShards | None = None) -> None:
        self.broker = broker
        self.declared = shards or QueueShards()
        self._results = roles.results(broker)
        self._control = roles.control(broker)
        self._registry = roles.registry(broker)

    # --- tasks ------------------------------------------------------------------------

    async def task(self, task_id: str, queue: str | None = None) -> TaskRecord | None:
        """Everything known of a task (looked up in every queue unless ``queue`` is given)."""
        if queue is None:
            return await self._results.get_task(task_id, None)
        names = await self.shards(queue)
        if len(names) == 1:
            return await self._results.get_task(task_id, names[0])
        found = await self._results.get_tasks([(task_id, name) for name in names])
        return next((record for record in found if record is not None), None)

    async def _locate(self, task_id: str, queue: str | None) -> str | None:
        """The broker queue of a task of ``queue`` (None: look in every queue, or a
        sharded queue's shards); None when not found."""
        if queue is not None and parse_shard(queue) is None:
            names = await self.shards(queue)
            if len(names) == 1:
                return names[0]
        record = await self.task(task_id, queue)
        return record.queue if record is not None else None

    async def report(self, task_id: str, queue: str) -> TaskReport | None:
        """The task's progress and log lines (``set_progress``, logging), or None when it
        has none or the broker keeps none (no reports role)."""
        if not roles.supports(self.broker, roles.Role.REPORTS):
            return None
        found = await self._locate(task_id, queue)
        return (
            None if found is None else await roles.reports(self.broker).get_report(task_id, found)
        )

    async def tasks(
        self,
        queue: str,
        state: TaskState = TaskState.PENDING,
        *,
        limit: int = 100,
        cursor: str | None = None,
    ) -> TaskPage:
        """A page of ``queue``'s tasks in ``state``: pending in run order, scheduled by due
        time, active by lease deadline (with their worker), failed (dead letters) newest
        first with their error. Pass ``page.next_cursor`` back for the next page. A sharded
        queue is listed shard after shard (each in its order)."""
        return await self._page(queue, TaskState(state), limit, cursor)

    async def _page(self, queue: str, state: TaskState, limit: int, cursor: str | None) -> TaskPage:
        names = await self.shards(queue)
        if len(names) == 1:
            return await self._control.list_tasks(names[0], state, limit=limit, cursor=cursor)

        async def read(name: str, count: int, inner: str | None) -> TaskPage:
            return await self._control.list_tasks(name, state, limit=count, cursor=inner)

        return await page_across(names, read, limit, cursor)

    async def cancel(self, task_id: str, queue: str | None = None) -> CancelOutcome:
        """Cancel a waiting task at once, or ask its worker to cancel it if it runs."""
        if queue is None:
            return await self._control.cancel(task_id, None)
        found = await self._locate(task_id, queue)
        if found is None:
            return CancelOutcome.NOT_FOUND
        return await self._control.cancel(task_id, found)

    async def cancel_group(self, group: str, queue: str | None = None) -> dict[str, CancelOutcome]:
        """Cancel every unfinished task tagged ``group`` (see ``TaskCall.groups()``)."""
        if queue is None:
            return await self._control.cancel_group(group, None)
        outcomes: dict[str, CancelOutcome] = {}
        for name in await self.shards(queue):
            outcomes.update(await self._control.cancel_group(group, name))
        return outcomes

    async def delete(self, task_id: str, queue: str | None = None) -> bool:
        """Forget a task that is not running (its record and result); False if not found
        or running (cancel it first)."""
        if queue is None:
            return await self._control.delete(task_id, None)
        found = await self._locate(task_id, queue)
        return found is not None and await self._control.delete(task_id, found)

    async def delete_group(self, group: str, queue: str | None = None) -> int:
        """Forget every task tagged ``group`` that is not running (waiting, dead, or ended
        with its result still kept); return how many."""
        if queue is None:
            return await self._control.delete_group(group, None)
        return sum([await self._control.delete_group(group, n) for n in await self.shards(queue)])

    # --- queues -----------------------------------------------------------------------

    async def queues(self) -> list[str]:
        """Every queue that has received a task (or was paused); a sharded queue once,
        by its name."""
        return sorted({logical_queue(name) for name in await self._control.queues()})

    async def shards(self, queue: str, *, known: Sequence[str] | None = None) -> list[str]:
        """The broker queues that hold ``queue``'s tasks: its shards (those declared and
        those the broker holds, e.g. left by another number of shards), or ``[queue]``.
        A shard's own name gives itself. ``known``: the broker's queues, when already read."""
        if parse_shard(queue) is not None:
            return [queue]
        declared = self.declared.names(queue) if self.declared.count(queue) > 1 else ()
        if known is None:
            known = await self._control.queues()
        found = [n for n in known if logical_queue(n) == queue and n != queue]
        names = sorted({*declared, *found}, key=shard_order)
        if not names:
            return [queue]
        return [queue, *names] if queue in known else names  # tasks from before the shards

    async def queue_known(self, queue: str) -> bool:
        """Whether ``queue`` was ever seen (it is listed by :meth:`queues` or the broker
        holds anything of it); False for a name never used, such as a typo."""
        return any([await self._control.queue_known(name) for name in await self.shards(queue)])

    async def forget(self, queue: str) -> bool:
        """Forget an empty queue: it leaves :meth:`queues`, its pause flag and counters go
        (its next task brings it back). False, changing nothing, while it holds pending,
        scheduled, active or dead tasks: purge them (or let them end) first. A sharded
        queue's empty shards are forgotten; True only when every one was."""
        return all([await self._control.forget_queue(name) for name in await self.shards(queue)])

    async def queue(self, name: str, *, minutes: int = 15) -> QueueOverview:
        """Counts per state, oldest pending age, counters, the last ``minutes``, and how
        many live workers consume it (``no_consumer``: tasks pending and none does). A
        sharded queue's are its shards' summed (:meth:`shard_overviews` gives each)."""
        return await self._overview(name, minutes, await self.workers())

    async def shard_overviews(self, name: str, *, minutes: int = 15) -> list[QueueOverview]:
        """:meth:`queue` for each shard of ``name`` (``[queue(name)]`` when not sharded)."""
        workers = await self.workers()
        return [await self._overview(s, minutes, workers, [s]) for s in await self.shards(name)]

    async def overview(self, *, minutes: int = 15) -> list[QueueOverview]:
        """:meth:`queue` for every queue."""
        workers = await self.workers()
        known = await self._control.queues()
        return [
            await self._overview(name, minutes, workers, await self.shards(name, known=known))
            for name in sorted({logical_queue(q) for q in known})
        ]

    async def _overview(
        self,
        name: str,
        minutes: int,
        workers: Sequence[WorkerStatus],
        names: Sequence[str] | None = None,
    ) -> QueueOverview:
        queue = logical_queue(name)
        consumers = sum(1 for w in workers if not w.stale and queue in map(logical_queue, w.queues))
        parts = [
            await self._control.queue_overview(shard, minutes)
            for shard in (names or await self.shards(name))
        ]
        return replace(merge_overviews(name, parts), consumers=consumers)

    async def history(
        self,
        queue: str,
        *,
        since: dt.datetime | dt.timedelta = dt.timedelta(hours=1),
        until: dt.datetime | dt.timedelta | None = None,
        step: dt.timedelta | None = None,
    ) -> QueueHistory:
        """``queue``'s counters (enqueued, succeeded, failed, retried, expired) and run
        time from ``since`` (an aware datetime, or a timedelta back from now; default the
        last hour) to ``until`` (default now, the current step included), in steps of
        ``step`` (default: about 360 points). Minutes are kept for a day and hours for 14
        days: a window reaching back more than a day takes steps of whole hours. Raises
        ValueError for a window it cannot answer, saying what to pass instead."""
        window = history_window(since, until, step)
        parts = [
            await self._control.queue_history(
                name, window.since_ms, window.until_ms, window.step_ms
            )
            for name in await self.shards(queue)
        ]
        return merge_histories(queue, parts)

    async def scaling(
        self,
        queue: str,
        *,
        target_drain_s: float = DEFAULT_TARGET_DRAIN_S,
        window_minutes: int = DEFAULT_WINDOW_MINUTES,
    ) -> QueueScaling:
        """``queue``'s autoscaling signal: the workers it needs to keep up with its arrivals
        and to work its backlog off within ``target_drain_s`` (Little's law over the last
        ``window_minutes`` complete minutes; formula in ``rediq_core.scaling``), with the
        inputs of the estimate and the oldest ready task's age."""
        if window_minutes < 1 or window_minutes > MINUTE_SLOTS_READ:
            raise ValueError(
                f"window_minutes must be between 1 and {MINUTE_SLOTS_READ}, not {window_minutes}"
            )
        workers = await self.workers()
        overview = await self._overview(queue, window_minutes + 1, workers)
        return estimate(
            overview,
            workers,
            window_minutes=window_minutes,
            target_drain_s=target_drain_s,
            default_concurrency=defaults.WORKER_TASK_CONCURRENCY,
        )

    async def purge(self, queue: str, states: Sequence[TaskState] | None = None) -> int:
        """Remove every task of ``queue`` in ``states`` (default: pending, waiting,
        scheduled and dead letters; running tasks are never purged); return how many. A
        purged workflow step ends the steps waiting for it as cancelled."""
        chosen = PURGEABLE_STATES if states is None else tuple(TaskState(s) for s in states)
        return sum([await self._control.purge_tasks(n, chosen) for n in await self.shards(queue)])

    async def pause(self, queue: str) -> bool:
        """Workers stop leasing from ``queue`` within one fetch; running tasks finish.
        False if it was paused already. Any name is accepted (a queue can be paused before
        its first task): check :meth:`queue_known` first to refuse typos. A sharded
        queue's every shard is paused."""
        return any([await self._control.pause(name) for name in await self.shards(queue)])

    async def resume(self, queue: str) -> bool:
        """Undo :meth:`pause`; False if the queue was not paused."""
        return any([await self._control.resume(name) for name in await self.shards(queue)])

    # --- limits -----------------------------------------------------------------------

    async def set_limits(
        self, queue: str, *, concurrency: int | None = None, rate: str | Rate | None = None
    ) -> QueueLimits:
        """Set ``queue``'s own limits, for every task of it across every worker: at most
        ``concurrency`` running, at most ``rate`` starts (``"500/s"``, ``"10/m"``, ...).
        None removes that limit: ``set_limits(queue)`` clears both. Tasks a raised or
        cleared limit lets start do so at once. Raises
        :class:`~rediq_core.roles.MissingRoleError` if the broker has no limits role.

        A sharded queue's limits are split evenly among its shards (the producers spread
        its tasks evenly): ``concurrency`` must be at least its number of shards."""
        limits = QueueLimits(
            concurrency=concurrency,
            rate=rate if isinstance(rate, Rate) or rate is None else Rate.parse(rate, "rate"),
        )
        names = await self.shards(queue)
        for name, share in zip(names, split_limits(queue, limits, len(names)), strict=True):
            await roles.limits(self.broker).set_limits(name, share)
        return limits

    async def limits(self, queue: str | None = None) -> list[QueueFlow]:
        """The own limits of ``queue`` (or of every queue) and the use of every limit its
        tasks hold or wait for: running tasks per concurrency limit, tasks held back, a
        rate's next start. A sharded queue's are its shards' summed."""
        role = roles.limits(self.broker)
        names = [queue] if queue is not None else await self.queues()
        return [
            merge_flows(name, [await role.limits(shard) for shard in await self.shards(name)])
            for name in names
        ]

    # --- dead letters -----------------------------------------------------------------

    async def dead_letters(
        self, queue: str, *, limit: int = 100, cursor: str | None = None
    ) -> TaskPage:
        """Dead-lettered tasks, newest first, each with the error that ended it."""
        return await self._page(queue, TaskState.FAILED, limit, cursor)

    async def requeue_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Move dead letters (all, or these) back to pending with fresh counters."""
        names = await self.shards(queue)
        return sum([await self._control.requeue_dead(name, task_ids) for name in names])

    async def delete_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (all, or these); return how many."""
        names = await self.shards(queue)
        return sum([await self._control.delete_dead(name, task_ids) for name in names])

    # --- workers ----------------------------------------------------------------------

    async def workers(self) -> list[WorkerStatus]:
        """Registered workers, by name; ``stale`` marks an overdue heartbeat."""
        found = [worker_status(r) for r in await self._registry.workers()]
        return sorted(found, key=lambda w: (w.name, w.id))

    async def stop_worker(self, name: str, *, every: bool = False) -> list[str]:
        """Ask the worker with this id, or the worker with this name, to shut down
        gracefully (finish running and prefetched tasks); return the ids asked.

        A name that several registered workers share raises :class:`AmbiguousWorkerError`
        (naming their ids, nothing asked) unless ``every`` is true: then each is asked."""
        workers = await self._registry.workers()
        ids = [w.id for w in workers if w.id == name] or sorted(
            w.id for w in workers if w.name == name
        )
        if len(ids) > 1 and not every:
            raise AmbiguousWorkerError(name, ids)
        await self._registry.stop_workers(ids)
        return ids

    async def stop_all_workers(self) -> list[str]:
        """Ask every registered worker to shut down gracefully; return their ids."""
        ids = [w.id for w in await self._registry.workers()]
        await self._registry.stop_workers(ids)
        return ids
