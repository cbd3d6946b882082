"""How the control API shows a sharded queue as one queue (docs/scaling.md): its shards'
overviews and histories summed, its listings read shard after shard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING

from .flow import LimitUse, QueueFlow, QueueLimits, Rate
from .inspection import HistoryPoint, MinuteCounts, QueueHistory, QueueOverview, TaskPage
from .shards import parse_shard

if TYPE_CHECKING:
    from .records import TaskRecord

__all__ = ["merge_flows", "merge_histories", "merge_overviews", "page_across", "shard_order"]

_COUNTS = ("pending", "scheduled", "active", "dead", "waiting", "limited")


def shard_order(name: str) -> tuple[int, int, str]:
    """Shards by their number of shards, then by index; other names first."""
    shard = parse_shard(name)
    return (0, 0, name) if shard is None else (shard.count, shard.index, name)


def _summed(items: Sequence[object], skip: tuple[str, ...]) -> dict[str, int]:
    return {
        f.name: sum(int(getattr(item, f.name)) for item in items)
        for f in fields(items[0])  # type: ignore[arg-type]
        if f.name not in skip
    }


def merge_overviews(queue: str, parts: Sequence[QueueOverview]) -> QueueOverview:
    """One overview of ``queue`` from its shards' (paused: every shard is)."""
    if len(parts) == 1:
        return replace(parts[0], name=queue)
    totals: dict[str, int] = {}
    for part in parts:
        for counter, n in part.totals.items():
            totals[counter] = totals.get(counter, 0) + n
    by_minute: dict[int, list[MinuteCounts]] = {}
    for part in parts:
        for minute in part.minutes:
            by_minute.setdefault(minute.minute_ms, []).append(minute)
    minutes = tuple(
        MinuteCounts(minute_ms=at, **_summed(found, ("minute_ms",)))
        for at, found in sorted(by_minute.items())
    )
    ages = [p.oldest_pending_age_s for p in parts if p.oldest_pending_age_s is not None]
    return replace(
        parts[0],
        name=queue,
        paused=all(p.paused for p in parts),
        oldest_pending_age_s=max(ages, default=None),
        totals=totals,
        minutes=minutes,
        **{name: sum(int(getattr(p, name)) for p in parts) for name in _COUNTS},
    )


def merge_histories(queue: str, parts: Sequence[QueueHistory]) -> QueueHistory:
    """One history of ``queue`` from its shards' (same window and step)."""
    first = parts[0]
    by_start: dict[int, list[HistoryPoint]] = {}
    for part in parts:
        for point in part.points:
            by_start.setdefault(point.start_ms, []).append(point)
    points = tuple(
        HistoryPoint(
            start_ms=at, step_ms=found[0].step_ms, **_summed(found, ("start_ms", "step_ms"))
        )
        for at, found in sorted(by_start.items())
    )
    return replace(first, queue=queue, points=points)


def merge_flows(queue: str, parts: Sequence[QueueFlow]) -> QueueFlow:
    """One view of ``queue``'s limits from its shards': its own limits summed (what
    ``Control.set_limits`` split), each limit's use summed over the shards."""
    if len(parts) == 1:
        return replace(parts[0], queue=queue)
    shares = [p.limits.concurrency for p in parts]
    concurrency = None if None in shares else sum(s for s in shares if s is not None)
    rates = [p.limits.rate for p in parts]
    rate = None
    if None not in rates:
        first = rates[0]
        assert first is not None
        if all(r == first for r in rates) and first.period_ms % len(parts) == 0:
            rate = Rate(first.count, first.period_ms // len(parts), first.burst * len(parts))
        else:
            counted = [r for r in rates if r is not None]
            total = sum(r.count for r in counted)
            rate = Rate(total, first.period_ms, sum(r.burst for r in counted))
    uses: dict[str, LimitUse] = {}
    for part in parts:
        for use in part.uses:
            seen = uses.get(use.name)
            if seen is None:
                uses[use.name] = use
                continue
            starts = [t for t in (seen.next_start_ms, use.next_start_ms) if t is not None]
            uses[use.name] = LimitUse(
                name=use.name,
                running=seen.running + use.running,
                limited=seen.limited + use.limited,
                next_start_ms=min(starts, default=None),
            )
    return QueueFlow(
        queue=queue,
        limits=QueueLimits(concurrency=concurrency, rate=rate),
        uses=tuple(uses.values()),
    )


async def page_across(
    shards: Sequence[str],
    read: Callable[[str, int, str | None], Awaitable[TaskPage]],
    limit: int,
    cursor: str | None,
) -> TaskPage:
    """A page of a listing over several shards, shard after shard: ``read(shard, limit,
    cursor)`` reads one shard's page. The cursor is ``<shard number>:<its cursor>``."""
    index, inner = 0, None
    if cursor:
        head, _, rest = cursor.partition(":")
        if not head.isdigit() or int(head) >= len(shards):
            raise ValueError(f"cursor {cursor!r} is not a cursor of this listing")
        index, inner = int(head), rest or None
    tasks: list[TaskRecord] = []
    while index < len(shards) and len(tasks) < limit:
        page = await read(shards[index], limit - len(tasks), inner)
        tasks += page.tasks
        if page.next_cursor is not None:
            inner = page.next_cursor
            if len(tasks) >= limit:
                return TaskPage(tasks, f"{index}:{inner}")
            continue
        index, inner = index + 1, None
    more = index < len(shards)
    return TaskPage(tasks, f"{index}:" if more else None)
