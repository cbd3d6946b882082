"""How the control API shows a sharded queue as one queue (docs/scaling.md): its shards'
overviews and histories summed, its listings read shard after shard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING

from .inspection import HistoryPoint, MinuteCounts, QueueHistory, QueueOverview, TaskPage
from .shards import parse_shard

if TYPE_CHECKING:
    from .records import TaskRecord

__all__ = ["merge_histories", "merge_overviews", "page_across", "shard_order"]

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
