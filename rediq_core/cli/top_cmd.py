"""``rediq top``: a live full-screen view of queues, workers and the latest failures.

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
from collections.abc import Iterator
from typing import TYPE_CHECKING

import rich_click as click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..broker import TaskRecord
from ..inspection import QueueOverview, WorkerStatus
from .render import (
    age,
    console,
    echo_json,
    overview_json,
    overview_table,
    stamp,
    task_json,
    worker_json,
)
from .target import Target, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["Snapshot", "render", "take_snapshot", "top"]

#: Failures shown at the bottom of the view.
FAILURES_SHOWN = 8


class Snapshot:
    """Everything one frame shows, read in one go."""

    def __init__(
        self,
        queues: list[QueueOverview],
        workers: list[WorkerStatus],
        failures: list[TaskRecord],
        taken_at: float,
    ) -> None:
        self.queues, self.workers, self.failures = queues, workers, failures
        self.taken_at = taken_at


async def take_snapshot(app: Rediq, minutes: int) -> Snapshot:
    control = app.control
    queues = await control.overview(minutes=minutes)
    failures: list[TaskRecord] = []
    for overview in queues:
        if overview.dead:
            failures += (await control.dead_letters(overview.name, limit=FAILURES_SHOWN)).tasks
    failures.sort(key=lambda r: r.finished_at_ms or 0, reverse=True)
    return Snapshot(queues, await control.workers(), failures[:FAILURES_SHOWN], time.time())


def _workers_table(workers: list[WorkerStatus]) -> Table:
    table = Table(title="workers")
    for column in ("name", "host:pid", "queues", "running", "processed", "failed", "heartbeat"):
        table.add_column(column)
    for w in workers:
        table.add_row(
            w.name,
            f"{w.host}:{w.pid}",
            ", ".join(w.queues),
            f"{w.running}/{w.concurrency or '?'}",
            str(w.processed),
            str(w.failed),
            age(w.heartbeat_age_s) + (" [red]stale[/]" if w.stale else ""),
        )
    return table


def _failures_table(failures: list[TaskRecord]) -> Table:
    table = Table(title="latest failures")
    for column in ("when", "queue", "task", "id", "error"):
        table.add_column(column)
    for r in failures:
        error = f"{r.error.type}: {r.error.message}" if r.error else ""
        table.add_row(stamp(r.finished_at_ms), r.queue, r.name or "?", r.id, error[:100])
    return table


def render(snapshot: Snapshot, source: str) -> Group:
    header = Text.assemble(
        ("rediq top", "bold"),
        f"  {source}  ",
        time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at)),
        ("   q quits", "dim"),
    )
    return Group(
        header,
        overview_table(snapshot.queues),
        _workers_table(snapshot.workers),
        _failures_table(snapshot.failures),
    )


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

    with _keys(), Live(console=console(), screen=True, auto_refresh=False) as live:
        while True:
            live.update(render(await take_snapshot(app, minutes), source), refresh=True)
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
    """A live view of queues, workers and the latest failures (q quits)."""
    from .worker_cmd import redact_url

    def source(app: Rediq) -> str:
        return f"{redact_url(app.redis_url)} ns={app.namespace}"

    if target.as_json:
        snap = run(target, lambda app: take_snapshot(app, minutes))
        echo_json(
            {
                "queues": [overview_json(o) for o in snap.queues],
                "workers": [worker_json(w) for w in snap.workers],
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
