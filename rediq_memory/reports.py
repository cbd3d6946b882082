"""The reports role in memory: a task's progress and log lines live in its entry (a
:class:`Trail`), so they go with it (forgotten, purged, or expired with its result)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rediq_core.broker import TaskState
from rediq_core.message import now_ms
from rediq_core.task_events import TaskEventKind
from rediq_core.tasklogs import (
    LogBounds,
    TaskLogs,
    TaskReport,
    TrailUpdate,
    decode_lines,
    decode_progress,
    progress_detail,
)

if TYPE_CHECKING:
    from .store import QueueState, Store, TaskEntry

__all__ = ["ReportsMixin", "Trail"]


@dataclass(slots=True)
class Trail:
    """A task's kept progress (encoded) and log lines (encoded), bounded on write."""

    progress: str | None = None
    lines: deque[str] = field(default_factory=deque)
    size: int = 0
    dropped: int = 0

    def add(self, update: TrailUpdate, bounds: LogBounds) -> None:
        if update.progress is not None:
            self.progress = update.progress
        self.dropped += update.dropped
        for line in update.lines:
            self.lines.append(line)
            self.size += len(line.encode()) + 1
        while self.lines and (len(self.lines) > bounds.max_lines or self.size > bounds.max_bytes):
            self.size -= len(self.lines.popleft().encode()) + 1
            self.dropped += 1


class ReportsMixin:
    store: Store

    if TYPE_CHECKING:

        def maintain(self, q: QueueState, now: int) -> None: ...

        def emit(
            self, q: QueueState, kind: TaskEventKind, entry: TaskEntry, detail: str = ""
        ) -> None: ...

    async def report(
        self, worker_id: str, updates: Sequence[TrailUpdate], bounds: LogBounds
    ) -> list[bool]:
        answers = []
        with self.store.lock:
            now = now_ms()
            for u in updates:
                q = self.store.queues.get(u.queue)
                if q is not None:
                    self.maintain(q, now)
                entry = q.tasks.get(u.task_id) if q is not None else None
                held = (
                    entry is not None
                    and entry.state is TaskState.ACTIVE
                    and entry.worker == worker_id
                    and entry.deliveries == u.delivery
                    and (entry.lease_deadline_ms or 0) > now
                )
                if held and entry is not None:
                    if entry.trail is None:
                        entry.trail = Trail()
                    entry.trail.add(u, bounds)
                    if u.progress is not None and q is not None:
                        detail = progress_detail(decode_progress(u.progress))
                        self.emit(q, TaskEventKind.PROGRESS, entry, detail)
                answers.append(held)
        return answers

    async def get_report(self, task_id: str, queue: str) -> TaskReport | None:
        with self.store.lock:
            q = self.store.queues.get(queue)
            if q is not None:
                self.maintain(q, now_ms())
            entry = q.tasks.get(task_id) if q is not None else None
            trail = entry.trail if entry is not None else None
            if trail is None:
                return None
            return TaskReport(
                progress=decode_progress(trail.progress),
                logs=TaskLogs(lines=decode_lines(list(trail.lines)), dropped=trail.dropped),
            )
