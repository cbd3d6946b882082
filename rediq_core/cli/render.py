"""How the control commands print: JSON documents (the stable schema of docs/control.md)
and rich tables."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from ..broker import TaskRecord, TaskState
from ..inspection import COUNTER_NAMES, QueueOverview, WorkerStatus

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = [
    "Column",
    "FittedTable",
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
        "waiting": o.waiting,
        "limited": o.limited,
        "scheduled": o.scheduled,
        "active": o.active,
        "dead": o.dead,
        "oldest_pending_age_s": o.oldest_pending_age_s,
        "totals": dict(o.totals),
        "rates_per_minute": {c: o.rate_per_minute(c, RATE_MINUTES) for c in COUNTER_NAMES},
        "minutes": [
            {
                "minute_ms": m.minute_ms,
                **{c: getattr(m, c) for c in COUNTER_NAMES},
                "runs": m.runs,
                "run_ms": m.run_ms,
            }
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


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a :class:`FittedTable`.

    :param rank: importance; at narrow widths the highest ranks are dropped first.
    :param short: a compact header used when the full headers do not fit.
    :param wraps: the cells may wrap at spaces (a list of names, a date and a time).
    :param flexible: long free text (an error message): takes the room left and is
        shortened with an ellipsis instead of widening the table.
    """

    header: str
    rank: int = 0
    short: str | None = None
    justify: str = "left"
    wraps: bool = False
    flexible: bool = False


#: Characters a column costs besides its content (padding and a border), and the table.
_COLUMN_COST, _TABLE_COST = 3, 1
#: The narrowest a flexible column gets.
_FLEXIBLE_MIN = 24


def _lines(cell: str) -> list[str]:
    return Text.from_markup(cell).plain.splitlines() or [""]


class FittedTable:
    """A table that fits the console it is printed on (a terminal's width, 80 columns
    included): when the full headers do not fit it uses the compact ones, then drops the
    least important columns, before any name is cut."""

    def __init__(self, title: str, columns: Sequence[Column], rows: Iterable[Sequence[str]]):
        self.title, self.columns, self.rows = title, tuple(columns), [tuple(r) for r in rows]

    def _natural(self, i: int, header: str) -> int:
        cells = [line for row in self.rows for line in _lines(row[i])]
        return max(Text(h).cell_len for h in [header, *cells])

    def _needed(self, i: int, header: str) -> int:
        """The fewest characters column ``i`` shows whole in."""
        column = self.columns[i]
        if column.flexible:
            return min(self._natural(i, header), max(_FLEXIBLE_MIN, Text(header).cell_len))
        if column.wraps:
            words = [w for row in self.rows for line in _lines(row[i]) for w in line.split()]
            return max(Text(w).cell_len for w in [header, *words])
        return self._natural(i, header)

    def _choose(self, width: int) -> tuple[list[int], bool]:
        """The columns shown (indexes) and whether with compact headers."""
        shown = list(range(len(self.columns)))
        for compact in (False, True):
            if self._total(shown, compact, needed=False) <= width:
                return shown, compact
        while len(shown) > 1 and self._total(shown, True, needed=True) > width:
            least = max(shown, key=lambda i: (self.columns[i].rank, i))
            if self.columns[least].rank == 0:
                break  # the essential columns stay; rich wraps what is left
            shown.remove(least)
        return shown, True

    def _header(self, i: int, compact: bool) -> str:
        column = self.columns[i]
        return (column.short or column.header) if compact else column.header

    def _total(self, shown: list[int], compact: bool, *, needed: bool) -> int:
        measure = self._needed if needed else self._natural
        widths = [measure(i, self._header(i, compact)) for i in shown]
        return sum(widths) + _COLUMN_COST * len(shown) + _TABLE_COST

    def table(self, width: int) -> Table:
        shown, compact = self._choose(width)
        spare = width - self._total(shown, compact, needed=True)
        table = Table(title=self.title)
        for i in shown:
            column, header = self.columns[i], self._header(i, compact)
            needed, natural = self._needed(i, header), self._natural(i, header)
            grant = max(0, min(spare, natural - needed))
            spare -= grant
            table.add_column(
                header,
                justify=column.justify,  # type: ignore[arg-type]
                no_wrap=not column.wraps,
                overflow="ellipsis" if column.flexible else "fold",
                min_width=needed if column.wraps else None,
                max_width=needed + grant if column.flexible or column.wraps else None,
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in shown))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


#: The queue overview's columns, most important first in rank.
OVERVIEW_COLUMNS = (
    Column("queue"),
    Column("state"),
    Column("pending", justify="right"),
    Column("scheduled", 2, "sched", "right"),
    Column("active", justify="right"),
    Column("dead", 1, justify="right"),
    Column("oldest pending", 3, "oldest", "right"),
    Column("enqueued", 8, justify="right"),
    Column("succeeded", 7, justify="right"),
    Column("failed", 4, justify="right"),
    Column("retried", 9, justify="right"),
    Column("expired", 10, justify="right"),
    Column(f"done/min ({RATE_MINUTES}m)", 5, "done/min", "right"),
    Column("succeeded per minute", 6, "per minute", "right"),
)


def queue_state(o: QueueOverview) -> str:
    """``paused`` or ``running``; ``no consumer`` instead of ``running`` (after ``paused``)
    when tasks are pending and no live worker consumes the queue."""
    paused = ["[yellow]paused[/]"] if o.paused else []
    if o.no_consumer:
        return ", ".join([*paused, "[red]no consumer[/]"])
    return paused[0] if paused else "running"


def overview_table(overviews: Iterable[QueueOverview], title: str = "queues") -> FittedTable:
    rows = [
        (
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
        for o in overviews
    ]
    return FittedTable(title, OVERVIEW_COLUMNS, rows)


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
