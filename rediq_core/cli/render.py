"""How the control commands print: JSON documents (the stable schema of docs/control.md)
and rich tables."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from ..broker import TaskRecord, TaskState
from ..inspection import COUNTER_NAMES, QueueOverview, WorkerStatus

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = [
    "age",
    "console",
    "echo_json",
    "overview_json",
    "overview_table",
    "queue_state",
    "sparkline",
    "stamp",
    "task_json",
    "task_table",
    "tasks_table",
    "worker_json",
    "workers_table",
]

SPARKS = "▁▂▃▄▅▆▇█"
#: Rate columns average this many complete minutes.
RATE_MINUTES = 5


def console() -> Console:
    """A console for tables: the terminal's width on a TTY, wide enough not to wrap ids
    otherwise."""
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def echo_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def stamp(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def sparkline(values: Sequence[int]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, v * len(SPARKS) // (top + 1))] for v in values)


def _result(record: TaskRecord, app: Rediq | None) -> tuple[Any, str | None]:
    """The decoded result (if JSON can carry it) and a short printable form."""
    if record.state is not TaskState.SUCCEEDED or record.result is None:
        return None, None
    try:
        if app is None:
            raise LookupError("no app")
        value = app.serializer_for(record.serializer or app.serializer_name).loads(record.result)
    except Exception:
        return None, f"<{len(record.result)} bytes, serializer {record.serializer}>"
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None, repr(value)[:200]
    return value, repr(value)[:200]


def task_json(record: TaskRecord, app: Rediq | None = None) -> dict[str, Any]:
    value, printable = _result(record, app)
    error = record.error
    return {
        "id": record.id,
        "queue": record.queue,
        "state": record.state.value,
        "name": record.name,
        "priority": record.priority,
        "groups": list(record.groups),
        "retried": record.retried,
        "deliveries": record.deliveries,
        "worker": record.worker,
        "enqueued_at_ms": record.enqueued_at_ms,
        "started_at_ms": record.started_at_ms,
        "finished_at_ms": record.finished_at_ms,
        "due_at_ms": record.due_at_ms,
        "lease_deadline_ms": record.lease_deadline_ms,
        "result": value,
        "result_repr": printable,
        "error": None
        if error is None
        else {"type": error.type, "message": error.message, "traceback": error.traceback},
    }


def overview_json(o: QueueOverview) -> dict[str, Any]:
    return {
        "name": o.name,
        "paused": o.paused,
        "consumers": o.consumers,
        "no_consumer": o.no_consumer,
        "pending": o.pending,
        "scheduled": o.scheduled,
        "active": o.active,
        "dead": o.dead,
        "oldest_pending_age_s": o.oldest_pending_age_s,
        "totals": dict(o.totals),
        "rates_per_minute": {c: o.rate_per_minute(c, RATE_MINUTES) for c in COUNTER_NAMES},
        "minutes": [
            {"minute_ms": m.minute_ms, **{c: getattr(m, c) for c in COUNTER_NAMES}}
            for m in o.minutes
        ],
    }


def worker_json(w: WorkerStatus) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "running": w.running,
        "running_ids": list(w.running_ids),
        "processed": w.processed,
        "failed": w.failed,
        "started_at_ms": w.started_at_ms,
        "heartbeat_age_s": round(w.heartbeat_age_s, 3),
        "version": w.version,
        "stale": w.stale,
    }


def queue_state(o: QueueOverview) -> str:
    """``paused`` or ``running``; ``no consumer`` instead of ``running`` (after ``paused``)
    when tasks are pending and no live worker consumes the queue."""
    paused = ["[yellow]paused[/]"] if o.paused else []
    if o.no_consumer:
        return ", ".join([*paused, "[red]no consumer[/]"])
    return paused[0] if paused else "running"


def overview_table(overviews: Iterable[QueueOverview], title: str = "queues") -> Table:
    table = Table(title=title)
    for column in (
        "queue",
        "state",
        "pending",
        "scheduled",
        "active",
        "dead",
        "oldest pending",
        "enqueued",
        "succeeded",
        "failed",
        "retried",
        f"done/min ({RATE_MINUTES}m)",
        "succeeded per minute",
    ):
        table.add_column(column, justify="left" if column in ("queue", "state") else "right")
    for o in overviews:
        table.add_row(
            o.name,
            queue_state(o),
            str(o.pending),
            str(o.scheduled),
            str(o.active),
            str(o.dead),
            age(o.oldest_pending_age_s),
            *(str(o.totals.get(c, 0)) for c in COUNTER_NAMES),
            f"{o.rate_per_minute('succeeded', RATE_MINUTES):.1f}",
            sparkline([m.succeeded for m in o.minutes]),
        )
    return table


def workers_table(workers: Iterable[WorkerStatus]) -> Table:
    table = Table(title="workers")
    for column in (
        "name",
        "id",
        "host",
        "pid",
        "queues",
        "running",
        "processed",
        "failed",
        "started",
        "heartbeat",
        "version",
    ):
        table.add_column(column)
    for w in workers:
        beat = age(w.heartbeat_age_s) + (" [red]stale[/]" if w.stale else "")
        table.add_row(
            w.name,
            w.id,
            w.host,
            str(w.pid or "-"),
            ", ".join(w.queues),
            f"{w.running}/{w.concurrency or '?'}",
            str(w.processed),
            str(w.failed),
            stamp(w.started_at_ms),
            beat,
            w.version,
        )
    return table


def tasks_table(records: Iterable[TaskRecord], title: str) -> Table:
    table = Table(title=title)
    for column in (
        "id",
        "name",
        "state",
        "priority",
        "groups",
        "retried",
        "when",
        "worker",
        "error",
    ):
        table.add_column(column)
    for r in records:
        when = {
            TaskState.SCHEDULED: r.due_at_ms,
            TaskState.ACTIVE: r.lease_deadline_ms,
            TaskState.FAILED: r.finished_at_ms,
        }.get(r.state, r.enqueued_at_ms)
        error = f"{r.error.type}: {r.error.message}"[:80] if r.error else ""
        table.add_row(
            r.id,
            r.name or "?",
            r.state.value,
            str(r.priority or 0),
            ", ".join(r.groups),
            str(r.retried),
            stamp(when),
            r.worker or "",
            error,
        )
    return table


def task_table(record: TaskRecord, app: Rediq | None = None) -> Table:
    data = task_json(record, app)
    table = Table(title=f"task {record.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if key == "result":
            continue
        if key.endswith("_at_ms") or key == "lease_deadline_ms":
            value = stamp(value)
        elif key == "error" and value:
            value = f"{value['type']}: {value['message']}"
        elif key == "groups":
            value = ", ".join(value)
        table.add_row(key.removesuffix("_ms"), "-" if value is None else str(value))
    return table
