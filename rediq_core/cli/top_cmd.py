"""``rediq top``: a live full-screen view of queues, workers, running tasks (with their
progress) and the latest failures.

Refreshes every ``--interval`` seconds (rich Live on the alternate screen); ``q`` quits.
When stdout is not a terminal (or with ``--once``) it prints one snapshot and exits;
``--json`` prints that snapshot as one JSON document (queues, workers, failures).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import rich_click as click
from rich.console import Group, RenderableType
from rich.text import Text

from ..broker import TaskRecord, TaskState
from ..errors import BrokerError
from ..inspection import QueueOverview, WorkerStatus
from ..tasklogs import TaskProgress
from .render import (
    Column,
    FittedTable,
    age,
    console,
    echo_json,
    overview_json,
    overview_table,
    stamp,
    task_json,
    worker_json,
)
from .report_render import progress_json, progress_text
from .target import Target, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["Outage", "Snapshot", "render", "take_snapshot", "top"]

#: Failures shown at the bottom of the view.
FAILURES_SHOWN = 8
#: Running tasks shown with their progress (one progress read each per frame).
RUNNING_SHOWN = 8


#: Active tasks read per call when counting each worker's leases.
LEASES_PAGE = 500
#: A frame whose reads take longer than this shows the view as disconnected.
SNAPSHOT_TIMEOUT_S = 10.0


class Snapshot:
    """Everything one frame shows, read in one go.

    ``held`` counts each worker's leases (running and prefetched tasks) as the queues
    list them: the same source as the queues' ``active``, read in the same frame, so the
    two panels agree (a worker's own ``running`` is as of its last heartbeat).
    """

    def __init__(
        self,
        queues: list[QueueOverview],
        workers: list[WorkerStatus],
        failures: list[TaskRecord],
        taken_at: float,
        held: Mapping[str, int] | None = None,
        running: list[tuple[TaskRecord, TaskProgress | None]] | None = None,
    ) -> None:
        self.queues, self.workers, self.failures = queues, workers, failures
        self.taken_at = taken_at
        #: The first running tasks (of the queues' leases) and their progress.
        self.running = running or []
        self.held: Mapping[str, int] = (
            held if held is not None else {w.id: w.running for w in workers}
        )


@dataclass(frozen=True, slots=True)
class Outage:
    """The broker stopped answering at ``since`` (epoch s); ``error`` is the last error."""

    since: float
    error: str

    def line(self) -> Text:
        when = time.strftime("%H:%M:%S", time.localtime(self.since))
        text = Text(f"disconnected since {when}: {self.error}", style="bold red")
        text.no_wrap, text.overflow = True, "ellipsis"
        return text


async def _held_leases(
    app: Rediq, queues: list[QueueOverview], running: list[TaskRecord]
) -> Counter[str]:
    """Each worker's leases; the first RUNNING_SHOWN active tasks go to ``running``."""
    held: Counter[str] = Counter()
    for overview in queues:
        cursor: str | None = None
        while overview.active:
            page = await app.control.tasks(
                overview.name, TaskState.ACTIVE, limit=LEASES_PAGE, cursor=cursor
            )
            held.update(r.worker for r in page.tasks if r.worker)
            running += page.tasks[: RUNNING_SHOWN - len(running)]
            cursor = page.next_cursor
            if cursor is None:
                break
    return held


async def take_snapshot(app: Rediq, minutes: int) -> Snapshot:
    control = app.control
    queues = await control.overview(minutes=minutes)
    active: list[TaskRecord] = []
    held = await _held_leases(app, queues, active)
    running = []
    for record in active:
        report = await control.report(record.id, record.queue)
        running.append((record, report.progress if report else None))
    failures: list[TaskRecord] = []
    for overview in queues:
        if overview.dead:
            failures += (await control.dead_letters(overview.name, limit=FAILURES_SHOWN)).tasks
    failures.sort(key=lambda r: r.finished_at_ms or 0, reverse=True)
    workers = await control.workers()
    return Snapshot(queues, workers, failures[:FAILURES_SHOWN], time.time(), held, running)


WORKER_COLUMNS = (
    Column("name"),
    Column("host:pid", 5),
    Column("queues", 1, wraps=True),
    Column("active", justify="right"),
    Column("processed", 3, justify="right"),
    Column("failed", 4, justify="right"),
    Column("heartbeat", 2),
)
RUNNING_COLUMNS = (
    Column("started", 1, wraps=True),
    Column("queue", 2),
    Column("task"),
    Column("id", 3),
    Column("progress", flexible=True),
)
FAILURE_COLUMNS = (
    Column("when", 1, wraps=True),
    Column("queue", 2),
    Column("task"),
    Column("id", 3),
    Column("error", flexible=True),
)


def _workers_table(snapshot: Snapshot) -> FittedTable:
    rows = [
        (
            w.name,
            f"{w.host}:{w.pid}",
            ", ".join(w.queues),
            f"{snapshot.held.get(w.id, 0)}/{w.concurrency or '?'}",
            str(w.processed),
            str(w.failed),
            age(w.heartbeat_age_s) + (" [red]stale[/]" if w.stale else ""),
        )
        for w in snapshot.workers
    ]
    return FittedTable("workers", WORKER_COLUMNS, rows)


def _running_table(running: list[tuple[TaskRecord, TaskProgress | None]]) -> FittedTable:
    rows = [
        (stamp(r.started_at_ms), r.queue, r.name or "?", r.id, progress_text(p)) for r, p in running
    ]
    return FittedTable("running tasks", RUNNING_COLUMNS, rows)


def _failures_table(failures: list[TaskRecord]) -> FittedTable:
    rows = [
        (
            stamp(r.finished_at_ms),
            r.queue,
            r.name or "?",
            r.id,
            f"{r.error.type}: {r.error.message}" if r.error else "",
        )
        for r in failures
    ]
    return FittedTable("latest failures", FAILURE_COLUMNS, rows)


def render(snapshot: Snapshot | None, source: str, outage: Outage | None = None) -> Group:
    """One frame: the header, the outage line while the broker does not answer, and the
    panels of the last snapshot read (``None``: nothing read yet)."""
    when = time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at)) if snapshot else "-"
    header = Text.assemble(("rediq top", "bold"), f"  {source}  ", when, ("   q quits", "dim"))
    parts: list[RenderableType] = [header]
    if outage is not None:
        parts.append(outage.line())
    if snapshot is not None:
        parts += [overview_table(snapshot.queues), _workers_table(snapshot)]
        if snapshot.running:
            parts.append(_running_table(snapshot.running))
        parts.append(_failures_table(snapshot.failures))
    return Group(*parts)


@contextlib.contextmanager
def _keys() -> Iterator[None]:
    """Unbuffered, unechoed keyboard input while the view runs."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_pressed() -> bool:
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(ready) and os.read(sys.stdin.fileno(), 64).lower().startswith(b"q")


async def _live(app: Rediq, source: str, interval: float, minutes: int) -> None:
    from rich.live import Live

    snapshot: Snapshot | None = None
    outage: Outage | None = None
    with _keys(), Live(console=console(), screen=True, auto_refresh=False) as live:
        while True:
            try:
                snapshot = await asyncio.wait_for(take_snapshot(app, minutes), SNAPSHOT_TIMEOUT_S)
                outage = None
            except (BrokerError, OSError) as exc:  # OSError: ConnectionError, TimeoutError
                error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
                outage = Outage(outage.since if outage else time.time(), error)
            live.update(render(snapshot, source, outage), refresh=True)
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline:  # key checks between frames
                if _quit_pressed():
                    return
                await asyncio.sleep(0.05)


@click.command()
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--minutes",
    type=click.IntRange(1, 60),
    default=15,
    show_default=True,
    help="Minutes in the throughput sparkline.",
)
@click.option("--once", is_flag=True, help="Print one snapshot and exit (as when piped).")
@control_command
def top(target: Target, interval: float, minutes: int, once: bool) -> None:
    """A live view of queues, workers, running tasks with their progress, and the latest
    failures (q quits)."""
    from .worker_cmd import redact_url

    def source(app: Rediq) -> str:
        return f"{redact_url(app.redis_url)} ns={app.namespace}"

    if target.as_json:
        snap = run(target, lambda app: take_snapshot(app, minutes))
        echo_json(
            {
                "queues": [overview_json(o) for o in snap.queues],
                "workers": [
                    {**worker_json(w), "active": snap.held.get(w.id, 0)} for w in snap.workers
                ],
                "running": [
                    {**task_json(r), "progress": progress_json(p)} for r, p in snap.running
                ],
                "failures": [task_json(r) for r in snap.failures],
            }
        )
        return
    if once or not (sys.stdout.isatty() and sys.stdin.isatty()):

        async def snapshot(app: Rediq) -> Group:
            return render(await take_snapshot(app, minutes), source(app))

        console().print(run(target, snapshot))
        return
    run(target, lambda app: _live(app, source(app), interval, minutes))
