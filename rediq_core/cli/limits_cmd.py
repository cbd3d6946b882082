"""``rediq limits [QUEUE]``: the queues' own limits and the use of every limit; set or
clear a queue's with ``--concurrency``, ``--rate`` and ``--clear``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import rich_click as click
from rich.table import Table

from ..errors import ConfigurationError
from ..flow import QueueFlow, Rate
from .inspect_cmds import known_queue
from .render import console, echo_json, stamp
from .target import Target, UsageFailure, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["limits"]

#: What clears one limit on the command line.
_NONE = ("none", "off", "0")


def _concurrency(text: str | None) -> int | None:
    if text is None or text.lower() in _NONE:
        return None
    if not text.isdigit():
        raise UsageFailure(f"--concurrency {text!r}: expected a number >= 1, or 'none'")
    return int(text)


def _rate(text: str | None) -> Rate | None:
    if text is None or text.lower() in _NONE:
        return None
    try:
        return Rate.parse(text, "--rate")
    except ConfigurationError as exc:
        raise UsageFailure(str(exc)) from None


@click.command()
@click.argument("queue", required=False)
@click.option("--concurrency", help="At most N of QUEUE's tasks running ('none' removes it).")
@click.option("--rate", help="At most R starts of QUEUE's tasks: 500/s, 10/m, 5/h ('none').")
@click.option("--clear", is_flag=True, help="Remove both of QUEUE's own limits.")
@control_command
def limits(
    target: Target, queue: str | None, concurrency: str | None, rate: str | None, clear: bool
) -> None:
    """The limits of QUEUE (or of every queue): its own concurrency limit and rate, and for
    every limit its tasks hold or wait for (its own and the tasks' rate_limit and
    concurrency_limit, per key) how many run under it, how many it holds back, and when a
    rate lets the next one start. With --concurrency, --rate or --clear, set QUEUE's own
    limits first (an option not given keeps its value)."""
    changing = clear or concurrency is not None or rate is not None
    if changing and queue is None:
        raise UsageFailure("name the QUEUE whose limits to set")
    if clear and (concurrency is not None or rate is not None):
        raise UsageFailure("--clear removes both limits: give it alone")

    async def action(app: Rediq) -> list[QueueFlow]:
        if changing and queue is not None:
            current = (await app.control.limits(queue))[0].limits
            await app.control.set_limits(
                queue,
                concurrency=None
                if clear
                else (current.concurrency if concurrency is None else _concurrency(concurrency)),
                rate=None if clear else (current.rate if rate is None else _rate(rate)),
            )
        elif queue is not None:
            await known_queue(app, queue)
        return await app.control.limits(queue)

    flows = run(target, action)
    if target.as_json:
        echo_json({"limits": [flow.as_json() for flow in flows]})
        return
    console().print(_table(flows))


def _table(flows: list[QueueFlow]) -> Table:
    table = Table(title="limits")
    for column in ("queue", "limit", "running", "limited", "next start"):
        table.add_column(column)
    for flow in flows:
        uses = {use.name: use for use in flow.uses}
        own = flow.limits
        rows = []
        if own.concurrency is not None:
            rows.append((f"queue: at most {own.concurrency} running", uses.pop("c", None)))
        if own.rate is not None:
            rows.append((f"queue: {own.rate.text}", uses.pop("r", None)))
        rows += [(name, use) for name, use in uses.items()]
        if not rows:
            rows.append(("none", None))
        for n, (label, use) in enumerate(rows):
            table.add_row(
                flow.queue if n == 0 else "",
                label,
                str(use.running) if use else "0",
                str(use.limited) if use else "0",
                stamp(use.next_start_ms) if use and use.next_start_ms else "",
            )
    return table
