"""``rediq history QUEUE`` (a queue's counters and run time over a span) and ``rediq
scaling QUEUE`` (its autoscaling signal, the JSON KEDA's metrics-api scaler reads)."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import TYPE_CHECKING, Any

import rich_click as click
from rich.table import Table

from ..history import parse_span
from ..inspection import COUNTER_NAMES, QueueHistory
from ..scaling import DEFAULT_TARGET_DRAIN_S, DEFAULT_WINDOW_MINUTES, QueueScaling
from .inspect_cmds import known_queue
from .render import console, echo_json, sparkline
from .target import Target, UsageFailure, control_command, run

if TYPE_CHECKING:
    from ..app import Rediq

__all__ = ["history", "history_json", "scaling"]


def _span(text: str | None, what: str) -> dt.timedelta | None:
    if text is None:
        return None
    try:
        return parse_span(text)
    except ValueError as exc:
        raise UsageFailure(f"{what}: {exc}") from None


def history_json(found: QueueHistory) -> dict[str, Any]:
    return {
        "queue": found.queue,
        "since_ms": found.since_ms,
        "until_ms": found.until_ms,
        "step_ms": found.step_ms,
        "points": [
            {
                "start_ms": p.start_ms,
                "enqueued": p.enqueued,
                "succeeded": p.succeeded,
                "failed": p.failed,
                "retried": p.retried,
                "expired": p.expired,
                "runs": p.runs,
                "run_ms": p.run_ms,
                "mean_run_s": p.mean_run_s,
            }
            for p in found.points
        ],
    }


def _history_table(found: QueueHistory) -> Table:
    minutes = found.step_ms // 60_000
    fmt = "%m-%d %H:%M" if found.until_ms - found.since_ms > 86_400_000 else "%H:%M"
    table = Table(title=f"{found.queue}: per {minutes} min", title_justify="left")
    for name in ("from", *COUNTER_NAMES, "mean run"):
        table.add_column(name, justify="left" if name == "from" else "right")
    for p in found.points:
        mean = "-" if p.mean_run_s is None else f"{p.mean_run_s:.3f}s"
        table.add_row(
            time.strftime(fmt, time.localtime(p.start_ms / 1000)),
            *(
                str(getattr(p, c))
                for c in ("enqueued", "succeeded", "failed", "retried", "expired")
            ),
            mean,
        )
    return table


@click.command()
@click.argument("queue")
@click.option(
    "--span", default="1h", show_default=True, help="How far back: 1h, 24h, 14d, 90m, ..."
)
@click.option(
    "--step",
    default=None,
    help="One point per step (whole minutes; whole hours past 32 h). Default: ~360 points.",
)
@control_command
def history(target: Target, queue: str, span: str, step: str | None) -> None:
    """QUEUE's counters per step over a span: enqueued, succeeded, failed, retried,
    expired and the mean run time (minutes are kept 32 hours, hours 14 days)."""
    since, every = _span(span, "--span") or dt.timedelta(hours=1), _span(step, "--step")

    async def action(app: Rediq) -> QueueHistory:
        await known_queue(app, queue)
        try:
            return await app.control.history(queue, since=since, step=every)
        except ValueError as exc:
            raise UsageFailure(str(exc)) from None

    found = run(target, action)
    if target.as_json:
        echo_json(history_json(found))
        return
    out = console()
    out.print(_history_table(found))
    out.print(f"succeeded {sparkline([p.succeeded for p in found.points])}")


@click.command()
@click.argument("queue")
@click.option(
    "--target-drain-s",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TARGET_DRAIN_S,
    show_default=True,
    help="Work the backlog off within this many seconds.",
)
@click.option(
    "--window-minutes",
    type=click.IntRange(1, 59),
    default=DEFAULT_WINDOW_MINUTES,
    show_default=True,
    help="Arrivals and run time over this many complete minutes.",
)
@control_command
def scaling(target: Target, queue: str, target_drain_s: float, window_minutes: int) -> None:
    """QUEUE's autoscaling signal: the workers it needs (Little's law on its arrivals and
    mean run time, plus draining its backlog in --target-drain-s), with its inputs."""

    async def action(app: Rediq) -> QueueScaling:
        await known_queue(app, queue)
        return await app.control.scaling(
            queue, target_drain_s=target_drain_s, window_minutes=window_minutes
        )

    found = run(target, action)
    if target.as_json:
        echo_json(found.as_json())
        return
    table = Table(title=f"{queue}: autoscaling signal", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    mean = "-" if found.mean_run_s is None else f"{found.mean_run_s:.3f}s"
    oldest = "-" if found.oldest_age_s is None else f"{found.oldest_age_s:.1f}s"
    waited = f"last {found.wait_window_s // 60} min, live workers"
    quantiles = f"{_seconds(found.wait_p50_s)} / {_seconds(found.wait_p95_s)}"
    for name, value in (
        ("desired workers", str(found.desired_workers)),
        ("pending / active", f"{found.pending} / {found.active}"),
        ("oldest pending", oldest),
        (f"arrivals (last {window_minutes} min)", f"{found.arrival_per_s:.2f}/s"),
        ("mean run time", mean),
        ("slots busy", f"{found.busy_slots:.1f}"),
        (f"slots for the backlog ({target_drain_s:g}s)", f"{found.backlog_slots:.1f}"),
        ("concurrency per worker", f"{found.concurrency} ({found.consumers} live consumers)"),
        (f"wait p50 / p95 ({waited})", quantiles),
        ("starts by wait", _wait_buckets(found)),
    ):
        table.add_row(name, value)
    console().print(table)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _wait_buckets(found: QueueScaling) -> str:
    """The histogram's non-empty buckets: ``<=0.1s 12  <=5s 3  >900s 1``."""
    parts = []
    lower = 0.0
    for bucket in found.wait_histogram:
        if bucket.count:
            bound = f">{lower:g}s" if math.isinf(bucket.le_s) else f"<={bucket.le_s:g}s"
            parts.append(f"{bound} {bucket.count}")
        if not math.isinf(bucket.le_s):
            lower = bucket.le_s
    return "  ".join(parts) or "-"
