"""``rediq cron APP``: list schedules; ``pause``, ``resume``, ``trigger``, ``forget`` one.

The schedules are read from the broker (where the workers serving them store them), so
the listing shows every deployment's schedules, including orphaned ones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import rich_click as click

from .. import defaults
from .worker_cmd import load_app

if TYPE_CHECKING:
    from ..app import Rediq
    from ..cron import CronControl, ScheduleStatus

__all__ = ["cron"]

T = TypeVar("T")


def _run(app: Rediq, action: Callable[[CronControl], Awaitable[T]]) -> T:
    from ..errors import RediqError

    async def main() -> T:
        try:
            return await action(app.cron_control)
        finally:
            await app.close()

    try:
        return asyncio.run(main())
    except RediqError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ms: int | None, zone: str) -> str:
    if ms is None:
        return "-"
    from ..crontab import load_zone

    moment = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).astimezone(load_zone(zone))
    return moment.isoformat(timespec="seconds")


def _table(statuses: list[ScheduleStatus]) -> None:
    from rich.console import Console
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
    Console().print(table)


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "allow_interspersed_args": True},
)
@click.argument("app_spec", metavar="APP")
@click.option(
    "--redis-url",
    envvar=defaults.ENV_REDIS_URL,
    default=None,
    help="Broker URL (default: the app's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def cron(ctx: click.Context, app_spec: str, redis_url: str | None, as_json: bool) -> None:
    """List the cron schedules stored by APP's workers (`module:app`), with their next
    three fire times and last run. Subcommands pause, resume, trigger or forget one."""
    app = load_app(app_spec)
    if redis_url:
        app.redis_url = redis_url
    ctx.obj = app
    if ctx.invoked_subcommand is not None:
        return
    statuses = _run(app, lambda control: control.list())
    unstored = sorted(set(app.schedules) - {s.name for s in statuses})
    if as_json:
        click.echo(json.dumps([s.as_json() for s in statuses], indent=2))
        return
    _table(statuses)
    if unstored:
        click.echo(
            f"In APP's code but not stored yet (no worker serving them has started):"
            f" {', '.join(unstored)}"
        )


def _action(name: str, doc: str, verb: str) -> click.Command:
    @click.command(name=name, help=doc)
    @click.argument("schedule")
    @click.pass_obj
    def command(app: Rediq, schedule: str) -> None:
        result: Any = _run(app, lambda control: getattr(control, name)(schedule))
        suffix = f" as task {result}" if isinstance(result, str) else ""
        click.echo(f"schedule {schedule!r} {verb}{suffix}")

    return command


cron.add_command(_action("pause", "Stop firing SCHEDULE (its ticks pass without runs).", "paused"))
cron.add_command(_action("resume", "Fire SCHEDULE again from its next tick.", "resumed"))
cron.add_command(_action("trigger", "Run SCHEDULE once now (even when paused).", "triggered"))
cron.add_command(_action("forget", "Remove a stored (orphaned) SCHEDULE.", "forgotten"))
