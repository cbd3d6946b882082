"""Read-only control commands: ``rediq queues``, ``rediq workers``, ``rediq tasks QUEUE``
and ``rediq task ID``."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import rich_click as click

from .. import roles
from ..broker import TaskRecord, TaskState
from ..inspection import QueueOverview, TaskPage
from ..tasklogs import TaskLogs, TaskReport
from .render import (
    console,
    echo_json,
    overview_json,
    overview_table,
    task_json,
    task_table,
    tasks_table,
    worker_json,
    workers_table,
)
from .report_render import logs_json, logs_table, progress_json, progress_text
from .target import CommandError, Target, UsageFailure, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["known_queue", "parse_state", "queues", "task", "tasks", "workers"]

#: State names the commands accept (``dead`` is the dead-letter set, state ``failed``).
STATE_NAMES = {
    "pending": TaskState.PENDING,
    "waiting": TaskState.WAITING,
    "limited": TaskState.LIMITED,
    "scheduled": TaskState.SCHEDULED,
    "active": TaskState.ACTIVE,
    "failed": TaskState.FAILED,
    "dead": TaskState.FAILED,
}


def parse_state(name: str, allowed: tuple[str, ...]) -> TaskState:
    if name.lower() not in allowed:
        raise UsageFailure(f"unknown state {name!r}; use one of: {', '.join(allowed)}")
    return STATE_NAMES[name.lower()]


async def known_queue(app: Rediq, queue: str, hint: str = "") -> None:
    """A one-line error (exit 1, ending with ``hint``) for a queue never seen: it never
    received a task, was never paused and holds nothing (a typo, usually)."""
    if await app.control.queue_known(queue):
        return
    names = await app.control.queues()
    raise CommandError(f"unknown queue {queue!r} (known: {', '.join(names) or 'none'}){hint}")


@click.command()
@click.option(
    "--minutes",
    type=click.IntRange(1, 60),
    default=15,
    show_default=True,
    help="Minutes of per-minute counters to include.",
)
@click.option(
    "--shards",
    "by_shard",
    is_flag=True,
    help="Also show each shard of a sharded queue (docs/scaling.md).",
)
@control_command
def queues(target: Target, minutes: int, by_shard: bool) -> None:
    """Every queue: counts per state, oldest pending age, counters and recent rates. A
    sharded queue is one row, its shards' sums (``--shards``: and a row per shard)."""

    async def read(app: Rediq) -> tuple[list[QueueOverview], dict[str, list[QueueOverview]]]:
        control = app.control
        overviews = await control.overview(minutes=minutes)
        known = await roles.control(app.get_broker()).queues()
        shards: dict[str, list[QueueOverview]] = {}
        for o in overviews:
            names = await control.shards(o.name, known=known)
            if len(names) > 1:
                shards[o.name] = (
                    await control.shard_overviews(o.name, minutes=minutes)
                    if by_shard
                    else [replace(o, name=n) for n in names]  # only the count is shown
                )
        return overviews, shards

    overviews, shards = run(target, read)
    if target.as_json:
        found = []
        for o in overviews:
            row = {**overview_json(o), "shards": len(shards.get(o.name, ())) or 1}
            if by_shard and o.name in shards:
                row["shard_detail"] = [overview_json(s) for s in shards[o.name]]
            found.append(row)
        echo_json({"queues": found})
        return
    rows = []
    for o in overviews:
        count = len(shards.get(o.name, ()))
        rows.append(replace(o, name=f"{o.name} ({count} shards)") if count else o)
        if by_shard:
            rows += [replace(s, name=f"  {s.name}") for s in shards.get(o.name, ())]
    console().print(overview_table(rows))


@click.command()
@control_command
def workers(target: Target) -> None:
    """Registered workers: queues, running tasks, counts and heartbeat age."""
    found = run(target, lambda app: app.control.workers())
    if target.as_json:
        echo_json({"workers": [worker_json(w) for w in found]})
    else:
        console().print(workers_table(found))


@click.command()
@click.argument("queue")
@click.option(
    "--state",
    "state_name",
    default="pending",
    show_default=True,
    help="pending, waiting (workflow steps), limited (held by a limit), scheduled, active or dead.",
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--cursor", default=None, help="The next_cursor of a previous page.")
@control_command
def tasks(target: Target, queue: str, state_name: str, limit: int, cursor: str | None) -> None:
    """List QUEUE's tasks in one state (pending in run order, scheduled by due time,
    active by lease deadline, dead letters newest first)."""
    state = parse_state(state_name, tuple(STATE_NAMES))

    async def action(app: Rediq) -> tuple[Rediq, TaskPage]:
        await known_queue(app, queue)
        try:
            return app, await app.control.tasks(queue, state, limit=limit, cursor=cursor)
        except ValueError as exc:
            raise UsageFailure(str(exc)) from None

    app, page = run(target, action)
    if target.as_json:
        echo_json(
            {
                "queue": queue,
                "state": state_name.lower(),
                "tasks": [task_json(r, app) for r in page.tasks],
                "next_cursor": page.next_cursor,
            }
        )
        return
    console().print(tasks_table(page.tasks, f"{queue}: {state_name.lower()} tasks"))
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}")


@click.command()
@click.argument("task_id")
@click.option("--queue", default=None, help="Look only in this queue.")
@click.option("--logs", "show_logs", is_flag=True, help="Also print its log lines.")
@control_command
def task(target: Target, task_id: str, queue: str | None, show_logs: bool) -> None:
    """Everything known of one task: state, queue, times, worker, progress, result or
    error; with --logs, the log lines it emitted while it ran."""

    async def action(app: Rediq) -> tuple[Rediq, TaskRecord | None, TaskReport | None]:
        record = await app.control.task(task_id, queue)
        report = await app.control.report(record.id, record.queue) if record else None
        return app, record, report

    app, record, report = run(target, action)
    if record is None:
        raise CommandError(f"no task {task_id} (never enqueued, deleted, or its result expired)")
    progress = report.progress if report else None
    logs = report.logs if report else TaskLogs()
    if target.as_json:
        data = {**task_json(record, app), "progress": progress_json(progress)}
        if show_logs:
            data["logs"] = logs_json(logs)
        echo_json({"task": data})
        return
    table = task_table(record, app)
    table.add_row("progress", progress_text(progress))
    console().print(table)
    if show_logs:
        if logs.lines or logs.dropped:
            console().print(logs_table(logs, record.id))
        else:
            click.echo("no log lines")
