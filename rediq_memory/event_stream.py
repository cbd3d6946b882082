"""The task event stream of ``memory://``: a bounded list of events per queue, written
by the step that makes each transition, under the store's lock (so in the same atomic
step, as on Redis); readers sleep on the store's change announcements (no polling)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from rediq_core.broker import BrokerOptions, TaskError
from rediq_core.message import now_ms
from rediq_core.task_events import LATEST, OLDEST, TaskEvent, TaskEventKind

from .store import QueueState, Store, TaskEntry, sleep_until_change

__all__ = ["EventsMixin", "error_detail"]


def _key(position: str) -> tuple[int, int]:
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0)


def error_detail(error: TaskError | None) -> str:
    """``"<type>: <message>"`` (at most 200 characters), as the Redis scripts write it."""
    return f"{error.type}: {error.message}"[:200] if error is not None else ""


class EventsMixin:
    """``emit`` (called by every transition) and the ``events`` role method."""

    store: Store
    options: BrokerOptions

    def emit(self, q: QueueState, kind: TaskEventKind, entry: TaskEntry, detail: str = "") -> None:
        """Record one transition of ``entry`` (nothing when the queue keeps no events).
        Call with the store's lock held; the caller announces the change."""
        length = self.options.event_length(q.name)
        if length == 0:
            return
        now = now_ms()
        ms, seq = q.last_event
        ms, seq = (ms, seq + 1) if now <= ms else (now, 0)
        q.last_event = (ms, seq)
        m = entry.message
        q.events.append(
            TaskEvent(
                f"{q.name}:{ms}-{seq}", kind, q.name, m.id, m.name, ms, entry.retried + 1, detail
            )
        )
        while len(q.events) > length:
            q.events.popleft()

    async def events(self, cursors: Mapping[str, str], *, follow: bool) -> AsyncIterator[TaskEvent]:
        with self.store.lock:
            positions = {}
            for queue, cursor in cursors.items():
                if cursor == LATEST:
                    q = self.store.queues.get(queue)
                    ms, seq = q.last_event if q is not None else (0, 0)
                    cursor = f"{ms}-{seq}" if q is not None and q.events else OLDEST
                positions[queue] = _key(cursor)
        while True:
            with self.store.lock:
                batch = []
                for queue, after in positions.items():
                    q = self.store.queues.get(queue)
                    if q is not None:
                        batch += [e for e in q.events if _key(e.position) > after]
                future = None if batch or not follow else self.store.waiter()
            for event in batch:
                positions[event.queue] = _key(event.position)
                yield event
            if future is not None:
                await sleep_until_change(self.store, future, None)
            elif not batch:
                return
