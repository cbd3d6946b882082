"""``rediq cron``: list schedules; ``pause``, ``resume``, ``trigger``, ``forget`` one.

The schedules are read from the broker (where the workers serving them store them), so
the listing shows every deployment's schedules, including orphaned ones. The command
takes the target options of every control command (``--app``, ``--redis-url``,
``--namespace``, ``--json``; before or after the subcommand) and the original form
``rediq cron APP ...`` (the same as ``--app APP``); errors are one ``error: ...`` line,
exit 1 when nothing was done (unknown schedule, already paused, not paused), 2 on a
usage error.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import rich_click as click
from click import get_current_context

from .. import roles
from ..errors import UnknownNameError
from .render import console, echo_json
from .target import (
    CommandError,
    Target,
    control_command,
    empty_namespace_hint,
    report_paused,
    run,
)

if TYPE_CHECKING:
    from ..app import Rediq
    from ..cron import ScheduleStatus

__all__ = ["cron"]

T = TypeVar("T")


def _run(target: Target, action: Callable[[Rediq], Awaitable[T]]) -> T:
    """:func:`run` for a named schedule: an unknown name is a one-line error (naming the
    namespaces found when the app's holds nothing)."""

    async def named(app: Rediq) -> T:
        try:
            return await action(app)
        except UnknownNameError as exc:
            hint = await empty_namespace_hint(app)
            raise CommandError(f"{exc}; {hint}" if hint else str(exc)) from None

    return run(target, named, check_namespace=False)


def _when(ms: int | None, zone: str) -> str:
    if ms is None:
        return "-"
    from ..crontab import load_zone

    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(load_zone(zone))
    return moment.isoformat(timespec="seconds")


def _table(statuses: list[ScheduleStatus]) -> None:
    from rich.table import Table

    table = Table(title="rediq cron schedules")
    for column in (
        "schedule",
        "task",
        "queue",
        "expression",
        "status",
        "next fire times",
        "last run",
    ):
        table.add_column(column)
    for s in statuses:
        status = "orphaned" if s.orphaned else "paused" if s.paused else "active"
        last = (
            "-"
            if s.last_task_id is None
            else (
                f"{_when(s.last_tick_ms, s.timezone)}: {s.last_state}"
                if s.last_tick_ms is not None
                else f"{s.last_state}"
            )
        )
        table.add_row(
            s.name,
            s.task,
            s.queue,
            f"{s.expression} ({s.timezone})",
            status,
            "\n".join(_when(t, s.timezone) for t in s.next_ticks_ms) or "-",
            last,
        )
    console().print(table)


class CronGroup(click.RichGroup):
    """``rediq cron APP ...`` (the original form) means ``rediq cron --app APP ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and ":" in args[0] and not args[0].startswith("-"):
            args = ["--app", args[0], *args[1:]]
        return super().parse_args(ctx, args)


async def _listing(app: Rediq) -> tuple[list[ScheduleStatus], list[str]]:
    statuses = await app.cron_control.list()
    unstored = sorted(set(app.schedules) - {s.name for s in statuses})
    if not statuses and not unstored and (hint := await empty_namespace_hint(app)):
        raise CommandError(hint)
    return statuses, unstored


@click.group(
    cls=CronGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@control_command
def cron(target: Target) -> None:
    """List the cron schedules stored by the workers, with their next three fire times
    and last run. Subcommands pause, resume, trigger or forget one. The original form
    `rediq cron module:app ...` still works."""
    ctx = get_current_context()
    ctx.obj = target
    if ctx.invoked_subcommand is not None:
        return
    statuses, unstored = run(target, _listing, check_namespace=False)
    if target.as_json:
        click.echo(json.dumps([s.as_json() for s in statuses], indent=2))
        return
    _table(statuses)
    if unstored:
        click.echo(
            f"In APP's code but not stored yet (no worker serving them has started):"
            f" {', '.join(unstored)}"
        )


def _pausing(name: str, paused: bool, doc: str) -> click.Command:
    @click.command(name=name, help=doc)
    @click.argument("schedule")
    @control_command
    def command(target: Target, schedule: str) -> None:
        async def action(app: Rediq) -> bool:
            entry = next(
                (
                    e
                    for e in await roles.cron(app.get_broker()).cron_entries()
                    if e.spec.name == schedule
                ),
                None,
            )
            if entry is not None and entry.paused == paused:
                return False
            await (app.cron_control.pause if paused else app.cron_control.resume)(schedule)
            return True

        report_paused(target, "schedule", schedule, paused, _run(target, action))

    return command


@click.command(name="trigger")
@click.argument("schedule")
@control_command
def trigger(target: Target, schedule: str) -> None:
    """Run SCHEDULE once now (even when paused)."""
    task_id: Any = _run(target, lambda app: app.cron_control.trigger(schedule))
    if target.as_json:
        echo_json({"schedule": schedule, "task_id": task_id})
    else:
        click.echo(f"schedule {schedule!r} triggered as task {task_id}")


@click.command(name="forget")
@click.argument("schedule")
@control_command
def forget(target: Target, schedule: str) -> None:
    """Remove a stored (orphaned) SCHEDULE."""
    _run(target, lambda app: app.cron_control.forget(schedule))
    if target.as_json:
        echo_json({"schedule": schedule, "forgotten": True})
    else:
        click.echo(f"schedule {schedule!r} forgotten")


cron.add_command(
    _pausing(
        "pause",
        True,
        "Stop firing SCHEDULE (its ticks pass without runs); exit 1 if already paused.",
    )
)
cron.add_command(
    _pausing("resume", False, "Fire SCHEDULE again from its next tick; exit 1 if not paused.")
)
cron.add_command(trigger)
cron.add_command(forget)
