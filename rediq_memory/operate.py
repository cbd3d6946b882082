"""The control and registry roles of ``memory://``: inspection, bulk operations, pause,
the worker registry and stop requests."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence

from rediq_core.broker import (
    Broker,
    CancelOutcome,
    QueueStats,
    TaskState,
    WorkerRecord,
)
from rediq_core.history import MINUTE_MS, POINT_FIELDS, HistoryWindow, into_steps
from rediq_core.inspection import (
    COUNTER_NAMES,
    HistoryPoint,
    MinuteCounts,
    QueueHistory,
    QueueOverview,
    TaskPage,
)
from rediq_core.message import now_ms
from rediq_core.task_events import TaskEventKind

from .limits import release_keys
from .store import QueueState, Store, TaskEntry, run_order, sleep_until_change

__all__ = ["OperateMixin"]

LISTABLE = (
    TaskState.PENDING,
    TaskState.WAITING,
    TaskState.LIMITED,
    TaskState.SCHEDULED,
    TaskState.ACTIVE,
    TaskState.FAILED,
)
PURGEABLE = (
    TaskState.PENDING,
    TaskState.WAITING,
    TaskState.LIMITED,
    TaskState.SCHEDULED,
    TaskState.FAILED,
)


def _order(q: QueueState, t: TaskEntry, state: TaskState) -> tuple[int, int, str]:
    """Pending and limited in run order, waiting in enqueue order, scheduled by due time,
    active by lease deadline, dead letters newest first."""
    if state in (TaskState.PENDING, TaskState.LIMITED):
        return run_order(t)
    if state is TaskState.SCHEDULED:
        return (t.due_ms or 0, t.seq, "")
    if state is TaskState.WAITING:
        return (t.seq, 0, "")
    if state is TaskState.ACTIVE:
        return (t.lease_deadline_ms or 0, t.seq, "")
    return (-q.dead_order.get(t.message.id, 0), 0, "")


class OperateMixin(Broker):
    """Implemented over the store and the helpers :class:`MemoryBroker` provides."""

    store: Store

    def maintain(self, q: QueueState, now: int) -> None:
        raise NotImplementedError

    def find(self, task_id: str, queue: str | None) -> tuple[QueueState, TaskEntry] | None:
        raise NotImplementedError

    def cancel_found(self, found: tuple[QueueState, TaskEntry] | None) -> CancelOutcome:
        raise NotImplementedError

    def steps_after(self, entry: TaskEntry, state: str, now: int) -> None:
        raise NotImplementedError

    def emit(self, q: QueueState, kind: TaskEventKind, entry: TaskEntry, detail: str = "") -> None:
        raise NotImplementedError

    def _queues(self, queue: str | None) -> list[QueueState]:
        names = [queue] if queue is not None else list(self.store.queues)
        found = [self.store.queues[n] for n in names if n in self.store.queues]
        now = now_ms()
        for q in found:
            self.maintain(q, now)
        return found

    def _remove(self, q: QueueState, task_ids: Sequence[str]) -> int:
        removed = 0
        for task_id in task_ids:
            entry = q.tasks.pop(task_id, None)
            if entry is not None:
                if entry.state.unfinished or task_id in q.dead_order:
                    self.emit(q, TaskEventKind.DELETED, entry, entry.state.value)
                q.dead_order.pop(task_id, None)
                release_keys(q, entry)
                removed += 1
                if entry.state.unfinished:  # a workflow step: the steps after it never run
                    self.steps_after(entry, "deleted", now_ms())
        self.store.changed()
        return removed

    # --- results and control ----------------------------------------------------------

    async def delete(self, task_id: str, queue: str | None = None) -> bool:
        with self.store.lock:
            found = self.find(task_id, queue)
            if found is None or found[1].state is TaskState.ACTIVE:
                return False
            return self._remove(found[0], [task_id]) == 1

    async def requeue_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        with self.store.lock:
            requeued = 0
            for q in self._queues(queue):
                for task_id in list(q.dead_order if task_ids is None else task_ids):
                    entry = q.tasks.get(task_id)
                    if entry is None or task_id not in q.dead_order:
                        continue
                    del q.dead_order[task_id]
                    entry.state = TaskState.PENDING
                    entry.seq = self.store.position(q, entry.message)
                    entry.retried = entry.lost = 0
                    entry.failed_attempts.clear()
                    entry.error = entry.finished_at_ms = entry.expires_at_ms = None
                    entry.trail = None
                    self.emit(q, TaskEventKind.ENQUEUED, entry, "requeued")
                    requeued += 1
            self.store.changed()
            return requeued

    async def queues(self) -> list[str]:
        with self.store.lock:
            return sorted(self.store.queues)

    async def queue_stats(self, queue: str) -> QueueStats:
        with self.store.lock:
            q = (self._queues(queue) or [QueueState(queue)])[0]
            counts = {s: len(q.in_state(s)) for s in LISTABLE}
            return QueueStats(
                queue,
                counts[TaskState.PENDING],
                counts[TaskState.SCHEDULED],
                counts[TaskState.ACTIVE],
                len(q.dead_order),
                q.totals["enqueued"],
                q.totals["succeeded"],
                q.totals["failed"],
                q.totals["retried"],
                counts[TaskState.WAITING],
                counts[TaskState.LIMITED],
                q.totals["expired"],
            )

    # --- operating --------------------------------------------------------------------

    async def list_tasks(
        self, queue: str, state: TaskState, *, limit: int = 100, cursor: str | None = None
    ) -> TaskPage:
        from .broker import record_of

        if state not in LISTABLE:
            raise ValueError(
                f"cannot list {state} tasks; listable: pending, waiting, limited, scheduled,"
                " active, failed"
            )
        with self.store.lock:
            found = self._queues(queue)
            if not found:
                return TaskPage([])
            q = found[0]
            entries = q.in_state(state)
            entries.sort(key=lambda t: _order(q, t, state))
            start = int(cursor or 0)
            page = entries[start : start + limit]
            more = start + limit < len(entries)
            return TaskPage([record_of(q, e) for e in page], str(start + limit) if more else None)

    async def cancel_group(self, group: str, queue: str | None = None) -> dict[str, CancelOutcome]:
        with self.store.lock:
            outcomes = {}
            for q in self._queues(queue):
                for entry in list(q.tasks.values()):
                    if group in entry.message.groups and entry.state.unfinished:
                        outcomes[entry.message.id] = self.cancel_found((q, entry))
            self.store.changed()
            return outcomes

    async def delete_group(self, group: str, queue: str | None = None) -> int:
        with self.store.lock:
            return sum(
                self._remove(
                    q,
                    [
                        i
                        for i, t in q.tasks.items()
                        if group in t.message.groups and t.state is not TaskState.ACTIVE
                    ],
                )
                for q in self._queues(queue)
            )

    async def purge_tasks(self, queue: str, states: Sequence[TaskState]) -> int:
        if not set(states) <= set(PURGEABLE):
            raise ValueError(
                "only pending, waiting, limited, scheduled and failed tasks can be purged"
            )
        with self.store.lock:
            return sum(
                self._remove(
                    q,
                    [
                        i
                        for i, t in q.tasks.items()
                        if t.state in states
                        and (t.state is not TaskState.FAILED or i in q.dead_order)
                    ],
                )
                for q in self._queues(queue)
            )

    async def delete_dead(self, queue: str, task_ids: Sequence[str] | None = None) -> int:
        with self.store.lock:
            return sum(
                self._remove(q, [i for i in (task_ids or list(q.dead_order)) if i in q.dead_order])
                for q in self._queues(queue)
            )

    async def queue_overview(self, queue: str, minutes: int = 15) -> QueueOverview:
        stats = await self.queue_stats(queue)
        with self.store.lock:
            q = (self._queues(queue) or [QueueState(queue)])[0]
            now = now_ms()
            pending = q.in_state(TaskState.PENDING)
            oldest = min((t.message.enqueued_at_ms for t in pending), default=None)
            current = now // 60_000 * 60_000
            empty: Counter[str] = Counter()
            buckets = tuple(
                MinuteCounts(
                    m,
                    **{k: q.minutes.get(m, empty)[k] for k in (*COUNTER_NAMES, "runs", "run_ms")},
                )
                for m in range(current - (minutes - 1) * 60_000, current + 1, 60_000)
            )
            return QueueOverview(
                name=queue,
                paused=q.paused,
                pending=stats.pending,
                scheduled=stats.scheduled,
                active=stats.active,
                dead=stats.dead,
                oldest_pending_age_s=None if oldest is None else max(0, now - oldest) / 1000,
                totals={k: q.totals[k] for k in COUNTER_NAMES},
                minutes=buckets,
                waiting=stats.waiting,
                limited=stats.limited,
            )

    async def queue_history(
        self, queue: str, since_ms: int, until_ms: int, step_ms: int
    ) -> QueueHistory:
        window = HistoryWindow(since_ms, until_ms, step_ms)
        with self.store.lock:
            q = self.store.queues.get(queue)
            found = [
                HistoryPoint(m, MINUTE_MS, **{k: counts[k] for k in POINT_FIELDS})
                for m, counts in (q.minutes.items() if q else ())
            ]
        return QueueHistory(queue, since_ms, until_ms, step_ms, into_steps(window, found))

    async def queue_known(self, queue: str) -> bool:
        with self.store.lock:
            return queue in self.store.queues

    async def forget_queue(self, queue: str) -> bool:
        with self.store.lock:
            for q in self._queues(queue):
                if any(t.state.unfinished or t.state is TaskState.FAILED for t in q.tasks.values()):
                    return False
            self.store.queues.pop(queue, None)  # kept results of its ended tasks go too
            self.store.changed()
            return True

    async def pause(self, queue: str) -> bool:
        return self._set_paused(queue, True)

    async def resume(self, queue: str) -> bool:
        return self._set_paused(queue, False)

    def _set_paused(self, queue: str, paused: bool) -> bool:
        with self.store.lock:
            q = self.store.queue(queue)
            if q.paused == paused:
                return False
            q.paused = paused
            self.store.changed()
            return True

    # --- worker registry --------------------------------------------------------------

    def _expire_workers(self) -> None:
        now = time.monotonic()
        for worker_id in [
            i for i, (_, beat, ttl) in self.store.workers.items() if now - beat > ttl
        ]:
            del self.store.workers[worker_id]

    async def heartbeat(self, worker: WorkerRecord, ttl_s: int) -> None:
        with self.store.lock:
            self.store.workers[worker.id] = (worker, time.monotonic(), ttl_s)

    async def unregister_worker(self, worker_id: str) -> None:
        with self.store.lock:
            self.store.workers.pop(worker_id, None)
            self.store.stop_requests.pop(worker_id, None)

    async def workers(self) -> list[WorkerRecord]:
        with self.store.lock:
            self._expire_workers()
            now = time.monotonic()
            return [
                WorkerRecord(r.id, r.name, r.queues, round(now - beat, 3), r.info)
                for r, beat, _ in self.store.workers.values()
            ]

    async def stop_workers(self, worker_ids: Sequence[str]) -> int:
        with self.store.lock:
            self._expire_workers()
            known = [w for w in worker_ids if w in self.store.workers]
            for worker_id in known:
                self.store.stop_requests[worker_id] += 1
            self.store.changed()
            return len(known)

    async def stop_requests(self, worker_id: str) -> AsyncIterator[None]:
        seen = 0
        while True:
            with self.store.lock:
                fresh = self.store.stop_requests[worker_id] - seen
                seen += fresh
                future = None if fresh else self.store.waiter()
            for _ in range(fresh):
                yield None
            if future is not None:
                await sleep_until_change(self.store, future, None)
