"""``rediq events [QUEUE]... [--follow] [--since ...] [--json]``: the task event stream.

One line per event (time, queue, kind, task, name, attempt, detail), or with ``--json``
one JSON object per line (``TaskEvent.to_json()``), flushed as each event comes, so a
pipe (``| jq``, a log shipper) sees it at once. ``--follow`` waits for new events
(blocking reads, no polling) until Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from typing import TYPE_CHECKING

import rich_click as click
from rich.text import Text

from ..errors import ConfigurationError
from ..task_events import EventSince, TaskEvent, TaskEventKind
from .render import console, stamp
from .target import CommandError, Target, UsageFailure, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["events", "parse_since"]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STYLES = {
    TaskEventKind.SUCCEEDED: "green",
    TaskEventKind.FAILED: "bold red",
    TaskEventKind.DEAD_LETTERED: "bold red",
    TaskEventKind.RETRIED: "yellow",
    TaskEventKind.CANCELLED: "magenta",
    TaskEventKind.EXPIRED: "magenta",
    TaskEventKind.DELETED: "magenta",
    TaskEventKind.STARTED: "cyan",
}
NO_EVENTS_HINT = (
    "no events: the event stream records only when the app sets event_stream_length > 0"
    " (docs/observability.md, 'Event stream')"
)


def parse_since(values: tuple[str, ...], follow: bool) -> EventSince:
    """``--since`` values: ``$``, ``0``, event ids, an ISO time (UTC without a zone) or a
    time ago (``30s``, ``10m``, ``2h``, ``1d``). Default: ``$`` when following, else ``0``."""
    if not values:
        return "$" if follow else "0"
    if len(values) > 1 or (":" in values[0] and not _is_time(values[0])):
        return list(values)
    value = values[0]
    if value in ("$", "0"):
        return value
    if ago := _AGO.match(value):
        seconds = float(ago.group(1)) * _UNIT_S[ago.group(2)]
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageFailure(
            f"--since {value!r}: give an event id (QUEUE:MS-SEQ), '$', '0', an ISO time"
            " or a time ago (30s, 10m, 2h, 1d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _is_time(value: str) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _line(event: TaskEvent) -> Text:
    text = Text(f"{stamp(event.time_ms)}.{event.time_ms % 1000:03d}  ")
    text.append(f"{event.queue}  ")
    text.append(f"{event.kind.value:<13}", style=_STYLES.get(event.kind, ""))
    text.append(f"  {event.task_id}  {event.task_name}  #{event.attempt}")
    if event.detail:
        text.append(f"  {event.detail}", style="dim")
    return text


@click.command()
@click.argument("queues", nargs=-1, metavar="[QUEUE]...")
@click.option(
    "-f", "--follow", is_flag=True, help="Wait for new events and print them as they come."
)
@click.option(
    "--since",
    multiple=True,
    metavar="ID|$|0|TIME",
    help="Start after this event id (repeat: one per queue), '$' (only new events), '0'"
    " (every event kept), an ISO time or a time ago (10m). Default: '$' with --follow,"
    " else '0'.",
)
@control_command
def events(target: Target, queues: tuple[str, ...], follow: bool, since: tuple[str, ...]) -> None:
    """The task event stream of QUEUEs (default: every known queue): enqueued, started,
    retried, succeeded, failed, cancelled, expired ... With --json, one JSON object per line."""
    start = parse_since(since, follow)
    out = console()

    async def action(app: Rediq) -> int:
        printed = 0
        try:
            async for event in app.events(list(queues) or None, start, follow=follow):
                if target.as_json:
                    sys.stdout.write(json.dumps(event.to_json()) + "\n")
                else:
                    out.print(_line(event), soft_wrap=True)
                sys.stdout.flush()
                printed += 1
        except ConfigurationError as exc:
            raise UsageFailure(str(exc)) from None
        return printed

    try:
        printed = run(target, action)
    except KeyboardInterrupt:
        return
    if not printed and not follow:
        raise CommandError(NO_EVENTS_HINT)
